// The replies for names under the mesh domain, table-driven: which records, which rcode,
// when the SOA goes into the authority section, and which queries are not the mesh's.
import { type DecodedPacket, decode, encode, type Packet, type RecordType } from 'dns-packet';
import { describe, expect, it } from 'vitest';
import { answerMeshQuery, type MeshZone } from '../../src/dns/mesh-answer.js';

const TABLE: Record<string, { v4: string[]; v6: string[] }> = {
  echo: { v4: ['240.240.0.1'], v6: ['fd00:240::1'] },
  multi: { v4: ['240.240.0.2', '240.240.0.3'], v6: [] },
  v6only: { v4: [], v6: ['fd00:240::9'] },
};
const zone: MeshZone = { domain: 'mesh', ttl: 5, resolve: (s) => TABLE[s] };

/** A query as the server sees it: encoded by a client, decoded off the wire. */
function asked(name: string, type: string, extra: Partial<Packet> = {}): DecodedPacket {
  return decode(
    encode({
      type: 'query',
      id: 77,
      flags: 1 << 8,
      questions: [{ name, type: type as RecordType, class: 'IN' }],
      ...extra,
    }),
  );
}

/** The answer as a client would see it after the wire. */
function answered(query: DecodedPacket) {
  const result = answerMeshQuery(query, zone);
  if (!result) return undefined;
  // dns-packet decodes the rcode but its types leave it out.
  const reply = decode(encode(result.reply)) as DecodedPacket & { rcode: string };
  return {
    result: result.result,
    rcode: reply.rcode,
    aa: reply.flag_aa,
    data: reply.answers?.map((a) => `${a.type} ${'data' in a ? String(a.data) : ''}`),
    authority: reply.authorities?.map((a) => a.type),
  };
}

describe('answerMeshQuery', () => {
  it.each([
    ['echo.mesh', 'A', 'mesh', 'NOERROR', ['A 240.240.0.1'], []],
    ['echo.mesh', 'AAAA', 'mesh', 'NOERROR', ['AAAA fd00:240::1'], []],
    ['multi.mesh', 'A', 'mesh', 'NOERROR', ['A 240.240.0.2', 'A 240.240.0.3'], []],
    ['multi.mesh', 'AAAA', 'mesh', 'NOERROR', [], ['SOA']],
    ['v6only.mesh', 'A', 'mesh', 'NOERROR', [], ['SOA']],
    ['echo.mesh', 'MX', 'mesh', 'NOERROR', [], ['SOA']],
    ['echo.mesh', 'TXT', 'mesh', 'NOERROR', [], ['SOA']],
    ['missing.mesh', 'A', 'nxdomain', 'NXDOMAIN', [], ['SOA']],
    ['a.echo.mesh', 'A', 'nxdomain', 'NXDOMAIN', [], ['SOA']],
    ['mesh', 'A', 'mesh', 'NOERROR', [], ['SOA']],
    ['mesh', 'SOA', 'mesh', 'NOERROR', ['SOA [object Object]'], []],
  ])('%s %s -> %s %s %j authority %j', (name, type, result, rcode, data, authority) => {
    expect(answered(asked(name, type))).toEqual({ result, rcode, aa: true, data, authority });
  });

  it('answers ANY with every address of the service', () => {
    expect(answered(asked('echo.mesh', 'ANY'))?.data).toEqual([
      'A 240.240.0.1',
      'AAAA fd00:240::1',
    ]);
  });

  it('keeps the id, RD, the question as spelled, and sets TTLs and RA', () => {
    const result = answerMeshQuery(asked('EcHo.Mesh', 'A'), zone)!;
    const reply = decode(encode(result.reply));
    expect(reply).toMatchObject({ id: 77, flag_qr: true, flag_rd: true, flag_ra: true });
    expect(reply.questions).toEqual([{ name: 'EcHo.Mesh', type: 'A', class: 'IN' }]);
    expect(reply.answers).toMatchObject([{ name: 'EcHo.Mesh', ttl: 5 }]);
  });

  it('puts an SOA whose TTL and minimum are the zone TTL in negative answers', () => {
    const result = answerMeshQuery(asked('missing.mesh', 'A'), { ...zone, ttl: 30 })!;
    expect(decode(encode(result.reply)).authorities).toMatchObject([
      {
        type: 'SOA',
        name: 'mesh',
        ttl: 30,
        data: { mname: 'ns.mesh', rname: 'hostmaster.mesh', minimum: 30 },
      },
    ]);
  });

  it('answers EDNS queries with an OPT record, and others without', () => {
    const opt = {
      type: 'OPT' as const,
      name: '.',
      udpPayloadSize: 4096,
      extendedRcode: 0,
      ednsVersion: 0,
      flags: 0,
      flag_do: false,
      options: [],
    };
    const withEdns = answerMeshQuery(asked('echo.mesh', 'A', { additionals: [opt] }), zone)!;
    expect(withEdns.reply.additionals).toMatchObject([{ type: 'OPT', udpPayloadSize: 1232 }]);
    expect(answerMeshQuery(asked('echo.mesh', 'A'), zone)!.reply.additionals).toEqual([]);
  });

  it.each([
    ['a name outside the domain', asked('example.com', 'A')],
    ['a lookalike of the domain', asked('echo.notmesh', 'A')],
    [
      'two questions',
      decode(
        encode({
          type: 'query',
          id: 1,
          questions: [
            { name: 'echo.mesh', type: 'A' },
            { name: 'echo.mesh', type: 'AAAA' },
          ],
        }),
      ),
    ],
    [
      'a non-QUERY opcode (NOTIFY)',
      decode(
        encode({
          type: 'query',
          id: 1,
          flags: 4 << 11,
          questions: [{ name: 'echo.mesh', type: 'A' }],
        }),
      ),
    ],
  ])('leaves %s to be forwarded', (_what, query) => {
    expect(answerMeshQuery(query, zone)).toBeUndefined();
  });

  it('does not look the mesh up for names outside the domain', () => {
    const looked: string[] = [];
    answerMeshQuery(asked('example.com', 'A'), {
      ...zone,
      resolve: (s) => {
        looked.push(s);
        return undefined;
      },
    });
    expect(looked).toEqual([]);
  });
});
