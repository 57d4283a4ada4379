// `weft redirect install|uninstall|status`: the host's capture rules, from the agent's
// config file (its `capture:` section; defaults without one).
import type { Command } from 'commander';
import {
  type CaptureStatus,
  captureStatus,
  familyLabel,
  type InstallResult,
  installCapture,
  loadCaptureConfig,
  uninstallCapture,
} from '../../redirect/index.js';

/** Exit code of `status` when the rules are missing or differ from the config. */
export const EXIT_NOT_IN_SYNC = 3;

interface Options {
  config?: string;
  dryRun?: boolean;
}

const CONFIG_HELP = "the agent's config file (YAML); capture settings are under `capture:`";

export function registerRedirect(program: Command): void {
  const redirect = program
    .command('redirect')
    .description('transparent capture of local TCP (and DNS) traffic with iptables');

  redirect
    .command('install')
    .description('install or update the capture rules (IPv4 and IPv6, atomically, idempotent)')
    .option('--config <file>', CONFIG_HELP)
    .option('--dry-run', 'print the iptables-restore input per family without applying it')
    .action(async (opts: Options) => {
      const config = await loadCaptureConfig(opts.config);
      const result = await installCapture(config, { source: opts.config, dryRun: opts.dryRun });
      console.log(opts.dryRun ? formatDryRun(result) : formatInstall(result, config.inboundMode));
    });

  redirect
    .command('uninstall')
    .description('remove every weft capture rule, chain and route, and nothing else')
    .option('--config <file>', CONFIG_HELP)
    .action(async (opts: Options) => {
      const config = opts.config === undefined ? undefined : await loadCaptureConfig(opts.config);
      const result = await uninstallCapture(config);
      const removed = result.removed.map(
        (r) => `iptables-${r.backend} ${familyLabel(r.family)} ${r.rules} rules`,
      );
      const parts = [...removed, ...result.routing];
      console.log(
        parts.length === 0
          ? 'weft: no capture rules were installed'
          : `weft: capture removed: ${parts.join('; ')}`,
      );
    });

  redirect
    .command('status')
    .description(
      `show the installed rules and their difference from the config (exit ${EXIT_NOT_IN_SYNC} when not in sync)`,
    )
    .option('--config <file>', CONFIG_HELP)
    .action(async (opts: Options) => {
      const config = await loadCaptureConfig(opts.config);
      const status = await captureStatus(config, { source: opts.config });
      console.log(formatStatus(status));
      if (!status.inSync) process.exitCode = EXIT_NOT_IN_SYNC;
    });
}

function formatInstall(result: InstallResult, mode: string): string {
  const counts = result.families.map((f) => `${familyLabel(f.family)} ${f.rules} rules`).join(', ');
  const head = result.changed
    ? 'weft: capture installed'
    : 'weft: capture already installed, nothing changed';
  const routing = result.routing.length > 0 ? `; ${result.routing.join('; ')}` : '';
  return `${head} (iptables-${result.backend}, inbound ${mode}): ${counts}${routing}`;
}

function formatDryRun(result: InstallResult): string {
  return result.families
    .map((f) =>
      f.payload === ''
        ? `# ${familyLabel(f.family)}: nothing to change`
        : `# ${familyLabel(f.family)}: iptables-${result.backend} restore --noflush input\n${f.payload.trimEnd()}`,
    )
    .join('\n');
}

function formatStatus(status: CaptureStatus): string {
  const lines = [`backend: iptables-${status.backend}`];
  for (const f of status.families) {
    const count = f.state === 'in-sync' ? ` (${f.installed.length} rules)` : '';
    lines.push(`${familyLabel(f.family)}: ${f.state}${count}`);
    for (const d of f.diff) lines.push(`  ${d.op} ${d.line}`);
  }
  if (status.routing.length > 0) lines.push('policy routing:');
  for (const r of status.routing) {
    const state = r.wanted === r.present ? 'ok' : r.wanted ? 'missing' : 'not wanted';
    lines.push(`  ${state.padEnd(10)} ${r.what}`);
  }
  lines.push(
    status.inSync
      ? 'in sync'
      : "not in sync ('+' missing, '-' not wanted): run `weft redirect install` to apply the config",
  );
  return lines.join('\n');
}
