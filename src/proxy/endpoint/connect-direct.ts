// Stage "endpoint", local case: a plain TCP connection to an address on this host (or a
// passthrough destination). Resolves once connected, so the caller can still try another
// endpoint when this one refuses.
import { connect, type Socket } from 'node:net';
import { WeftError } from '../../errors.js';
import { formatAddress } from '../address.js';

export function connectDirect(
  address: string,
  port: number,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    // allowHalfOpen: the destination's FIN travels back to the client, not closes our side.
    const socket = connect({ host: address, port, noDelay: true, allowHalfOpen: true });
    const timer = setTimeout(
      () => socket.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' })),
      timeoutMs,
    );
    const onAbort = () =>
      socket.destroy(Object.assign(new Error('aborted'), { code: 'ABORT_ERR' }));
    const fail = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.destroy();
      const code = err.code ?? err.message;
      reject(
        new WeftError(
          'WEFT_E_UNAVAILABLE',
          `cannot connect to ${formatAddress({ address, port })}: ${code}`,
          { cause: err },
        ),
      );
    };
    socket.once('error', fail);
    socket.once('connect', () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.off('error', fail);
      resolve(socket);
    });
    if (signal?.aborted) onAbort();
    else signal?.addEventListener('abort', onAbort, { once: true });
  });
}
