// Compressed sync responses (proto fields from 50): which encoding a control plane picks for a
// stream, the forms of one encoded response, and the compatibility table with the previous
// release (its proto is this one without fields 50 and up): an old agent on a new control
// plane and a new agent on an old control plane keep reading every resource.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, describe, expect, it } from 'vitest';
import type { ResourceMessage, SyncRequest, SyncResponse } from '../../src/api/messages.js';
import { loadProto, PROTO_FILE, PROTO_OPTIONS } from '../../src/api/proto.js';
import {
  acceptedEncodings,
  chooseEncoding,
  compressBody,
  decompressBody,
  ENCODE_MIN_BYTES,
  inflateResponse,
} from '../../src/api/sync-encoding.js';
import { EncodedResponse } from '../../src/controlplane/sync/encoded-response.js';
import { toDelta } from '../../src/controlplane-client/sync-stream.js';

type Codec = {
  encodeResponse(m: SyncResponse): Buffer;
  decodeResponse(b: Buffer): SyncResponse;
  encodeRequest(m: SyncRequest): Buffer;
  decodeRequest(b: Buffer): SyncRequest;
};

function codecOf(protoFile: string): Codec {
  const pkg = grpc.loadPackageDefinition(
    protoLoader.loadSync(protoFile, PROTO_OPTIONS),
  ) as never as {
    weft: { v1: { Sync: { service: grpc.ServiceDefinition } } };
  };
  const stream = pkg.weft.v1.Sync.service.Stream!;
  return {
    encodeResponse: stream.responseSerialize as Codec['encodeResponse'],
    decodeResponse: stream.responseDeserialize as Codec['decodeResponse'],
    encodeRequest: stream.requestSerialize as Codec['encodeRequest'],
    decodeRequest: stream.requestDeserialize as Codec['decodeRequest'],
  };
}

// The previous release's proto: this one without the fields numbered 50 and up.
const oldDir = mkdtempSync(join(tmpdir(), 'weft-old-proto-'));
const oldProto = join(oldDir, 'weft.proto');
writeFileSync(
  oldProto,
  readFileSync(PROTO_FILE, 'utf8')
    .split('\n')
    .filter((l) => !/=\s*5\d\s*;/.test(l))
    .join('\n'),
);
afterAll(() => rmSync(oldDir, { recursive: true, force: true }));
const NEW = codecOf(PROTO_FILE);
const OLD = codecOf(oldProto);

const service = (i: number): ResourceMessage => {
  const name = `svc-${String(i).padStart(4, '0')}`;
  return {
    kind: 'Service',
    name,
    json: JSON.stringify({
      apiVersion: 'weft/v1',
      kind: 'Service',
      metadata: { name },
      spec: { ports: [{ port: 80, targetPort: 8000, protocol: 'http' }] },
    }),
    revision: i + 1,
  };
};
/** A full snapshot well over ENCODE_MIN_BYTES. */
const bigContent = {
  version: 812,
  baseVersion: 0,
  full: true,
  upserts: Array.from({ length: 400 }, (_, i) => service(i)),
  removals: [],
  trustBundlePem: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
};
const smallContent = {
  version: 813,
  baseVersion: 812,
  full: false,
  upserts: [service(1)],
  removals: [{ kind: 'Workload', name: 'gone' }],
  trustBundlePem: '',
};
const names = (m: { upserts: ResourceMessage[] }) => m.upserts.map((u) => u.name);

describe('chooseEncoding', () => {
  const cases: Array<[string, string[] | undefined, string[], string | undefined]> = [
    ['an agent of the previous release (no field 50)', undefined, ['zstd', 'gzip'], undefined],
    ['an agent that announces nothing', [], ['zstd', 'gzip'], undefined],
    ['the agent prefers zstd', ['zstd', 'gzip'], ['zstd', 'gzip'], 'zstd'],
    ['the agent prefers gzip', ['gzip', 'zstd'], ['zstd', 'gzip'], 'gzip'],
    ['unknown names are passed over', ['br', 'gzip'], ['zstd', 'gzip'], 'gzip'],
    ['only unknown names', ['br', 'lz4'], ['zstd', 'gzip'], undefined],
    ['a runtime without zstd', ['zstd', 'gzip'], ['gzip'], 'gzip'],
  ];
  it.each(cases)('%s', (_, accepted, known, expected) => {
    expect(chooseEncoding(accepted, known as never)).toBe(expected);
  });

  it('this runtime announces zstd first (the pinned Node has it), then gzip', () => {
    expect(acceptedEncodings()).toEqual(['zstd', 'gzip']);
  });
});

