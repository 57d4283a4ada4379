// RequestHeaderModifier and ResponseHeaderModifier (Gateway API HTTPHeaderFilter), pure: set
// replaces a field, add appends a value to it, remove drops it; names were lowered when the
// table was built.
import type { HeaderMap } from '../http/types.js';
import type { CompiledHeaderModifier } from './route-table.js';

/** Changes `headers` in place (the caller owns the map) and returns it. */
export function modifyHeaders(headers: HeaderMap, m: CompiledHeaderModifier): HeaderMap {
  for (const [name, value] of m.set) headers[name] = value;
  for (const [name, value] of m.add) {
    const existing = headers[name];
    headers[name] =
      existing === undefined
        ? value
        : Array.isArray(existing)
          ? [...existing, value]
          : [existing, value];
  }
  for (const name of m.remove) delete headers[name];
  return headers;
}
