// Answers for names under the mesh domain, as a pure function of the query and the zone:
// A from the service's IPv4 virtual IPs, AAAA from its IPv6 ones, NODATA (with an SOA so
// that resolvers cache the absence, RFC 2308) for a known name without that type, and an
// authoritative NXDOMAIN for an unknown name. Names outside the domain are not ours.
import {
  type Answer,
  AUTHORITATIVE_ANSWER,
  type DecodedPacket,
  type Packet,
  type Question,
  type SoaAnswer,
} from 'dns-packet';
import { meshNameOf } from './names.js';
import { ednsOf, opcodeOf, RCODE, replyFlags, replyOpt } from './wire.js';

/** A service's virtual IPs, by family. */
export interface MeshAddresses {
  v4: readonly string[];
  v6: readonly string[];
}

/**
 * The mesh's own names: `service` is the query name without the domain, lower case, no
 * trailing dot (`echo` for `Echo.mesh.`). Undefined for a name the mesh does not know.
 * Called for every mesh query: it must be a cheap in-memory lookup.
 */
export type MeshResolve = (service: string) => MeshAddresses | undefined;

export interface MeshZone {
  /** Normalized domain (see validateDomain). */
  domain: string;
  /** TTL of answers, and of their absence (SOA minimum), in seconds. */
  ttl: number;
  resolve: MeshResolve;
}

export type MeshResult = 'mesh' | 'nxdomain';

export interface MeshAnswer {
  reply: Packet;
  result: MeshResult;
}

/** The zone's SOA: its minimum (and TTL) bound how long resolvers cache a negative answer. */
export function soaRecord(zone: MeshZone): SoaAnswer {
  return {
    type: 'SOA',
    name: zone.domain,
    ttl: zone.ttl,
    class: 'IN',
    data: {
      mname: `ns.${zone.domain}`,
      rname: `hostmaster.${zone.domain}`,
      serial: 1,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum: zone.ttl,
    },
  };
}

/**
 * The reply to `query` when it asks one question about a name under the zone's domain;
 * undefined when the query is not the zone's to answer (then it is forwarded unchanged).
 */
export function answerMeshQuery(query: DecodedPacket, zone: MeshZone): MeshAnswer | undefined {
  const question = query.questions?.length === 1 ? query.questions[0] : undefined;
  if (!question || opcodeOf(query.flags ?? 0) !== 0) return undefined;
  const where = meshNameOf(question.name, zone.domain);
  if (!where) return undefined;

  let answers: Answer[];
  if (where.kind === 'apex') {
    answers = wants(question, 'SOA') ? [soaRecord(zone)] : [];
  } else {
    const addresses = zone.resolve(where.service);
    if (!addresses)
      return { reply: reply(query, question, zone, RCODE.NXDOMAIN, []), result: 'nxdomain' };
    answers = addressRecords(question, addresses, zone.ttl);
  }
  return { reply: reply(query, question, zone, RCODE.NOERROR, answers), result: 'mesh' };
}

/** True when the question's type (or ANY) and class (IN or ANY) cover `type`. */
function wants(question: Question, type: 'A' | 'AAAA' | 'SOA'): boolean {
  const cls = question.class ?? 'IN';
  if (cls !== 'IN' && cls !== 'ANY') return false;
  return question.type === type || (question.type as string) === 'ANY';
}

function addressRecords(question: Question, addresses: MeshAddresses, ttl: number): Answer[] {
  // Records carry the question's own spelling: resolvers that randomize case (0x20) check it.
  const out: Answer[] = [];
  if (wants(question, 'A')) {
    for (const ip of addresses.v4)
      out.push({ type: 'A', name: question.name, ttl, class: 'IN', data: ip });
  }
  if (wants(question, 'AAAA')) {
    for (const ip of addresses.v6) {
      out.push({ type: 'AAAA', name: question.name, ttl, class: 'IN', data: ip });
    }
  }
  return out;
}

function reply(
  query: DecodedPacket,
  question: Question,
  zone: MeshZone,
  rcode: number,
  answers: Answer[],
): Packet {
  return {
    type: 'response',
    id: query.id ?? 0,
    flags: replyFlags(query.flags ?? 0, rcode, AUTHORITATIVE_ANSWER),
    questions: [question],
    answers,
    // No answer: the SOA tells resolvers how long they may cache that (RFC 2308 3, 5).
    authorities: answers.length === 0 ? [soaRecord(zone)] : [],
    additionals: ednsOf(query) ? [replyOpt()] : [],
  };
}
