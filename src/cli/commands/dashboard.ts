// `weft dashboard`: a one-time login link to the control plane's web dashboard. Making one
// needs the admin certificate, so the dashboard is exactly as reachable as the admin API;
// the token rides in the link's fragment, which browsers never send to a server or a log.
import type { Command } from 'commander';
import {
  adminOptionsFrom,
  DEFAULT_CONTROL_PLANE_SERVER,
  WeftAdminClient,
  withAdminOptions,
} from '../../api/admin-client.js';

interface DashboardFlags {
  server?: string;
  credentials?: string;
}

/** The host part of "host:port" or "[v6]:port", as a URL wants it. */
export function hostOf(server: string): string {
  const v6 = /^(\[[^\]]+\])(:\d+)?$/.exec(server);
  if (v6?.[1] !== undefined) return v6[1];
  const colon = server.lastIndexOf(':');
  return colon > 0 ? server.slice(0, colon) : server;
}

export function dashboardUrl(server: string, httpPort: number, token: string): string {
  return `http://${hostOf(server)}:${httpPort}/login#token=${token}`;
}

export function registerDashboard(program: Command): void {
  withAdminOptions(
    program
      .command('dashboard')
      .description(
        "print a one-time login link to the control plane's web dashboard (valid 5 minutes)",
      ),
  ).action(async (opts: DashboardFlags) => {
    const client = WeftAdminClient.open(adminOptionsFrom(opts));
    try {
      const res = await client.createDashboardLogin();
      const server = opts.server ?? process.env.WEFT_SERVER ?? DEFAULT_CONTROL_PLANE_SERVER;
      console.log(dashboardUrl(server, res.httpPort, res.token));
      console.error(
        `works once, until ${new Date(res.expiresUnixMs).toISOString()}; the session lasts 30 min idle, 12 h at most`,
      );
    } finally {
      client.close();
    }
  });
}
