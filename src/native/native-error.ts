// Turning the errors the addon throws (code = errno name, syscall) into WeftErrors whose
// message says what failed and what to do.
import { WeftError } from '../errors.js';

/** The shape of an Error thrown by native/src/sys-error.cc. */
export interface NativeErrnoError extends Error {
  code: string;
  errno: number;
  syscall: string;
}

export function isNativeErrnoError(err: unknown): err is NativeErrnoError {
  return (
    err instanceof Error &&
    typeof (err as Partial<NativeErrnoError>).code === 'string' &&
    typeof (err as Partial<NativeErrnoError>).syscall === 'string'
  );
}

/** "getsockopt(SO_ORIGINAL_DST): ENOENT (No such file or directory)" for native errors. */
function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// Errors from getsockopt(SO_ORIGINAL_DST) that mean "no NAT entry for this socket":
// ENOENT (conntrack has no entry) and ENOPROTOOPT (conntrack is not loaded at all).
const notRedirectedErrnos = new Set(['ENOENT', 'ENOPROTOOPT']);

/** `connection` reads "10.0.0.2:41234 -> 127.0.0.1:15001". */
export function originalDestinationError(connection: string, err: unknown): WeftError {
  if (isNativeErrnoError(err) && notRedirectedErrnos.has(err.code)) {
    return new WeftError(
      'WEFT_E_NOT_REDIRECTED',
      `connection ${connection} has no original destination (${describe(err)}): ` +
        'it was not redirected by iptables; check that capture rules are installed',
      { cause: err },
    );
  }
  return new WeftError(
    'WEFT_E_SOCKET',
    `reading the original destination of ${connection} failed: ${describe(err)}`,
    { cause: err },
  );
}

/** Conntrack knows the connection but no NAT changed it: it reached the listener directly. */
export function notNattedError(connection: string): WeftError {
  return new WeftError(
    'WEFT_E_NOT_REDIRECTED',
    `connection ${connection} has no original destination: conntrack shows no NAT for it ` +
      '(it reached this socket directly); check that capture rules are installed',
  );
}

/** What to do about each way the kernel refuses a transparent listener. */
function listenerHint(err: unknown): string {
  const code = isNativeErrnoError(err) ? err.code : undefined;
  const syscall = isNativeErrnoError(err) ? err.syscall : '';
  if (syscall.includes('TRANSPARENT') && (code === 'EPERM' || code === 'EACCES')) {
    return (
      'IP_TRANSPARENT needs CAP_NET_ADMIN: run as root or grant the capability ' +
      '(AmbientCapabilities=CAP_NET_ADMIN in the systemd unit)'
    );
  }
  if (syscall === 'bind' && code === 'EACCES') {
    return 'ports below 1024 need CAP_NET_BIND_SERVICE: grant it or choose a higher port';
  }
  if (code === 'EADDRINUSE') {
    return 'another socket already listens on this address and port: stop it or choose another port';
  }
  return 'the kernel refused the socket';
}

/** `where` reads "0.0.0.0:15001" or "[::]:15001". */
export function listenerError(where: string, err: unknown): WeftError {
  return new WeftError(
    'WEFT_E_SOCKET',
    `cannot listen transparently on ${where}: ${describe(err)}; ${listenerHint(err)}`,
    { cause: err },
  );
}

/** `tuple` reads "10.0.0.2:41234 -> 10.0.0.9:80". */
export function ownerLookupError(tuple: string, err: unknown): WeftError {
  return new WeftError(
    'WEFT_E_SOCKET',
    `looking up the owner of ${tuple} failed: ${describe(err)}`,
    { cause: err },
  );
}

export function listenersLookupError(port: number, err: unknown): WeftError {
  return new WeftError(
    'WEFT_E_SOCKET',
    `listing the TCP sockets listening on port ${port} failed: ${describe(err)}`,
    { cause: err },
  );
}

/** The errno name behind an error: its own code, or its cause's (a WeftError wraps it). */
export function errnoCode(err: unknown): string | undefined {
  for (let e = err; e instanceof Error; e = e.cause) {
    if (isNativeErrnoError(e)) return e.code;
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  }
  return undefined;
}

/** What to do about each way the kernel refuses a connect from a caller's address. */
function transparentConnectHint(err: unknown): string {
  const code = errnoCode(err);
  if (code === 'EPERM' || code === 'EACCES') {
    return (
      'IP_TRANSPARENT and SO_MARK need CAP_NET_ADMIN: run as root or grant the capability ' +
      '(AmbientCapabilities=CAP_NET_ADMIN in the systemd unit)'
    );
  }
  if (code === 'EADDRINUSE') return 'no free source port is left for this caller address';
  return 'the kernel refused the socket';
}

/** `connection` reads "10.0.0.2 -> 10.0.0.9:80"; the socket could not even be set up. */
export function transparentConnectError(connection: string, err: unknown): WeftError {
  return new WeftError(
    'WEFT_E_SOCKET',
    `cannot connect ${connection} from the caller's address: ${describe(err)}; ${transparentConnectHint(err)}`,
    { cause: err },
  );
}
