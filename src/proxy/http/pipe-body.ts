// A body piped from one stream to another with back pressure, as a promise: what
// stream/promises' pipeline gives, without its per-call cost. pipeline makes an AbortController
// per call and aborts it when done (a DOMException with a stack trace), and reports a writable
// closed after it finished as a premature close (another Error with a stack trace) that it then
// ignores: on the L7 path that was a few percent of the CPU of every request.
import type { Readable, Writable } from 'node:stream';

/** The body broke off, on either side; the message says which. */
export class BodyBroken extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BodyBroken';
  }
}

const ignore = (): void => {};

/**
 * Pipes `source` into `dest`. With `end`, resolves when `dest` has finished (the source ended
 * and everything was written); without, when the source has ended (the caller ends `dest`).
 * Rejects when either side errors or closes first; the source is then unpiped, and neither is
 * destroyed: the caller decides how a broken exchange ends (a reset, a cut connection).
 */
export function pipeBody(source: Readable, dest: Writable, end: boolean): Promise<void> {
  // A late error on either side (after this settled) must not be an unhandled 'error'.
  if (source.listenerCount('error') === 0) source.on('error', ignore);
  if (dest.listenerCount('error') === 0) dest.on('error', ignore);
  if (dest.destroyed) return Promise.reject(new BodyBroken('the receiver went away'));
  if (source.destroyed && !source.readableEnded) {
    return Promise.reject(new BodyBroken('the body broke off before its end'));
  }
  return new Promise((resolve, reject) => {
    const settle = (err?: Error): void => {
      source.off('end', onEnd);
      source.off('error', settle);
      source.off('close', onSourceClose);
      dest.off('finish', onFinish);
      dest.off('error', settle);
      dest.off('close', onDestClose);
      if (err === undefined) {
        resolve();
        return;
      }
      source.unpipe(dest);
      reject(err);
    };
    const onEnd = (): void => {
      if (!end) settle();
    };
    const onFinish = (): void => settle();
    const onSourceClose = (): void => {
      if (!source.readableEnded) settle(new BodyBroken('the body broke off before its end'));
    };
    const onDestClose = (): void => {
      const complete = end ? dest.writableFinished : source.readableEnded;
      if (!complete) settle(new BodyBroken('the receiver went away before the body ended'));
    };
    source.once('end', onEnd);
    source.once('error', settle);
    source.once('close', onSourceClose);
    dest.once('error', settle);
    dest.once('close', onDestClose);
    if (end) dest.once('finish', onFinish);
    if (source.readableEnded) {
      // Ended before we looked: pipe ends dest on the next tick when `end` is set.
      if (!end) {
        settle();
        return;
      }
    }
    source.pipe(dest, { end });
  });
}
