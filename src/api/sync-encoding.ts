// Compressed sync responses (SyncResponse fields 50-51, Hello field 50), both sides. A full
// snapshot of 1,000 services and 10,000 endpoints is 2.5 MB of JSON documents and 39 KB with
// zstd, compressed once per version for every stream: what a fleet reconnecting at once costs
// the control plane in TLS, HTTP/2 framing, flow-control round trips and buffers. An agent announces what it
// decodes; a control plane of an earlier release ignores the field and sends plain responses,
// and an agent of an earlier release announces nothing and gets plain ones.
import * as zlib from 'node:zlib';
import { WeftError } from '../errors.js';
import type { SyncResponse } from './messages.js';

type ZlibOptions = zlib.ZlibOptions & { params?: Record<number, number> };
/** zstd is in node:zlib from Node 22.15 (the pinned runtime has it; @types/node 20 does not). */
const zstd = zlib as unknown as {
  zstdCompressSync?: (buf: Uint8Array, options?: ZlibOptions) => Buffer;
  zstdDecompressSync?: (buf: Uint8Array, options?: ZlibOptions) => Buffer;
  constants: { ZSTD_c_compressionLevel?: number };
};

export const SYNC_ENCODINGS = ['zstd', 'gzip'] as const;
export type SyncEncoding = (typeof SYNC_ENCODINGS)[number];

/** Below this a response goes plain: compressing a small delta saves nothing worth its CPU. */
export const ENCODE_MIN_BYTES = 16 * 1024;

/** The most a response may inflate to: the agent's gRPC receive limit (proto.ts). */
export const DECODED_MAX_BYTES = 256 * 1024 * 1024;

/** What an agent announces in Hello: every encoding it decodes, best first. */
export function acceptedEncodings(): SyncEncoding[] {
  return SYNC_ENCODINGS.filter((e) => e !== 'zstd' || zstd.zstdDecompressSync !== undefined);
}

/**
 * The encoding a control plane uses on a stream: the first one the agent announced that the
 * control plane knows; undefined (plain) when none, as for an agent that announced nothing.
 */
export function chooseEncoding(
  accepted: readonly string[] | undefined,
  known: readonly SyncEncoding[] = acceptedEncodings(),
): SyncEncoding | undefined {
  for (const name of accepted ?? []) {
    if ((known as readonly string[]).includes(name)) return name as SyncEncoding;
  }
  return undefined;
}

/** Whether a response body of `bytes` is worth compressing. */
export function worthEncoding(bytes: number): boolean {
  return bytes >= ENCODE_MIN_BYTES;
}

export function compressBody(body: Uint8Array, encoding: SyncEncoding): Buffer {
  // zstd level 3 (its default) and gzip level 6: a 3 MB snapshot in tens of milliseconds, once
  // per version; a higher level costs much more CPU for a few per cent.
  if (encoding === 'zstd' && zstd.zstdCompressSync !== undefined) {
    const level = zstd.constants.ZSTD_c_compressionLevel ?? 100;
    return zstd.zstdCompressSync(body, { params: { [level]: 3 } });
  }
  if (encoding === 'gzip') return zlib.gzipSync(body, { level: 6 });
  throw new WeftError('WEFT_E_INTERNAL', `sync encoding ${encoding} is not available here`);
}

/**
 * The body a compressed response carries, inflated. Throws an Error saying what is wrong for an
 * encoding this agent did not announce, a body that does not inflate, or one that would inflate
 * past `maxBytes`.
 */
export function decompressBody(
  encoding: string,
  encoded: Uint8Array,
  maxBytes = DECODED_MAX_BYTES,
): Buffer {
  const options = { maxOutputLength: maxBytes };
  try {
    if (encoding === 'zstd' && zstd.zstdDecompressSync !== undefined)
      return zstd.zstdDecompressSync(encoded, options);
    if (encoding === 'gzip') return zlib.gunzipSync(encoded, options);
  } catch (err) {
    throw new Error(
      `the control plane's ${encoding}-encoded response (${encoded.length} bytes) does not decode: ${(err as Error).message}`,
      { cause: err },
    );
  }
  throw new Error(
    `the control plane sent a response encoded as "${encoding}", which this agent did not announce (it decodes ${acceptedEncodings().join(', ')})`,
  );
}

/**
 * A response as the control plane meant it: a compressed one (fields 50-51) with its upserts,
 * removals and trust bundle put back from the body, a plain one as it is. `decode` is the
 * SyncResponse deserializer. Throws (see decompressBody) when the body cannot be read.
 */
export function inflateResponse(
  msg: SyncResponse,
  decode: (body: Buffer) => SyncResponse,
): SyncResponse {
  if (!msg.encoding) return msg;
  const body = decode(decompressBody(msg.encoding, msg.encoded ?? new Uint8Array(0)));
  return {
    ...msg,
    upserts: body.upserts,
    removals: body.removals,
    trustBundlePem: body.trustBundlePem,
    encoding: '',
    encoded: undefined,
  };
}
