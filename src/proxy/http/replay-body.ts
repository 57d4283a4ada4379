// A request body that a retry can send again: it streams to the first try as it arrives and
// is kept on the way, up to 64 KiB (Linkerd's limit); a larger body is let go and its request
// is not retried. Each chunk also tells the request's idle timer that bytes moved.
import { Readable, Transform } from 'node:stream';

/** Bodies up to this size are kept for a retry; a larger one cannot be retried. */
export const REPLAY_LIMIT_BYTES = 64 * 1024;

export class ReplayBody {
  /** What the first try reads (and a later one, when no try took a byte of it). */
  readonly stream: Transform;
  private kept: Buffer[] | undefined = [];
  private keptBytes = 0;
  private ended = false;

  constructor(source: Readable, onChunk: (() => void) | undefined, limit = REPLAY_LIMIT_BYTES) {
    this.stream = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        if (this.kept !== undefined) {
          this.keptBytes += chunk.length;
          if (this.keptBytes > limit) this.kept = undefined;
          else this.kept.push(chunk);
        }
        onChunk?.();
        cb(null, chunk);
      },
      flush: (cb) => {
        this.ended = true;
        cb();
      },
    });
    // A failed upload reaches each try through its own reader of `stream`.
    source.on('error', (err) => this.stream.destroy(err));
    this.stream.on('error', () => {});
    source.pipe(this.stream);
  }

  /**
   * Whether the whole body is kept, once the client has sent it all: what no try reads is
   * drained here (and kept) so the wait ends, at the latest, when the body passes the limit or
   * fails. `signal` gives up the wait (the client went away, the deadline passed).
   */
  complete(signal: AbortSignal): Promise<boolean> {
    if (this.ended || this.kept === undefined || this.stream.destroyed || signal.aborted) {
      return Promise.resolve(this.ended && this.kept !== undefined);
    }
    return new Promise((resolve) => {
      const s = this.stream;
      const settle = (): void => {
        s.off('data', onData);
        s.off('end', settle);
        s.off('close', settle);
        signal.removeEventListener('abort', settle);
        resolve(this.ended && this.kept !== undefined);
      };
      const onData = (): void => {
        if (this.kept === undefined) settle();
      };
      s.on('data', onData);
      s.once('end', settle);
      s.once('close', settle);
      signal.addEventListener('abort', settle, { once: true });
      s.resume();
    });
  }

  /** Whether the client has sent the whole body and all of it is kept (no waiting). */
  whole(): boolean {
    return this.ended && this.kept !== undefined;
  }

  /** A new body with every byte kept (after complete() said true). */
  replay(): Readable {
    return Readable.from(this.kept ?? [], { objectMode: false });
  }
}
