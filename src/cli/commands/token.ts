// `weft token create [--ttl 1h]`: a one-time join token, the CA pin agents check, and the agent
// config lines that use them.
import { hostname } from 'node:os';
import type { Command } from 'commander';
import {
  adminOptionsFrom,
  DEFAULT_CONTROL_PLANE_SERVER,
  WeftAdminClient,
  withAdminOptions,
} from '../../api/admin-client.js';
import { parseDuration } from '../../api/duration.js';
import { WeftError } from '../../errors.js';

/** The address to put in agent configs: a loopback --server means "this host". */
function agentFacingAddress(server: string): string {
  const port = /:(\d+)$/.exec(server)?.[1] ?? '15012';
  return /^(127\.|localhost|\[::1\])/.test(server) ? `${hostname()}:${port}` : server;
}

export function registerToken(program: Command): void {
  const token = program.command('token').description('join tokens for agents');
  withAdminOptions(
    token
      .command('create')
      .description('create a one-time join token')
      .option(
        '--ttl <duration>',
        "how long it can be used, e.g. 30m, 1h, 7d (default: the control plane's tokenTtl, 24h)",
      )
      .option('--description <text>', 'a note kept with the token', ''),
  ).action(
    async (opts: { ttl?: string; description: string; server?: string; credentials?: string }) => {
      let ttlSeconds = 0;
      if (opts.ttl !== undefined) {
        const ms = parseDuration(opts.ttl);
        if (ms === undefined || ms <= 0)
          throw new WeftError(
            'WEFT_E_USAGE',
            `--ttl: "${opts.ttl}" is not a duration like 30m, 1h or 7d`,
          );
        ttlSeconds = Math.max(1, Math.ceil(ms / 1000));
      }
      const client = WeftAdminClient.open(adminOptionsFrom(opts));
      try {
        const res = await client.createToken(ttlSeconds, opts.description);
        const server = opts.server ?? process.env.WEFT_SERVER ?? DEFAULT_CONTROL_PLANE_SERVER;
        console.log(`token:   ${res.token}`);
        console.log(`expires: ${new Date(res.expiresUnixMs).toISOString()}`);
        console.log(`CA pin:  ${res.caPin}`);
        console.log('');
        console.log(
          '# in the agent config (/etc/weft/agent.yaml) of the host that joins; the token works once:',
        );
        console.log('controlPlane:');
        console.log(`  address: ${agentFacingAddress(server)}`);
        console.log(`  token: ${res.token}`);
        console.log(`  caPin: ${res.caPin}`);
      } finally {
        client.close();
      }
    },
  );
}
