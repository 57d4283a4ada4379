// Header-level DNS helpers over dns-packet: reply flags, error replies that echo the
// question (stub resolvers drop replies whose question differs from theirs), UDP size
// limits and truncation. No record parsing happens here.
import {
  type Answer,
  type DecodedPacket,
  encode,
  type OptAnswer,
  type Packet,
  RECURSION_AVAILABLE,
  RECURSION_DESIRED,
  TRUNCATED_RESPONSE,
} from 'dns-packet';

export const RCODE = {
  NOERROR: 0,
  FORMERR: 1,
  SERVFAIL: 2,
  NXDOMAIN: 3,
  NOTIMP: 4,
  REFUSED: 5,
} as const;

const QR = 0x8000;
const OPCODE_MASK = 0x7800;
/** RFC 1035 4.2.1: without EDNS a UDP reply carries at most 512 bytes. */
const CLASSIC_UDP_LIMIT = 512;
/** Largest UDP reply we offer (DNS flag day 2020: avoids IP fragmentation). */
export const EDNS_UDP_SIZE = 1232;
const EDNS_UDP_CEILING = 4096;

/** The 4-bit opcode of a header's flags (0 = QUERY). */
export function opcodeOf(flags: number): number {
  return (flags & OPCODE_MASK) >> 11;
}

/** Bytes 0-1 and 2-3 of a message, or undefined when it is shorter than a header. */
export function peekHeader(raw: Buffer): { id: number; flags: number } | undefined {
  if (raw.length < 12) return undefined;
  return { id: raw.readUInt16BE(0), flags: raw.readUInt16BE(2) };
}

export function isResponse(flags: number): boolean {
  return (flags & QR) !== 0;
}

/**
 * Flags of our reply to a query with `queryFlags`: the opcode and RD copied (RFC 1035
 * 4.1.1), RA set because the server recurses by forwarding, and the given rcode.
 * dns-packet adds QR itself for type 'response' and takes the other 15 bits as they are.
 */
export function replyFlags(queryFlags: number, rcode: number, extra = 0): number {
  return (
    (queryFlags & OPCODE_MASK) |
    (queryFlags & RECURSION_DESIRED) |
    RECURSION_AVAILABLE |
    extra |
    (rcode & 0xf)
  );
}

/** The query's EDNS OPT record, when it sent one. */
export function ednsOf(query: Packet): OptAnswer | undefined {
  return query.additionals?.find((a): a is OptAnswer => a.type === 'OPT');
}

/** An OPT record for a reply to a query that used EDNS (RFC 6891 6.1.1: answer in kind). */
export function replyOpt(): OptAnswer {
  return {
    type: 'OPT',
    name: '.',
    udpPayloadSize: EDNS_UDP_SIZE,
    extendedRcode: 0,
    ednsVersion: 0,
    flags: 0,
    flag_do: false,
    options: [],
  };
}

/** How large a UDP reply to `query` may be: 512, or what its EDNS record allows. */
export function udpLimitOf(query: Packet): number {
  const opt = ednsOf(query);
  if (!opt) return CLASSIC_UDP_LIMIT;
  return Math.min(Math.max(opt.udpPayloadSize, CLASSIC_UDP_LIMIT), EDNS_UDP_CEILING);
}

/** A reply with only a header, the question and `rcode`; the id and flags follow the query. */
export function errorReply(query: DecodedPacket, rcode: number): Buffer {
  return encode({
    type: 'response',
    id: query.id ?? 0,
    flags: replyFlags(query.flags ?? 0, rcode),
    questions: query.questions ?? [],
  });
}

/**
 * A header-only reply for a query whose body does not parse (FORMERR): the header is all
 * we can trust, and RFC 6891 7 lets FORMERR come back with no question.
 */
export function headerOnlyReply(id: number, queryFlags: number, rcode: number): Buffer {
  const out = Buffer.alloc(12);
  out.writeUInt16BE(id, 0);
  out.writeUInt16BE(QR | replyFlags(queryFlags, rcode), 2);
  return out;
}

/**
 * Encodes a reply for UDP: when it exceeds `limit`, the records are dropped and TC is set,
 * which tells the client to ask again over TCP (RFC 7766 5).
 */
export function encodeForUdp(reply: Packet, limit: number): Buffer {
  const full = encode(reply);
  if (full.length <= limit) return full;
  const keep: Answer[] = (reply.additionals ?? []).filter((a) => a.type === 'OPT');
  return encode({
    ...reply,
    flags: (reply.flags ?? 0) | TRUNCATED_RESPONSE,
    answers: [],
    authorities: [],
    additionals: keep,
  });
}
