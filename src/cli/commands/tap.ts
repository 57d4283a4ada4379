// `weft tap`: a live stream of request records. Through the control plane (the admin
// certificate, Admin rpc Tap) from the agents serving --service, or --node's; or, with
// --local, from this host's agent through its tap socket (root or the agent's user).
// Filters and the rate limit apply on the agents; records arrive as they happen.
import { request as httpRequest } from 'node:http';
import type { Command } from 'commander';
import { loadAgentConfig } from '../../agent/config.js';
import { adminOptionsFrom, WeftAdminClient, withAdminOptions } from '../../api/admin-client.js';
import { fromGrpcError } from '../../api/grpc-errors.js';
import type { TapBatch } from '../../api/messages.js';
import { WeftError } from '../../errors.js';
import { tapSocketPath } from '../../telemetry/tap-config.js';
import { parseTapFilter, type TapFilter, tapFilterMessage } from '../../telemetry/tap-filter.js';
import type { TapRecord } from '../../telemetry/tap-record.js';
import { droppedLine, recordLine, type TapOutput } from './tap-format.js';

const DEFAULT_TAP_SOCKET = '/var/lib/weft/agent/tap/tap.sock';

interface TapOptions {
  service?: string;
  path?: string;
  method?: string;
  status?: string;
  source?: string;
  node?: string;
  headers?: boolean;
  rate?: string;
  count?: string;
  output: string;
  local?: boolean;
  socket?: string;
  agentConfig?: string;
  server?: string;
  credentials?: string;
}

export function registerTap(program: Command): void {
  const command = program
    .command('tap')
    .description(
      'stream live request records from the agents serving a service (or a node), or from this host (--local)',
    )
    .option('--service <name>', 'requests to this service')
    .option('--path <prefix>', 'paths starting with this prefix (e.g. /api/)')
    .option('--method <method>', 'this HTTP method')
    .option('--status <class|code>', '2xx, 4xx, 5xx, or one code such as 404')
    .option('--source <service|spiffe-id>', 'requests from this caller')
    .option('--node <name>', "only this node's agent")
    .option(
      '--headers',
      'include request headers (authorization, cookies and configured ones redacted)',
    )
    .option(
      '--rate <n>',
      'records per second per agent, at most (1-1000); beyond, dropped and counted',
      '100',
    )
    .option('-n, --count <n>', 'stop after this many records')
    .option('-o, --output <format>', 'line or json (one object per line)', 'line')
    .option(
      '--local',
      "tap this host's agent through its socket (needs root), not the control plane",
    )
    .option(
      '--socket <path>',
      `the agent's tap socket (with --local; default $WEFT_TAP_SOCKET or ${DEFAULT_TAP_SOCKET})`,
    )
    .option('--agent-config <file>', "with --local: read the socket's path from this agent config");
  withAdminOptions(command).action(async (opts: TapOptions) => {
    const output = parseOutput(opts.output);
    const filter = parseTapFilter({
      service: opts.service ?? '',
      pathPrefix: opts.path ?? '',
      method: opts.method ?? '',
      status: opts.status ?? '',
      source: opts.source ?? '',
      headers: opts.headers === true,
      maxPerSecond: parseCount('--rate', opts.rate ?? '100'),
    });
    const count = opts.count === undefined ? Infinity : parseCount('--count', opts.count);
    const printer = new Printer(output, count);
    if (opts.local) {
      if (opts.node)
        throw new WeftError('WEFT_E_USAGE', '--node and --local: give one (--local is this host)');
      await tapLocal(socketPath(opts), filter, printer);
    } else {
      await tapControlPlane(opts, filter, printer);
    }
  });
}

function parseOutput(text: string): TapOutput {
  if (text === 'line' || text === 'json') return text;
  throw new WeftError('WEFT_E_USAGE', `--output must be line or json, not ${text}`);
}

function parseCount(flag: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1)
    throw new WeftError('WEFT_E_USAGE', `${flag}: "${text}" is not a whole number of at least 1`);
  return n;
}

function socketPath(opts: TapOptions): string {
  if (opts.socket) return opts.socket;
  if (opts.agentConfig) return tapSocketPath(loadAgentConfig(opts.agentConfig));
  if (process.env.WEFT_TAP_SOCKET) return process.env.WEFT_TAP_SOCKET;
  return DEFAULT_TAP_SOCKET;
}

