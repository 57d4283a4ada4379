// A body relayed from one stream to another with back pressure, as a promise. Not
// stream/promises' pipeline (an AbortController per call, aborted when done: a DOMException with
// a stack trace; a premature-close Error it then ignores) and not Readable.pipe either: pipe
// adds and removes about eight listeners per call (and emits 'pipe' and 'unpipe'), and the
// settling here added six once() wrappers on top: on the L7 path every request's response body
// went through it. Here each side gets plain on() listeners, the byte count is taken on the
// way, and 'drain' is listened to only while the destination is full.
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
 * Relays `source` into `dest`, telling `onBytes` the length of each chunk written. With `end`,
 * resolves when `dest` has finished (the source ended and everything was written); without,
 * when the source has ended (the caller ends `dest`). Rejects when either side errors or
 * closes first; the source is then left paused and unread from, and neither is destroyed: the
 * caller decides how a broken exchange ends (a reset, a cut connection).
 */
export function pipeBody(
  source: Readable,
  dest: Writable,
  end: boolean,
  onBytes?: (n: number) => void,
): Promise<void> {
  // A late error on either side (after this settled) must not be an unhandled 'error'.
  if (source.listenerCount('error') === 0) source.on('error', ignore);
  if (dest.listenerCount('error') === 0) dest.on('error', ignore);
  if (dest.destroyed) return Promise.reject(new BodyBroken('the receiver went away'));
  if (source.destroyed && !source.readableEnded) {
    return Promise.reject(new BodyBroken('the body broke off before its end'));
  }
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (err?: Error): void => {
      if (settled) return;
      settled = true;
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', settle);
      source.off('close', onSourceClose);
      dest.off('drain', onDrain);
      dest.off('finish', onFinish);
      dest.off('error', settle);
      dest.off('close', onDestClose);
      if (err === undefined) {
        resolve();
        return;
      }
      // Nothing more is taken from the source: what is left is the caller's to drop.
      source.pause();
      reject(err);
    };
    const onData = (chunk: Buffer): void => {
      onBytes?.(chunk.length);
      // A full destination: the source waits for its 'drain' (the streams' buffers bound it).
      if (!dest.write(chunk)) {
        source.pause();
        dest.on('drain', onDrain);
      }
    };
    const onDrain = (): void => {
      dest.off('drain', onDrain);
      source.resume();
    };
    const onEnd = (): void => {
      if (end) dest.end();
      else settle();
    };
    const onFinish = (): void => settle();
    const onSourceClose = (): void => {
      if (!source.readableEnded) settle(new BodyBroken('the body broke off before its end'));
    };
    const onDestClose = (): void => {
      const complete = end ? dest.writableFinished : source.readableEnded;
      if (!complete) settle(new BodyBroken('the receiver went away before the body ended'));
    };
    dest.on('error', settle);
    dest.on('close', onDestClose);
    if (end) dest.on('finish', onFinish);
    if (source.readableEnded) {
      // Ended before we looked: nothing more will come.
      onEnd();
      return;
    }
    source.on('end', onEnd);
    source.on('error', settle);
    source.on('close', onSourceClose);
    source.on('data', onData);
    // A source paused on purpose (flowing false: a reader that counts its chunks, waiting for
    // this one) does not start on a 'data' listener alone; one whose reader is full waits.
    if (dest.writableNeedDrain) {
      source.pause();
      dest.on('drain', onDrain);
    } else source.resume();
  });
}
