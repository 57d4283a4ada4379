// gRPC clients of the control plane for one connection attempt. The Identity and Sync clients
// share one channel (one TCP + TLS connection). A fresh channel per attempt means the agent's
// own jittered backoff alone decides when to reconnect (grpc-js's channel backoff would add up
// to 120 s), and a renewed node certificate is used from the next attempt on.
import { isIP } from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import {
  CONTROL_PLANE_CHANNEL_OPTIONS,
  type IdentityClient,
  loadProto,
  type SyncClient,
} from '../api/proto.js';
import { parseHostPort } from '../api/tls.js';

export interface Clients {
  identity: IdentityClient;
  sync: SyncClient;
  close(): void;
}

/**
 * Channel options for an address. The server is checked by its SPIFFE ID, never by name; an
 * IP address as TLS server name is not allowed by RFC 6066 (Node warns), so a fixed name is
 * sent instead when the address is an IP.
 */
function channelOptions(address: string): grpc.ChannelOptions {
  const { host } = parseHostPort(address, 15012);
  return isIP(host) === 0
    ? CONTROL_PLANE_CHANNEL_OPTIONS
    : { ...CONTROL_PLANE_CHANNEL_OPTIONS, 'grpc.ssl_target_name_override': 'controlplane.weft' };
}

export function openClients(address: string, creds: grpc.ChannelCredentials): Clients {
  const proto = loadProto();
  const options = channelOptions(address);
  const identity = new proto.Identity(address, creds, options);
  // channelOverride is a grpc-js client option next to the channel options.
  const sync = new proto.Sync(address, creds, {
    ...options,
    channelOverride: identity.getChannel(),
  } as grpc.ChannelOptions);
  return { identity, sync, close: () => identity.close() };
}

export function identityOnly(address: string, creds: grpc.ChannelCredentials): IdentityClient {
  return new (loadProto().Identity)(address, creds, channelOptions(address));
}
