// What the server does with one query, whatever transport brought it: drop what is not a
// query, FORMERR what does not parse, answer mesh names, forward the rest, and answer
// SERVFAIL rather than stay silent when forwarding fails: a silent server makes every
// client wait out its own timeout (5 s per try for glibc) before it gives up.
import { type DecodedPacket, decode, encode } from 'dns-packet';
import type { Logger } from '../sys/logger.js';
import type { Forwarder, ForwardResult } from './forwarder.js';
import { answerMeshQuery, type MeshZone } from './mesh-answer.js';
import type { DnsMetrics } from './metrics.js';
import {
  encodeForUdp,
  errorReply,
  headerOnlyReply,
  isResponse,
  peekHeader,
  RCODE,
  udpLimitOf,
} from './wire.js';

export type Transport = 'udp' | 'tcp';

export interface Peer {
  address: string;
  port: number;
}

export interface QueryHandlerDeps {
  zone: MeshZone;
  forwarder: Forwarder;
  metrics: DnsMetrics;
  log: Logger;
}

/** The reply to send back, or undefined to send nothing. Never rejects. */
export type QueryHandler = (
  raw: Buffer,
  transport: Transport,
  peer: Peer,
) => Promise<Buffer | undefined>;

const LOOP_WARN_INTERVAL_MS = 10_000;

export function createQueryHandler(deps: QueryHandlerDeps): QueryHandler {
  const { zone, forwarder, metrics, log } = deps;
  let lastLoopWarning = 0;

  const servfail = (query: DecodedPacket): Buffer => {
    metrics.query(query.questions?.[0]?.type ?? 'NONE', 'servfail');
    return errorReply(query, RCODE.SERVFAIL);
  };

  return async (raw, transport, peer) => {
    const header = peekHeader(raw);
    if (!header || isResponse(header.flags)) {
      // Too short to answer, or a response: replying to responses invites reflection loops.
      log.debug(
        { peer: peer.address, port: peer.port, bytes: raw.length },
        'dns packet dropped: not a query',
      );
      return undefined;
    }
    let query: DecodedPacket;
    try {
      query = decode(raw);
    } catch (err) {
      log.debug(
        { peer: peer.address, bytes: raw.length, err: (err as Error).message },
        'dns query does not parse: FORMERR',
      );
      metrics.query('NONE', 'formerr');
      return headerOnlyReply(header.id, header.flags, RCODE.FORMERR);
    }
    const type = query.questions?.[0]?.type ?? 'NONE';

    if (transport === 'udp' && forwarder.isOwnQuery(peer.port, header.id)) {
      const now = Date.now();
      if (now - lastLoopWarning > LOOP_WARN_INTERVAL_MS) {
        lastLoopWarning = now;
        log.warn(
          { port: peer.port },
          'dns loop: a query this server forwarded came back to it; run it as the user the capture rules exclude (agentUser) or point upstreams past the capture',
        );
      }
      return servfail(query);
    }

    try {
      const mesh = answerMeshQuery(query, zone);
      if (mesh) {
        // Encoding sits inside the try too: a malformed address from resolve throws here.
        const reply =
          transport === 'udp' ? encodeForUdp(mesh.reply, udpLimitOf(query)) : encode(mesh.reply);
        metrics.query(type, mesh.result);
        return reply;
      }
    } catch (err) {
      log.warn({ err, name: query.questions?.[0]?.name }, 'dns mesh answer failed: SERVFAIL');
      return servfail(query);
    }

    let forwarded: ForwardResult;
    try {
      forwarded = await forwarder.forward(raw, transport);
    } catch (err) {
      log.error({ err }, 'dns forwarding failed unexpectedly: SERVFAIL');
      return servfail(query);
    }
    if (forwarded.kind === 'reply') {
      metrics.query(type, 'forwarded');
      return forwarded.reply;
    }
    if (forwarded.kind === 'overloaded') {
      log.debug({ inflight: forwarder.inflightCount }, 'dns forwarding at its limit: SERVFAIL');
    }
    return servfail(query);
  };
}
