// `weft token create --node NAME [--services a,b] [--replace] [--ttl 1h]`: a one-time join token
// for one host, the CA pin agents check, and the agent config lines that use them.
// `weft token list` shows every token (never its secret); `weft token revoke ID` takes an
// unused one back.
import { hostname } from 'node:os';
import type { Command } from 'commander';
import {
  adminOptionsFrom,
  DEFAULT_CONTROL_PLANE_SERVER,
  WeftAdminClient,
  withAdminOptions,
} from '../../api/admin-client.js';
import { parseDuration } from '../../api/duration.js';
import type { TokenInfo } from '../../api/messages.js';
import { WeftError } from '../../errors.js';
import { table } from './table.js';

/** The address to put in agent configs: a loopback --server means "this host". */
function agentFacingAddress(server: string): string {
  const port = /:(\d+)$/.exec(server)?.[1] ?? '15012';
  return /^(127\.|localhost|\[::1\])/.test(server) ? `${hostname()}:${port}` : server;
}

interface AdminFlags {
  server?: string;
  credentials?: string;
}

interface CreateFlags extends AdminFlags {
  node?: string;
  services?: string;
  replace?: boolean;
  ttl?: string;
  description: string;
}

function ttlSecondsOf(ttl: string | undefined): number {
  if (ttl === undefined) return 0;
  const ms = parseDuration(ttl);
  if (ms === undefined || ms <= 0)
    throw new WeftError('WEFT_E_USAGE', `--ttl: "${ttl}" is not a duration like 30m, 1h or 7d`);
  return Math.max(1, Math.ceil(ms / 1000));
}

/** "a, b" -> ["a", "b"]; empty entries are a mistake worth saying. */
export function serviceList(text: string | undefined, flag: string): string[] {
  if (text === undefined) return [];
  const list = text.split(',').map((s) => s.trim());
  if (list.some((s) => s === ''))
    throw new WeftError('WEFT_E_USAGE', `${flag}: "${text}" has an empty service name`);
  return list;
}

async function create(opts: CreateFlags): Promise<void> {
  if (opts.node === undefined || opts.node === '') {
    throw new WeftError(
      'WEFT_E_USAGE',
      '--node NAME is required: a join token names the host that may use it (the hostname it joins as)',
    );
  }
  const ttlSeconds = ttlSecondsOf(opts.ttl);
  const services = serviceList(opts.services, '--services');
  const client = WeftAdminClient.open(adminOptionsFrom(opts));
  try {
    const res = await client.createToken({
      node: opts.node,
      services,
      replace: opts.replace === true,
      ttlSeconds,
      description: opts.description,
    });
    const server = opts.server ?? process.env.WEFT_SERVER ?? DEFAULT_CONTROL_PLANE_SERVER;
    const may = res.info.services.length > 0 ? res.info.services.join(', ') : 'no service yet';
    console.log(`token:   ${res.token}`);
    console.log(
      `node:    ${res.info.node} (may serve ${may})${res.info.replace ? ', replaces an existing node of that name' : ''}`,
    );
    console.log(`expires: ${new Date(res.expiresUnixMs).toISOString()}`);
    console.log(`CA pin:  ${res.caPin}`);
    console.log('');
    console.log(
      `# in the agent config (/etc/weft/agent.yaml) of host ${res.info.node}; the token works once:`,
    );
    console.log(`hostname: ${res.info.node}`);
    console.log('controlPlane:');
    console.log(`  address: ${agentFacingAddress(server)}`);
    console.log(`  token: ${res.token}`);
    console.log(`  caPin: ${res.caPin}`);
  } finally {
    client.close();
  }
}

const iso = (ms: number): string => new Date(ms).toISOString();

function stateText(t: TokenInfo): string {
  if (t.state === 'used') return `used by ${t.usedBy} at ${iso(t.usedAtUnixMs)}`;
  if (t.state === 'revoked') return `revoked at ${iso(t.revokedAtUnixMs)}`;
  return t.state;
}

async function list(opts: AdminFlags & { output: string }): Promise<void> {
  if (!['table', 'json'].includes(opts.output))
    throw new WeftError('WEFT_E_USAGE', `-o: "${opts.output}" is not one of table, json`);
  const client = WeftAdminClient.open(adminOptionsFrom(opts));
  try {
    const tokens = await client.listTokens();
    if (opts.output === 'json') return console.log(JSON.stringify(tokens, null, 2));
    if (tokens.length === 0) return console.error('No join tokens.');
    console.log(
      table(
        ['ID', 'NODE', 'SERVICES', 'REPLACE', 'CREATED', 'EXPIRES', 'STATE'],
        tokens.map((t) => [
          t.id,
          t.node || '(any: made before scoping, refused)',
          t.services.join(',') || '-',
          t.replace ? 'yes' : 'no',
          iso(t.createdUnixMs),
          iso(t.expiresUnixMs),
          stateText(t),
        ]),
      ),
    );
  } finally {
    client.close();
  }
}

async function revoke(id: string, opts: AdminFlags): Promise<void> {
  const client = WeftAdminClient.open(adminOptionsFrom(opts));
  try {
    const token = await client.revokeToken(id);
    console.log(`token ${token.id} revoked`);
  } finally {
    client.close();
  }
}

export function registerToken(program: Command): void {
  const token = program.command('token').description('join tokens for agents');
  withAdminOptions(
    token
      .command('create')
      .description('create a one-time join token for one host')
      .option('--node <name>', 'the hostname that may join with it (required)')
      .option('--services <a,b>', 'services that host may serve (more with `weft node allow`)')
      .option('--replace', 'it may replace an existing node of that name (a rebuilt host)')
      .option(
        '--ttl <duration>',
        "how long it can be used, e.g. 30m, 1h, 7d (default: the control plane's tokenTtl, 24h)",
      )
      .option('--description <text>', 'a note kept with the token', ''),
  ).action(create);
  withAdminOptions(
    token
      .command('list')
      .description('list join tokens and their state (never their secret)')
      .option('-o, --output <format>', 'table or json', 'table'),
  ).action(list);
  withAdminOptions(
    token
      .command('revoke')
      .description('revoke an unused join token')
      .argument('<id>', 'the token id (the part before the ".", see weft token list)'),
  ).action(revoke);
}
