// `weft top [--service S] [--interval 2s] [--window 1m|last] [--once [-o json|table]]`: the
// mesh's services (or one service's routes and callers) live, from the control plane's
// GetStats, redrawn every interval in the alternate screen until q or Ctrl-C.
import * as tty from 'node:tty';
import type { Command } from 'commander';
import { adminOptionsFrom, WeftAdminClient, withAdminOptions } from '../../api/admin-client.js';
import { DURATION_HINT, parseDuration } from '../../api/duration.js';
import type { GetStatsResponse } from '../../api/stats-messages.js';
import { describeError, WeftError } from '../../errors.js';
import { renderTop, type TopView } from './top-render.js';
import { TopTerminal } from './top-terminal.js';

interface TopOptions {
  service?: string;
  interval: string;
  window: string;
  once?: boolean;
  output: string;
  server?: string;
  credentials?: string;
}

/** The refresh interval, checked: 500 ms to 1 min. */
export function topInterval(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined || ms < 500 || ms > 60_000)
    throw new WeftError(
      'WEFT_E_USAGE',
      `--interval: "${text}" must be ${DURATION_HINT} between 500ms and 1m`,
    );
  return ms;
}

export function registerTop(program: Command): void {
  withAdminOptions(
    program
      .command('top')
      .description("the mesh's services live: request rate, success rate, p50/p99, in flight")
      .option('--service <name>', 'one service: its routes and its callers')
      .option('--interval <duration>', 'how often to refresh', '2s')
      .option(
        '--window <window>',
        "1m (the last minute) or last (each agent's latest report)",
        '1m',
      )
      .option('--once', 'print once and exit (for scripts)')
      .option('-o, --output <format>', 'with --once: table or json', 'table'),
  ).action(async (opts: TopOptions) => {
    const intervalMs = topInterval(opts.interval);
    if (!['1m', 'last'].includes(opts.window))
      throw new WeftError('WEFT_E_USAGE', `--window: "${opts.window}" is not one of 1m, last`);
    if (!['table', 'json'].includes(opts.output))
      throw new WeftError('WEFT_E_USAGE', `-o: "${opts.output}" is not one of table, json`);
    if (opts.output === 'json' && !opts.once)
      throw new WeftError('WEFT_E_USAGE', '-o json prints once: add --once');
    const client = WeftAdminClient.open(adminOptionsFrom(opts));
    const fetch = () => client.getStats({ window: opts.window, service: opts.service ?? '' });
    try {
      if (opts.once) {
        const stats = await fetch();
        if (opts.output === 'json') console.log(JSON.stringify(stats, null, 2));
        else
          console.log(
            renderTop(view(stats, opts, client.server), process.stdout.columns || 80, 1000).join(
              '\n',
            ),
          );
        return;
      }
      if (!tty.isatty(0) || !tty.isatty(1))
        throw new WeftError(
          'WEFT_E_USAGE',
          'weft top needs a terminal; for scripts use `weft top --once -o json`',
        );
      await runLive(
        new TopTerminal(process.stdin as tty.ReadStream, process.stdout as tty.WriteStream),
        fetch,
        opts,
        client.server,
        intervalMs,
      );
    } finally {
      client.close();
    }
  });
}

function view(
  stats: GetStatsResponse | undefined,
  opts: TopOptions,
  server: string,
  error?: string,
): TopView {
  return {
    stats,
    ...(opts.service ? { service: opts.service } : {}),
    server,
    ...(error ? { error } : {}),
    clock: new Date().toTimeString().slice(0, 8),
  };
}

/** Redraws every interval until q or Ctrl-C; the terminal is restored however it ends. */
async function runLive(
  terminal: TopTerminal,
  fetch: () => Promise<GetStatsResponse>,
  opts: TopOptions,
  server: string,
  intervalMs: number,
): Promise<void> {
  let last: GetStatsResponse | undefined;
  let error: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let quit!: () => void;
  const done = new Promise<void>((resolve) => {
    quit = resolve;
  });
  const draw = () =>
    terminal.draw(renderTop(view(last, opts, server, error), terminal.width, terminal.height));
  const refresh = async () => {
    try {
      last = await fetch();
      error = undefined;
    } catch (err) {
      error = describeError(err);
    }
    draw();
  };
  const onSignal = () => quit();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    terminal.enter(quit, draw);
    draw();
    const loop = async () => {
      await refresh();
      timer = setTimeout(() => void loop(), intervalMs);
    };
    void loop();
    await done;
  } finally {
    clearTimeout(timer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    terminal.leave();
  }
}
