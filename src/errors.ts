// One error family for all of weft. Each code is stable: it is a metric label, appears
// in log lines, and tests match on it. A message says what happened and what to do.

export const ErrorCodes = [
  // Configuration and input
  'WEFT_E_CONFIG', // a config file or resource is invalid
  'WEFT_E_USAGE', // a command was called wrongly
  // Environment
  'WEFT_E_NOT_ROOT', // the operation needs root (or CAP_NET_ADMIN)
  'WEFT_E_MISSING_TOOL', // a required binary (iptables, ip, ...) is not installed
  'WEFT_E_NATIVE_NOT_BUILT', // the native addon has not been compiled
  // Sockets
  'WEFT_E_NOT_REDIRECTED', // a socket has no original destination (it was not captured)
  'WEFT_E_SOCKET', // a socket operation failed in the kernel
  'WEFT_E_OWNER_NOT_FOUND', // no local socket matches a 4-tuple
  // Capture
  'WEFT_E_IPTABLES', // iptables-restore or ip refused a change
  // Lab
  'WEFT_E_LAB', // the lab could not be built or torn down
  // Control plane
  'WEFT_E_UNAVAILABLE', // the control plane could not be reached
  'WEFT_E_DENIED', // a request was refused (token, CSR, authorization)
  'WEFT_E_NOT_FOUND', // a named resource does not exist
  'WEFT_E_STORE', // the store failed to read or write
  'WEFT_E_CONFLICT', // a change was based on a version that is no longer the current one
  'WEFT_E_INTERNAL', // a bug: weft reached a state it should not
] as const;

export type ErrorCode = (typeof ErrorCodes)[number];

export class WeftError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WeftError';
    this.code = code;
  }
}

export function isWeftError(err: unknown, code?: ErrorCode): err is WeftError {
  return err instanceof WeftError && (code === undefined || err.code === code);
}

/** A one-line description of any thrown value, for logs and CLI output. */
export function describeError(err: unknown): string {
  if (err instanceof WeftError) return `${err.code}: ${err.message}`;
  if (err instanceof Error) return err.message;
  return String(err);
}
