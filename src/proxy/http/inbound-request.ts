// What a request stream from a peer agent asks for, read from its headers before anything is
// done: the workload endpoint (`weft-target`), the original client (`weft-client-addr`, used
// only when the peer can vouch for it) and the version the calling app spoke
// (`weft-orig-proto`). Pure: a bad field is a named outcome the adapter answers with 400.
import type { IncomingHttpHeaders } from 'node:http2';
import { parseAuthority } from '../tunnel/authority.js';
import {
  CLIENT_ADDRESS_HEADER,
  parseClientAddress,
  vouchedClient,
} from '../tunnel/client-address.js';
import type { TunnelTarget } from '../tunnel/types.js';
import type { HttpVersion } from './types.js';
import { ORIG_PROTO_HEADER, ORIG_PROTO_HTTP1, TARGET_HEADER } from './wire-headers.js';

export type TunnelRequestHead =
  | {
      ok: true;
      method: string;
      authority: string;
      path: string;
      target: TunnelTarget;
      /** The original client, when the peer can vouch for it (its own host's address). */
      client: TunnelTarget | undefined;
      /** A client the peer claimed from another address: logged, used for nothing else. */
      clientUnverified: TunnelTarget | undefined;
      version: HttpVersion;
    }
  | { ok: false; reason: string };

/** `ip:port` is at most `[` + 39 characters of IPv6 + `]:65535`. */
const MAX_TARGET = 47;

export function parseTunnelRequest(
  headers: IncomingHttpHeaders,
  peerAddress: string,
): TunnelRequestHead {
  const bad = (reason: string): TunnelRequestHead => ({ ok: false, reason });
  const method = headers[':method'];
  const path = headers[':path'];
  // HTTP/1.1 callers' Host travels as :authority (RFC 9113 section 8.3.1).
  const authority = headers[':authority'] ?? headers.host;
  if (typeof method !== 'string' || typeof path !== 'string' || path === '')
    return bad('a request needs :method and :path');
  if (typeof authority !== 'string' || authority === '') return bad('a request needs :authority');

  const rawTarget = headers[TARGET_HEADER];
  if (rawTarget === undefined) {
    return bad(`${TARGET_HEADER} is missing: the sending agent must name the workload ip:port`);
  }
  if (typeof rawTarget !== 'string') return bad(`${TARGET_HEADER} must be sent once`);
  const target = parseAuthority(rawTarget);
  if (target === undefined) {
    return bad(`${TARGET_HEADER} ${JSON.stringify(rawTarget.slice(0, MAX_TARGET))} is not ip:port`);
  }

  const claimed = parseClientAddress(headers[CLIENT_ADDRESS_HEADER]);
  if (!claimed.ok) return bad(claimed.reason);
  const { client, unverified } = vouchedClient(claimed.client, peerAddress);

  const proto = headers[ORIG_PROTO_HEADER];
  let version: HttpVersion;
  if (proto === undefined) version = '2';
  else if (proto === ORIG_PROTO_HTTP1) version = '1.1';
  else {
    return bad(
      `${ORIG_PROTO_HEADER} ${JSON.stringify(String(proto).slice(0, 20))} is not ${ORIG_PROTO_HTTP1} (absent means HTTP/2)`,
    );
  }
  return {
    ok: true,
    method,
    authority,
    path,
    target,
    client,
    clientUnverified: unverified,
    version,
  };
}
