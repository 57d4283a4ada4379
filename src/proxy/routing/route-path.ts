// The path and location arithmetic of URLRewrite and RequestRedirect (Gateway API
// HTTPPathModifier), pure: a matched prefix replaced element-wise, a whole path replaced, and
// the Location of a redirect (the port omitted when it is the scheme's own).
import type { CompiledPathModifier, PathMatch } from './route-table.js';

/** The request path (and query) after a path modifier; the query is kept. */
export function modifyPath(
  pathAndQuery: string,
  modifier: CompiledPathModifier,
  matched: PathMatch,
): string {
  const q = pathAndQuery.indexOf('?');
  const path = q < 0 ? pathAndQuery : pathAndQuery.slice(0, q);
  const query = q < 0 ? '' : pathAndQuery.slice(q);
  if (modifier.type === 'ReplaceFullPath') return modifier.value + query;
  return (
    replacePrefix(path, matched.type === 'PathPrefix' ? matched.value : '/', modifier.value) + query
  );
}

/**
 * "/foo" -> "/bar" turns "/foo/baz" into "/bar/baz"; -> "/" turns it into "/baz" and "/foo"
 * into "/" (the schema allows ReplacePrefixMatch only on PathPrefix matches).
 */
export function replacePrefix(path: string, prefix: string, replacement: string): string {
  const rest = prefix === '/' ? path : path.slice(prefix.length);
  const joined =
    replacement.endsWith('/') && rest.startsWith('/')
      ? replacement + rest.slice(1)
      : replacement + rest;
  return joined === '' ? '/' : joined;
}

export interface RedirectParts {
  scheme: 'http' | 'https';
  host: string;
  /** Undefined: the scheme's own port (left out of the Location). */
  port: number | undefined;
  pathAndQuery: string;
}

/** The Location of a redirect: scheme://host[:port]/path?query. */
export function redirectLocation(p: RedirectParts): string {
  const defaultPort = p.scheme === 'https' ? 443 : 80;
  const host = p.host.includes(':') ? `[${p.host}]` : p.host;
  const port = p.port === undefined || p.port === defaultPort ? '' : `:${p.port}`;
  return `${p.scheme}://${host}${port}${p.pathAndQuery}`;
}
