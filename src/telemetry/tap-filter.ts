// Which request records a tap sees, decided once when the tap starts (parseTapFilter: every
// field checked, named when wrong) and then per record by a pure match (tapMatches), so the
// drain that copies records for taps does no parsing.
import type { TapFilter as TapFilterMessage } from '../api/messages.js';
import { WeftError } from '../errors.js';
import type { RequestRecord } from '../proxy/records.js';

/** Records per second per agent when a tap does not say. */
export const DEFAULT_TAP_RATE = 100;
/** At most this many per second per tap, whatever it asks: a tap is for reading, not export. */
export const MAX_TAP_RATE = 1_000;

export type StatusMatch =
  | { kind: 'any' }
  | { kind: 'class'; hundreds: number }
  | { kind: 'code'; code: number };

/** A tap's filter, validated. */
export interface TapFilter {
  service?: string;
  pathPrefix?: string;
  method?: string;
  status: StatusMatch;
  source?: string;
  headers: boolean;
  maxPerSecond: number;
}

const METHOD = /^[A-Z][A-Z-]{0,31}$/;
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A filter from its message (the CLI's flags, or a TapStart); throws WEFT_E_USAGE naming the field. */
export function parseTapFilter(input: TapFilterMessage | null | undefined): TapFilter {
  const f = input ?? {};
  const bad = (field: string, message: string) =>
    new WeftError('WEFT_E_USAGE', `tap ${field}: ${message}`);
  const service = f.service || undefined;
  if (service !== undefined && !NAME.test(service))
    throw bad('service', `"${service}" is not a service name (lowercase letters, digits, -)`);
  const pathPrefix = f.pathPrefix || undefined;
  if (pathPrefix !== undefined && !pathPrefix.startsWith('/'))
    throw bad('path', `"${pathPrefix}" must start with / (a path prefix such as /api/)`);
  const method = f.method ? f.method.toUpperCase() : undefined;
  if (method !== undefined && !METHOD.test(method))
    throw bad('method', `"${f.method}" is not an HTTP method (GET, POST, ...)`);
  const source = f.source || undefined;
  const maxPerSecond = f.maxPerSecond || DEFAULT_TAP_RATE;
  if (!Number.isInteger(maxPerSecond) || maxPerSecond < 1 || maxPerSecond > MAX_TAP_RATE)
    throw bad('rate', `${f.maxPerSecond} records/s: give 1-${MAX_TAP_RATE}`);
  return {
    ...(service === undefined ? {} : { service }),
    ...(pathPrefix === undefined ? {} : { pathPrefix }),
    ...(method === undefined ? {} : { method }),
    status: parseStatus(f.status || ''),
    ...(source === undefined ? {} : { source }),
    headers: f.headers === true,
    maxPerSecond,
  };
}

function parseStatus(text: string): StatusMatch {
  if (text === '') return { kind: 'any' };
  const cls = /^([1-5])xx$/i.exec(text);
  if (cls) return { kind: 'class', hundreds: Number(cls[1]) };
  if (/^[1-5]\d\d$/.test(text)) return { kind: 'code', code: Number(text) };
  throw new WeftError(
    'WEFT_E_USAGE',
    `tap status: "${text}" is neither a class (2xx, 4xx, 5xx) nor a code (100-599)`,
  );
}

/** The filter as a message again (to send it on), with every default made explicit. */
export function tapFilterMessage(f: TapFilter): TapFilterMessage {
  return {
    service: f.service ?? '',
    pathPrefix: f.pathPrefix ?? '',
    method: f.method ?? '',
    status:
      f.status.kind === 'any'
        ? ''
        : f.status.kind === 'class'
          ? `${f.status.hundreds}xx`
          : String(f.status.code),
    source: f.source ?? '',
    headers: f.headers,
    maxPerSecond: f.maxPerSecond,
  };
}

/** Whether a finished request's record is one the tap shows. */
export function tapMatches(f: TapFilter, r: RequestRecord): boolean {
  if (f.service !== undefined && r.dst_service !== f.service) return false;
  if (f.method !== undefined && r.method !== f.method) return false;
  if (f.pathPrefix !== undefined && !r.path.startsWith(f.pathPrefix)) return false;
  if (f.source !== undefined && r.src_service !== f.source && r.src_identity !== f.source)
    return false;
  switch (f.status.kind) {
    case 'any':
      return true;
    case 'class':
      return Math.floor(r.status / 100) === f.status.hundreds;
    case 'code':
      return r.status === f.status.code;
  }
}
