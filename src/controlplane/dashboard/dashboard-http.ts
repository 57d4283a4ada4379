// The dashboard's HTTP routes on the control plane's HTTP port: the login exchange, the page,
// its assets and the JSON it polls. Nothing but /login answers without a session; every write
// (log in, log out) must come from the dashboard's own origin, and a write made in a session
// must also carry the session's CSRF token.
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { DashboardAuth, DashboardSession } from './dashboard-auth.js';
import { sameSecret } from './dashboard-auth.js';
import type { Overview } from './overview.js';
import { appPage, DASHBOARD_CSS, loginPage } from './pages.js';

export const SESSION_COOKIE = 'weft_session';
/** A login form carries one token: anything longer is not one of ours. */
const MAX_FORM_BYTES = 4096;

/** The compiled page scripts (tsconfig.ui.json), from src/ under vitest and from dist/. */
const ASSETS_DIR = fileURLToPath(new URL('../../../dist/dashboard-ui/', import.meta.url));
const SCRIPTS = new Set(['app.js', 'login.js', 'graph.js', 'format.js']);

export interface DashboardDeps {
  auth: DashboardAuth;
  overview(): Promise<Overview>;
  log: Logger;
}

/** Headers every dashboard answer carries: no framing, no sniffing, no third-party anything. */
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  // Not no-referrer: under it a browser sends `Origin: null` with the page's own forms.
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
};

/** Paths the dashboard answers; the rest of the port (/healthz, /metrics, ...) is not its. */
export function isDashboardPath(path: string): boolean {
  return (
    path === '/' ||
    path === '/login' ||
    path === '/logout' ||
    path === '/favicon.ico' ||
    path.startsWith('/assets/') ||
    path.startsWith('/api/')
  );
}

export function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * A write came from the dashboard's own pages: the browser's Origin (or, without one, its
 * Sec-Fetch-Site) names this host. A request with neither is not a browser's cross-site form
 * (browsers send Origin on every cross-origin POST), so it is let through to the token checks.
 */
export function sameOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== 'null') {
    const host = req.headers.host ?? '';
    return origin === `http://${host}` || origin === `https://${host}`;
  }
  const site = req.headers['sec-fetch-site'];
  // An opaque origin ("null": a sandboxed frame, a data: page) is foreign unless the browser
  // itself says the request came from this origin.
  if (origin === 'null') return site === 'same-origin';
  return site === undefined || site === 'same-origin' || site === 'none';
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  const type = req.headers['content-type'] ?? '';
  if (!type.startsWith('application/x-www-form-urlencoded')) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) return undefined;
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

export class DashboardHttp {
  constructor(private readonly deps: DashboardDeps) {}

  /** Answers one request on a dashboard path (see isDashboardPath). */
  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    try {
      await this.route(req, res, path);
    } catch (err) {
      this.deps.log.warn({ err, path }, 'dashboard request failed');
      if (!res.headersSent) this.send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
      else res.destroy();
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = req.method ?? 'GET';
    if (path === '/login') {
      if (method === 'POST') return this.login(req, res);
      if (method === 'GET' || method === 'HEAD')
        return this.send(res, 200, 'text/html; charset=utf-8', loginPage());
      return this.send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    }
    if (path === '/favicon.ico') {
      res.writeHead(204, SECURITY_HEADERS);
      res.end();
      return;
    }
    if (path === '/assets/app.css')
      return this.send(res, 200, 'text/css; charset=utf-8', DASHBOARD_CSS);
    if (path.startsWith('/assets/')) return this.script(res, path.slice('/assets/'.length));

    const session = this.deps.auth.session(cookieValue(req.headers.cookie, SESSION_COOKIE));
    if (path === '/logout') return this.logout(req, res, session);
    if (method !== 'GET' && method !== 'HEAD')
      return this.send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    if (session === undefined) {
      if (path.startsWith('/api/'))
        return this.json(res, 401, { error: 'not logged in: run `weft dashboard` for a link' });
      res.writeHead(303, { ...SECURITY_HEADERS, location: '/login' });
      res.end();
      return;
    }
    if (path === '/') return this.send(res, 200, 'text/html; charset=utf-8', appPage(session));
    if (path === '/api/v1/overview') return this.json(res, 200, await this.deps.overview());
    return this.json(res, 404, { error: `no such API: ${path}` });
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!sameOrigin(req))
      return this.send(res, 403, 'text/plain; charset=utf-8', 'cross-origin login refused\n');
    const form = await readForm(req);
    const token = form?.get('token') ?? '';
    const session = token === '' ? undefined : this.deps.auth.redeemLogin(token);
    if (session === undefined) {
      this.deps.log.info({ from: req.socket.remoteAddress }, 'dashboard login refused');
      return this.send(
        res,
        401,
        'text/html; charset=utf-8',
        loginPage(
          'That login link is wrong, used or expired. Run `weft dashboard` for a new one: each link works once, for 5 minutes.',
        ),
      );
    }
    this.deps.log.info({ from: req.socket.remoteAddress }, 'dashboard login');
    const maxAge = Math.max(1, Math.floor((session.expiresAtMs - Date.now()) / 1000));
    res.writeHead(303, {
      ...SECURITY_HEADERS,
      location: '/',
      // HttpOnly: page scripts never see it; SameSite=Strict: no other site's page sends it.
      'set-cookie': `${SESSION_COOKIE}=${session.id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${maxAge}`,
    });
    res.end();
  }

  private async logout(
    req: IncomingMessage,
    res: ServerResponse,
    session: DashboardSession | undefined,
  ): Promise<void> {
    if (req.method !== 'POST')
      return this.send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
    const form = await readForm(req);
    const csrf = form?.get('csrf') ?? '';
    if (session === undefined || !sameOrigin(req) || !sameSecret(csrf, session.csrf))
      return this.send(res, 403, 'text/plain; charset=utf-8', 'logout refused\n');
    this.deps.auth.logout(session.id);
    res.writeHead(303, {
      ...SECURITY_HEADERS,
      location: '/login',
      'set-cookie': `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`,
    });
    res.end();
  }

  private async script(res: ServerResponse, name: string): Promise<void> {
    if (!SCRIPTS.has(name)) return this.send(res, 404, 'text/plain; charset=utf-8', 'not found\n');
    let body: string;
    try {
      body = await readFile(`${ASSETS_DIR}${name}`, 'utf8');
    } catch {
      return this.send(
        res,
        500,
        'text/plain; charset=utf-8',
        `dashboard script ${name} is not built: run npm run build\n`,
      );
    }
    this.send(res, 200, 'text/javascript; charset=utf-8', body);
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    this.send(res, status, 'application/json', JSON.stringify(body));
  }

  private send(res: ServerResponse, status: number, type: string, body: string): void {
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': type });
    res.end(body);
  }
}
