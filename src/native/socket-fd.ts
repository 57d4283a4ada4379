// The file descriptor behind a Node socket, which the addon needs. Node does not document
// it: it sits on socket._handle.fd, or for TLS on the TCP handle underneath.
import type net from 'node:net';
import { WeftError } from '../errors.js';

interface HandleLike {
  fd?: unknown;
  _parent?: HandleLike | null;
}

interface SocketInternals {
  _handle?: HandleLike | null;
  _parent?: { _handle?: HandleLike | null } | null;
}

function validFd(fd: unknown): fd is number {
  return typeof fd === 'number' && Number.isInteger(fd) && fd >= 0;
}

/** Throws WEFT_E_SOCKET when the socket has no fd (not connected yet, closed, or not TCP). */
export function socketFd(socket: net.Socket): number {
  const internals = socket as unknown as SocketInternals;
  const candidates = [
    internals._handle?.fd, // net.Socket: the TCP handle itself
    internals._handle?._parent?.fd, // tls.connect(): TLSWrap over a TCP handle
    internals._parent?._handle?.fd, // new TLSSocket(socket): the wrapped net.Socket
  ];
  const fd = candidates.find(validFd);
  if (fd === undefined) {
    throw new WeftError(
      'WEFT_E_SOCKET',
      'the socket has no file descriptor: it is not connected yet, already closed, or not ' +
        'backed by a TCP handle; call this from the connection handler, before destroying it',
    );
  }
  return fd;
}
