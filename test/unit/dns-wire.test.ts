// Wire details the server owns: TCP length framing across arbitrary chunking, UDP size
// limits and truncation, and error replies that echo what stub resolvers check.
import { decode, encode, type OptAnswer, type Packet } from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { frame, frameReader } from '../../src/dns/tcp-framing.js';
import {
  encodeForUdp,
  errorReply,
  headerOnlyReply,
  RCODE,
  udpLimitOf,
} from '../../src/dns/wire.js';

const opt = (size: number): OptAnswer => ({
  type: 'OPT',
  name: '.',
  udpPayloadSize: size,
  extendedRcode: 0,
  ednsVersion: 0,
  flags: 0,
  flag_do: false,
  options: [],
});

describe('TCP framing', () => {
  it('reassembles messages split and joined at any byte', () => {
    const messages = [
      Buffer.from('first'),
      Buffer.alloc(0),
      Buffer.alloc(700, 7),
      Buffer.from('x'),
    ];
    const stream = Buffer.concat(messages.map(frame));
    for (const step of [1, 2, 3, 7, 100, stream.length]) {
      const got: Buffer[] = [];
      const read = frameReader((m) => got.push(Buffer.from(m)));
      for (let i = 0; i < stream.length; i += step) read(stream.subarray(i, i + step));
      expect(got).toEqual(messages);
    }
  });
});

describe('UDP limits', () => {
  it.each([
    [undefined, 512],
    [4096, 4096],
    [1232, 1232],
    [100, 512], // RFC 6891 6.2.5: values below 512 are treated as 512
    [65000, 4096],
  ])('EDNS size %j -> %j', (size, limit) => {
    const query: Packet = { type: 'query', additionals: size === undefined ? [] : [opt(size)] };
    expect(udpLimitOf(query)).toBe(limit);
  });

  it('truncates a reply that does not fit: TC set, records dropped, question and OPT kept', () => {
    const answers = Array.from({ length: 40 }, (_, i) => ({
      type: 'A' as const,
      name: 'many.mesh',
      ttl: 5,
      data: `240.240.1.${i}`,
    }));
    const reply: Packet = {
      type: 'response',
      id: 3,
      questions: [{ name: 'many.mesh', type: 'A' }],
      answers,
      additionals: [opt(1232)],
    };
    const small = decode(encodeForUdp(reply, 512));
    expect(small).toMatchObject({ id: 3, flag_tc: true, answers: [] });
    expect(small.questions).toHaveLength(1);
    expect(small.additionals?.map((a) => a.type)).toEqual(['OPT']);
    const fits = decode(encodeForUdp(reply, 1232));
    expect(fits.flag_tc).toBe(false);
    expect(fits.answers).toHaveLength(40);
  });
});

describe('error replies', () => {
  const query = decode(
    encode({
      type: 'query',
      id: 0xabcd,
      flags: 1 << 8,
      questions: [{ name: 'www.example', type: 'AAAA' }],
    }),
  );

  it('SERVFAIL keeps the id, RD and question and sets RA', () => {
    expect(decode(errorReply(query, RCODE.SERVFAIL))).toMatchObject({
      id: 0xabcd,
      rcode: 'SERVFAIL',
      flag_qr: true,
      flag_rd: true,
      flag_ra: true,
      flag_aa: false,
      questions: [{ name: 'www.example', type: 'AAAA' }],
    });
  });

  it('FORMERR from a header alone keeps the id and opcode', () => {
    const reply = decode(headerOnlyReply(0x0102, (2 << 11) | (1 << 8), RCODE.FORMERR));
    expect(reply).toMatchObject({ id: 0x0102, rcode: 'FORMERR', opcode: 'STATUS', flag_qr: true });
    expect(reply.questions).toEqual([]);
  });
});
