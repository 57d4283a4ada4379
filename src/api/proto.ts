// Loads proto/weft.proto with @grpc/proto-loader and gives typed gRPC clients for its three
// services. Server and agent use the same definitions, so the options below are the contract
// for how messages look in JavaScript (see ./messages.ts).
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type * as m from './messages.js';

/** proto/weft.proto; the same relative path from src/api (tests) and dist/api (built). */
export const PROTO_FILE = fileURLToPath(new URL('../../proto/weft.proto', import.meta.url));

export const PROTO_OPTIONS: protoLoader.Options = {
  keepCase: false,
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  oneofs: true,
};

/**
 * Channel options every control plane client should use: a full snapshot for 10,000 endpoints
 * is several MB (grpc's default receive limit is 4 MB), keepalives notice a dead control plane
 * behind a silent network, and a fixed TLS server name keeps an IP address out of SNI (the
 * server is checked by its SPIFFE ID, see ./tls.ts, not by name).
 */
export const CONTROL_PLANE_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.ssl_target_name_override': 'controlplane.weft',
  'grpc.max_receive_message_length': 256 * 1024 * 1024,
  'grpc.max_send_message_length': 64 * 1024 * 1024,
  'grpc.keepalive_time_ms': 20_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.keepalive_permit_without_calls': 1,
};

type Callback<Res> = (err: grpc.ServiceError | null, res?: Res) => void;

export interface UnaryMethod<Req, Res> {
  (req: Req, callback: Callback<Res>): grpc.ClientUnaryCall;
  (
    req: Req,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: Callback<Res>,
  ): grpc.ClientUnaryCall;
  (req: Req, options: grpc.CallOptions, callback: Callback<Res>): grpc.ClientUnaryCall;
}

export interface IdentityClient extends grpc.Client {
  join: UnaryMethod<m.JoinRequest, m.JoinResponse>;
  renewNode: UnaryMethod<m.CsrRequest, m.CertificateResponse>;
  signWorkload: UnaryMethod<m.WorkloadCsrRequest, m.CertificateResponse>;
  registerWorkloads: UnaryMethod<m.RegisterWorkloadsRequest, m.RegisterWorkloadsResponse>;
  leave: UnaryMethod<m.LeaveRequest, m.LeaveResponse>;
}

export interface SyncClient extends grpc.Client {
  stream(options?: grpc.CallOptions): grpc.ClientDuplexStream<m.SyncRequest, m.SyncResponse>;
  stream(
    metadata: grpc.Metadata,
    options?: grpc.CallOptions,
  ): grpc.ClientDuplexStream<m.SyncRequest, m.SyncResponse>;
}

export interface AdminClient extends grpc.Client {
  apply: UnaryMethod<m.ApplyRequest, m.ApplyResponse>;
  get: UnaryMethod<m.GetRequest, m.GetResponse>;
  delete: UnaryMethod<m.DeleteRequest, m.DeleteResponse>;
  createToken: UnaryMethod<m.CreateTokenRequest, m.CreateTokenResponse>;
  listTokens: UnaryMethod<m.ListTokensRequest, m.ListTokensResponse>;
  revokeToken: UnaryMethod<m.RevokeTokenRequest, m.RevokeTokenResponse>;
  listNodes: UnaryMethod<m.ListNodesRequest, m.ListNodesResponse>;
  deleteNode: UnaryMethod<m.DeleteNodeRequest, m.DeleteNodeResponse>;
  setNodeServices: UnaryMethod<m.SetNodeServicesRequest, m.SetNodeServicesResponse>;
  createDashboardLogin: UnaryMethod<m.CreateDashboardLoginRequest, m.CreateDashboardLoginResponse>;
  getStats: UnaryMethod<m.GetStatsRequest, m.GetStatsResponse>;
  tap(request: m.TapRequest, options?: grpc.CallOptions): grpc.ClientReadableStream<m.TapBatch>;
  tap(
    request: m.TapRequest,
    metadata: grpc.Metadata,
    options?: grpc.CallOptions,
  ): grpc.ClientReadableStream<m.TapBatch>;
}

type ClientConstructor<C> = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => C;

export interface WeftProto {
  Identity: ClientConstructor<IdentityClient> & { service: grpc.ServiceDefinition };
  Sync: ClientConstructor<SyncClient> & { service: grpc.ServiceDefinition };
  Admin: ClientConstructor<AdminClient> & { service: grpc.ServiceDefinition };
}

let cached: WeftProto | undefined;

/** The weft.v1 package: client constructors and, on each, `.service` for servers. */
export function loadProto(): WeftProto {
  if (cached !== undefined) return cached;
  const definition = protoLoader.loadSync(PROTO_FILE, PROTO_OPTIONS);
  const root = grpc.loadPackageDefinition(definition) as unknown as { weft: { v1: WeftProto } };
  cached = root.weft.v1;
  return cached;
}

/** Calls a unary method and resolves with its response (rejects with the grpc.ServiceError). */
export function unary<Req, Res>(
  client: grpc.Client,
  method: UnaryMethod<Req, Res>,
  request: Req,
  options: grpc.CallOptions = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const call = method as unknown as (
      this: grpc.Client,
      req: Req,
      metadata: grpc.Metadata,
      options: grpc.CallOptions,
      callback: Callback<Res>,
    ) => grpc.ClientUnaryCall;
    call.call(client, request, new grpc.Metadata(), options, (err, res) => {
      if (err !== null) reject(err);
      else resolve(res as Res);
    });
  });
}

/** A deadline `ms` from now, for grpc.CallOptions. */
export function deadlineIn(ms: number): Date {
  return new Date(Date.now() + ms);
}
