// When a response body is over, for its record: what stream.finished() says of a readable
// (ended, errored, or closed before its end) with three plain listeners. finished() adds
// four, its own cleanup and a once-wrapped callback per call, and the inbound stack watched
// every request's response body with it.
import type { Readable } from 'node:stream';

/** Node's own error for a stream closed before its end (stream.finished()'s). */
function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

/**
 * Calls `done` once, when `body` has ended (no argument), errored (its error) or closed before
 * its end (a premature-close error); on the next tick when that has already happened.
 */
export function onBodyEnd(body: Readable, done: (err?: Error) => void): void {
  if (body.readableEnded) {
    process.nextTick(done);
    return;
  }
  if (body.destroyed) {
    process.nextTick(done, body.errored ?? prematureClose());
    return;
  }
  const settle = (err?: Error): void => {
    body.off('end', onEnd);
    body.off('error', settle);
    body.off('close', onClose);
    done(err);
  };
  const onEnd = (): void => settle();
  const onClose = (): void => settle(body.readableEnded ? undefined : prematureClose());
  body.on('end', onEnd);
  body.on('error', settle);
  body.on('close', onClose);
}