/** Prints records until `count`, then says it is done. */
class Printer {
  private printed = 0;
  private readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(
    private readonly output: TapOutput,
    private readonly count: number,
  ) {
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  get finished(): Promise<void> {
    return this.done;
  }

  record(r: TapRecord): void {
    if (this.printed >= this.count) return;
    this.printed += 1;
    process.stdout.write(`${recordLine(this.output, r)}\n`);
    if (this.printed >= this.count) this.resolveDone();
  }

  private readonly droppedSeen = new Map<string, number>();

  /** An agent's dropped total: printed when it changed. */
  dropped(node: string, total: number): void {
    if (this.printed >= this.count || (this.droppedSeen.get(node) ?? 0) === total) return;
    this.droppedSeen.set(node, total);
    process.stdout.write(`${droppedLine(this.output, node, total)}\n`);
  }
}

async function tapLocal(path: string, filter: TapFilter, printer: Printer): Promise<void> {
  const f = tapFilterMessage(filter);
  const query = new URLSearchParams();
  if (f.service) query.set('service', f.service);
  if (f.pathPrefix) query.set('path', f.pathPrefix);
  if (f.method) query.set('method', f.method);
  if (f.status) query.set('status', f.status);
  if (f.source) query.set('source', f.source);
  if (f.headers) query.set('headers', '1');
  query.set('rate', String(f.maxPerSecond));
  await new Promise<void>((resolve, reject) => {
    const req = httpRequest({ socketPath: path, path: `/tap?${query}` }, (res) => {
      let buffered = '';
      res.setEncoding('utf8');
      if (res.statusCode !== 200) {
        res.on('data', (c: string) => {
          buffered += c;
        });
        res.on('end', () =>
          reject(new WeftError('WEFT_E_USAGE', `the agent refused the tap: ${errorOf(buffered)}`)),
        );
        return;
      }
      let node = 'local';
      res.on('data', (chunk: string) => {
        buffered += chunk;
        for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
          const line = JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>;
          buffered = buffered.slice(nl + 1);
          if (line.tap === 'open') node = String(line.node);
          else if (typeof line.dropped === 'number') printer.dropped(node, line.dropped);
          else printer.record(line as unknown as TapRecord);
        }
      });
      res.on('end', () => resolve());
      res.on('error', reject);
    });
    req.on('error', (err: NodeJS.ErrnoException) =>
      reject(
        new WeftError(
          err.code === 'EACCES' ? 'WEFT_E_NOT_ROOT' : 'WEFT_E_UNAVAILABLE',
          err.code === 'EACCES'
            ? `cannot open the agent's tap socket ${path} (EACCES): run as root (the socket is the agent user's, mode 0600)`
            : `cannot open the agent's tap socket ${path} (${err.code ?? err.message}): is the agent running? (--socket or the agent config's tap.socket names another path)`,
        ),
      ),
    );
    req.end();
    printer.finished.then(() => {
      req.destroy();
      resolve();
    });
  });
}

function errorOf(body: string): string {
  try {
    return String((JSON.parse(body) as { error?: string }).error ?? body);
  } catch {
    return body.trim();
  }
}

async function tapControlPlane(
  opts: TapOptions,
  filter: TapFilter,
  printer: Printer,
): Promise<void> {
  const client = WeftAdminClient.open(adminOptionsFrom(opts));
  try {
    const call = client.tap({ filter: tapFilterMessage(filter), node: opts.node ?? '' });
    await new Promise<void>((resolve, reject) => {
      call.on('data', (batch: TapBatch) => {
        if (batch.error) {
          // A replica's part of the tap (its agents) failed, or one agent could not tap.
          const what = batch.node.startsWith('replica ') ? '' : 'the agent could not tap: ';
          process.stderr.write(`weft: ${batch.node}: ${what}${batch.error}\n`);
          return;
        }
        for (const text of batch.records) printer.record(JSON.parse(text) as TapRecord);
        if (batch.dropped > 0) printer.dropped(batch.node, batch.dropped);
      });
      call.on('end', () => resolve());
      call.on('error', (err: Error) => {
        if ((err as { code?: number }).code === 1)
          resolve(); // cancelled: by us, below
        else reject(fromGrpcError(err, `the control plane at ${client.server}`));
      });
      printer.finished.then(() => call.cancel());
    });
  } finally {
    client.close();
  }
}
