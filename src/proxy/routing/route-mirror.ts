// RequestMirror: a copy of a request to another Service, fired and forgotten. The copy's
// answer is read and dropped; its failure or slowness never reaches the caller (it is not
// awaited, errors end in a debug line, and it is cut after MIRROR_TIMEOUT_MS). Only what can be
// replayed cheaply is mirrored: a bodiless request at once, a body of at most 64 KiB (kept as
// it streams to the real backend, never holding it back) once it has ended; a larger body is
// not mirrored. Each copy is counted in mirror-metrics.ts.
import { finished, Readable, Transform } from 'node:stream';
import { describeError } from '../../errors.js';
import { type ExchangeDeps, exchange } from '../http/outbound-exchange.js';
import type { L7Request } from '../http/types.js';
import type { OutboundContext } from '../outbound/identify.js';
import type { ServiceTarget } from '../outbound/opaque.js';
import type { MirrorMetrics } from './mirror-metrics.js';

/** The largest request body a mirror copies (Linkerd's replay limit for retries). */
export const MIRROR_BODY_LIMIT = 64 * 1024;
/** A mirrored copy is abandoned after this long: a stuck mirror holds nothing for long. */
export const MIRROR_TIMEOUT_MS = 10_000;

/** What a mirror needs besides the exchange's deps: where its counts go. */
export interface MirrorDeps extends ExchangeDeps {
  mirrors: MirrorMetrics;
}

type MirroredHead = Pick<L7Request, 'method' | 'authority' | 'path' | 'headers' | 'version'>;

/**
 * Mirrors a request (to `dst`, the Service it goes to) to each target: at once when bodiless,
 * else once `body` (returned, to be forwarded in its place) has ended within the limit.
 */
export function mirrorRequest(
  ctx: OutboundContext,
  dst: string,
  targets: readonly ServiceTarget[],
  head: MirroredHead,
  body: Readable | undefined,
  deps: MirrorDeps,
): Readable | undefined {
  const copy = { ...head, headers: { ...head.headers } };
  if (body === undefined) {
    for (const t of targets) sendCopy(ctx, dst, t, copy, undefined, deps);
    return undefined;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  const tee = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (size <= MIRROR_BODY_LIMIT) {
        size += chunk.length;
        // A copy: the caller's buffer may be reused once it has been written on.
        if (size <= MIRROR_BODY_LIMIT) chunks.push(Buffer.from(chunk));
        else chunks.length = 0;
      }
      cb(null, chunk);
    },
    flush(cb) {
      if (size > MIRROR_BODY_LIMIT)
        for (const t of targets) deps.mirrors.count(dst, t.service, 'dropped');
      else for (const t of targets) sendCopy(ctx, dst, t, copy, chunks, deps);
      cb();
    },
  });
  body.on('error', (err) => tee.destroy(err));
  tee.on('error', () => {});
  body.pipe(tee);
  return tee;
}

function sendCopy(
  ctx: OutboundContext,
  dst: string,
  target: ServiceTarget,
  head: MirroredHead,
  chunks: Buffer[] | undefined,
  deps: MirrorDeps,
): void {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), MIRROR_TIMEOUT_MS);
  timer.unref();
  const body = Readable.from(chunks ?? [], { objectMode: false });
  const request: L7Request = { ...head, body, signal: abort.signal };
  deps.mirrors.count(dst, target.service, 'sent');
  const failed = (err: unknown) => {
    clearTimeout(timer);
    deps.mirrors.count(dst, target.service, 'failed');
    deps.log.debug({ service: target.service, err: describeError(err) }, 'mirror failed');
  };
  exchange(ctx, target, request, chunks === undefined ? undefined : body, deps).then(
    ({ response, done }) => {
      if (response.reason !== undefined) deps.mirrors.count(dst, target.service, 'failed');
      response.body.on('error', () => {});
      finished(response.body, () => {
        clearTimeout(timer);
        done();
      });
      response.body.resume();
    },
    failed,
  );
}
