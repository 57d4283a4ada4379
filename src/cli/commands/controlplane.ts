// `weft controlplane`: runs the control plane in the foreground until SIGINT/SIGTERM.
import type { Command } from 'commander';
import { loadControlPlaneConfig } from '../../controlplane/config.js';
import { ControlPlane } from '../../controlplane/control-plane.js';

function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

export function registerControlplane(program: Command): void {
  program
    .command('controlplane')
    .description(
      'run the control plane: registry, certificate authority and sync stream (gRPC :15012, HTTP :15014)',
    )
    .option('-c, --config <file>', 'config file (YAML); without it, every default')
    .option(
      '--data-dir <dir>',
      'state, CA and admin credentials (default /var/lib/weft/controlplane)',
    )
    .action(async (opts: { config?: string; dataDir?: string }) => {
      const config = loadControlPlaneConfig(opts.config);
      if (opts.dataDir !== undefined) config.dataDir = opts.dataDir;
      const cp = await ControlPlane.start({ config });
      await untilSignal();
      await cp.stop();
    });
}