describe('EncodedResponse', () => {
  const encode = loadProto().Sync.service.Stream!.responseSerialize as (m: SyncResponse) => Buffer;

  it('plain form: every field, version first; the same Buffer for every stream', () => {
    const r = new EncodedResponse(bigContent, encode);
    const plain = r.bytes(undefined);
    expect(plain[0]).toBe(0x08); // field 1, varint: the version leads
    expect(r.bytes(undefined)).toBe(plain);
    const m = NEW.decodeResponse(plain);
    expect(m.version).toBe(812);
    expect(m.full).toBe(true);
    expect(m.encoding).toBe('');
    expect(names(m)).toEqual(names(bigContent));
    expect(m.trustBundlePem).toBe(bigContent.trustBundlePem);
  });

  it.each(['zstd', 'gzip'] as const)(
    '%s form: a fraction of the plain size, version in clear, the same Buffer for every stream, inflates to the same content',
    (encoding) => {
      const r = new EncodedResponse(bigContent, encode);
      const packed = r.bytes(encoding);
      expect(r.bytes(encoding)).toBe(packed);
      expect(packed[0]).toBe(0x08);
      expect(packed.length * 4).toBeLessThan(r.bytes(undefined).length);
      const outer = NEW.decodeResponse(packed);
      expect(outer).toMatchObject({ version: 812, baseVersion: 0, full: true, encoding });
      expect(outer.upserts).toEqual([]);
      const inflated = inflateResponse(outer, NEW.decodeResponse);
      expect(names(inflated)).toEqual(names(bigContent));
      expect(inflated.upserts[7]).toEqual({ ...bigContent.upserts[7], source: '' });
      expect(inflated.trustBundlePem).toBe(bigContent.trustBundlePem);
    },
  );

  it(`a response under ${ENCODE_MIN_BYTES} bytes goes plain even to a stream that takes zstd`, () => {
    const r = new EncodedResponse(smallContent, encode);
    expect(r.bytes('zstd')).toBe(r.bytes(undefined));
    const m = NEW.decodeResponse(r.bytes('zstd'));
    expect(m).toMatchObject({ version: 813, baseVersion: 812, full: false, encoding: '' });
    expect(m.removals).toEqual([{ kind: 'Workload', name: 'gone' }]);
  });
});

describe('compatibility with the previous release', () => {
  const encode = NEW.encodeResponse;

  it('old agent, new control plane: its Hello asks for nothing, the response is plain and complete', () => {
    const hello = NEW.decodeRequest(
      OLD.encodeRequest({ hello: { version: 0, agentVersion: 'old' } }),
    );
    const encoding = chooseEncoding(hello.hello?.acceptEncodings);
    expect(encoding).toBeUndefined();
    const m = OLD.decodeResponse(new EncodedResponse(bigContent, encode).bytes(encoding));
    expect(m.version).toBe(812);
    expect(names(m)).toEqual(names(bigContent));
  });

  it('new agent, old control plane: its Hello still reads, the plain response is applied as is', () => {
    const hello = OLD.decodeRequest(
      NEW.encodeRequest({
        hello: { version: 5, agentVersion: 'new', acceptEncodings: acceptedEncodings() },
      }),
    );
    expect(hello.hello).toMatchObject({ version: 5, agentVersion: 'new' });
    const delta = toDelta(NEW.decodeResponse(OLD.encodeResponse(bigContent)));
    expect(delta.version).toBe(812);
    expect(delta.full).toBe(true);
    expect(delta.upserts.map((u) => u.name)).toEqual(names(bigContent));
  });

  it('new agent, new control plane: compressed on the wire, the agent applies the same delta', () => {
    const hello = NEW.decodeRequest(
      NEW.encodeRequest({ hello: { version: 0, acceptEncodings: acceptedEncodings() } }),
    );
    const encoding = chooseEncoding(hello.hello?.acceptEncodings);
    expect(encoding).toBe('zstd');
    const wire = new EncodedResponse(bigContent, encode).bytes(encoding);
    const delta = toDelta(NEW.decodeResponse(wire));
    expect(delta).toMatchObject({ version: 812, baseVersion: 0, full: true });
    expect(delta.upserts.map((u) => u.name)).toEqual(names(bigContent));
    expect(delta.trustBundlePem).toBe(bigContent.trustBundlePem);
  });
});

describe('decompressBody refuses what it cannot read, saying why', () => {
  const body = Buffer.from('x'.repeat(100_000));
  const cases: Array<[string, string, Uint8Array, RegExp]> = [
    [
      'an encoding it never announced',
      'br',
      body,
      /encoded as "br", which this agent did not announce/,
    ],
    [
      'bytes that are not zstd',
      'zstd',
      Buffer.from('not zstd at all'),
      /zstd-encoded response \(15 bytes\) does not decode/,
    ],
    [
      'bytes that are not gzip',
      'gzip',
      Buffer.from('not gzip'),
      /gzip-encoded response \(8 bytes\) does not decode/,
    ],
  ];
  it.each(cases)('%s', (_, encoding, encoded, message) => {
    expect(() => decompressBody(encoding, encoded)).toThrow(message);
  });

  it('a body that would inflate past the limit', () => {
    expect(() => decompressBody('zstd', compressBody(body, 'zstd'), 10_000)).toThrow(
      /does not decode/,
    );
    expect(decompressBody('zstd', compressBody(body, 'zstd'), 100_000)).toEqual(body);
  });

  it('the agent turns a compressed response it cannot read into an error (nacked, nothing applied)', () => {
    const bad = NEW.decodeResponse(
      NEW.encodeResponse({
        ...smallContent,
        upserts: [],
        encoding: 'zstd',
        encoded: Buffer.from('junk'),
      }),
    );
    expect(() => toDelta(bad)).toThrow(/does not decode/);
  });
});
