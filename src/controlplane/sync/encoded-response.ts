// One sync response serialized once for every stream that gets it, in each form a stream may
// take: plain (agents that announced no encoding, as every agent of an earlier release) or
// compressed (SyncResponse fields 50-51). The head (version, base, full) and the body (upserts,
// removals, trust bundle) are serialized apart: protobuf merges concatenated messages, so the
// plain form is head + body, and the compressed form the head's fields with the body
// compressed. Each form is made on first use and then shared, so a fleet of new agents costs
// one compression per version and an old agent one concatenation.
import type { SyncResponse } from '../../api/messages.js';
import { compressBody, type SyncEncoding, worthEncoding } from '../../api/sync-encoding.js';

export type Encode = (message: SyncResponse) => Buffer;

/** What a response says, before it is serialized in one form or another. */
export type ResponseContent = Pick<
  SyncResponse,
  'version' | 'baseVersion' | 'full' | 'upserts' | 'removals' | 'trustBundlePem'
>;

export class EncodedResponse {
  readonly version: number;
  readonly full: boolean;
  private readonly head: Pick<SyncResponse, 'version' | 'baseVersion' | 'full'>;
  private readonly encode: Encode;
  /** The plain form; the body is its tail (a view, not a copy). */
  private readonly plain: Buffer;
  private readonly body: Buffer;
  private readonly compressed = new Map<SyncEncoding, Buffer>();

  constructor(content: ResponseContent, encode: Encode) {
    const { version, baseVersion, full, upserts, removals, trustBundlePem } = content;
    this.version = version;
    this.full = full;
    this.head = { version, baseVersion, full };
    this.encode = encode;
    // Field order on the wire: the version (field 1) first, as agents and the bench read it.
    const head = encode(this.head as SyncResponse);
    this.plain = Buffer.concat([
      head,
      encode({ upserts, removals, trustBundlePem } as SyncResponse),
    ]);
    this.body = this.plain.subarray(head.length);
  }

  /** The bytes for a stream that decodes `encoding` (undefined: plain). */
  bytes(encoding: SyncEncoding | undefined): Buffer {
    const body = this.body;
    if (encoding !== undefined && worthEncoding(body.length)) {
      let out = this.compressed.get(encoding);
      if (out === undefined) {
        out = this.encode({
          ...this.head,
          encoding,
          encoded: compressBody(body, encoding),
        } as SyncResponse);
        this.compressed.set(encoding, out);
      }
      return out;
    }
    return this.plain;
  }
}
