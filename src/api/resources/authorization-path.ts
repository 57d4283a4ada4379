// The path form AuthorizationPolicy `paths` are matched against. weft never rewrites a request's
// path (the app sees what the client sent), so it matches the path as received and refuses a
// path that an app could read as another one: a normalizing app would serve /public/../admin
// as /admin, past a rule about /admin (CVE-2021-31920 is this bypass in Istio).

/** Bytes that a server may decode or treat as a separator: never accepted percent-encoded. */
const UNRESERVED = /^[A-Za-z0-9\-._~]$/;

/**
 * Why `path` (origin-form, the query already removed) is not in the normal form that path
 * rules need, or undefined when it is. Normal form: it starts with "/"; only visible ASCII;
 * no "\" (some servers read it as "/"), "#" or ";" (path parameters, which some servers strip:
 * /admin;x is /admin to them); no empty segment ("//", which some servers merge); no "." or
 * ".." segment; a "%" starts a valid %XX that does not encode an unreserved character (a
 * letter, digit, "-", ".", "_", "~"), "/", "\" or a control character (RFC 3986 section 6.2.2:
 * a normalizing server decodes the first and reads the others as separators or garbage).
 */
export function pathFormProblem(path: string): string | undefined {
  if (!path.startsWith('/')) return 'it does not start with "/"';
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) return 'it has a character outside visible ASCII';
    const ch = path[i]!;
    if (ch === '\\') return 'it has a "\\"';
    if (ch === '#') return 'it has a "#"';
    if (ch === ';') return 'it has a ";" (path parameters)';
    if (ch === '%') {
      const problem = encodedProblem(path.slice(i + 1, i + 3));
      if (problem !== undefined) return problem;
    }
  }
  const segments = path.split('/').slice(1);
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === '.' || s === '..') return `it has a "${s}" segment`;
    // An empty last segment is a trailing slash: /admin/ is its own path, not /admin.
    if (s === '' && i < segments.length - 1) return 'it has an empty segment ("//")';
  }
  return undefined;
}

function encodedProblem(hex: string): string | undefined {
  if (!/^[0-9A-Fa-f]{2}$/.test(hex)) return 'it has a "%" that does not start a %XX escape';
  const code = Number.parseInt(hex, 16);
  const ch = String.fromCharCode(code);
  if (ch === '/' || ch === '\\') return `it has an encoded "${ch}" (%${hex})`;
  if (code < 0x20 || code === 0x7f) return `it has an encoded control character (%${hex})`;
  if (UNRESERVED.test(ch)) return `it has an encoded "${ch}" (%${hex}) that should be sent as is`;
  return undefined;
}

/** The path part of a request's :path (origin-form): everything before the query. */
export function pathWithoutQuery(requestPath: string): string {
  const q = requestPath.indexOf('?');
  return q === -1 ? requestPath : requestPath.slice(0, q);
}

/**
 * A rule's path: exact, or a prefix when it ends in "*" ("/admin*" matches /admin,
 * /administrator and /admin/x; "/admin/*" matches /admin/ and /admin/x but not /admin).
 * Case-sensitive, on the path as received without its query.
 */
export function pathMatches(rule: string, path: string): boolean {
  if (rule.endsWith('*')) return path.startsWith(rule.slice(0, -1));
  return path === rule;
}
