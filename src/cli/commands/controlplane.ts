// `weft controlplane`: runs the control plane in the foreground until SIGINT/SIGTERM. Under
// systemd (Type=notify) it reports READY=1 once both ports listen and the admin credentials
// exist, so `systemctl start` (and install.sh) return only when `weft token create` works.
import type { Command } from 'commander';
import { EXIT_CONFIG } from '../../agent/exit-status.js';
import { sdNotify } from '../../agent/systemd.js';
import { DEFAULT_CONTROL_PLANE_DATA_DIR } from '../../api/admin-client.js';
import {
  applyStoreFlags,
  type ControlPlaneConfig,
  loadControlPlaneConfig,
  type StoreFlags,
} from '../../controlplane/config.js';
import { ControlPlane } from '../../controlplane/control-plane.js';
import { describeError } from '../../errors.js';
import { registerControlplaneMigrate } from './controlplane-migrate.js';
import { registerControlplaneRotateKek } from './controlplane-rotate-kek.js';

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
  const controlplane = program
    .command('controlplane')
    .description(
      'run the control plane: registry, certificate authority and sync stream (gRPC :15012, HTTP :15014)',
    )
    .option('-c, --config <file>', 'config file (YAML); without it, every default')
    .option(
      '--data-dir <dir>',
      `state, CA and admin credentials (default ${DEFAULT_CONTROL_PLANE_DATA_DIR})`,
    )
    .option('--store <type>', 'where the state lives: file (the data directory, default) or etcd')
    .option('--etcd-endpoints <urls>', 'etcd client URLs, comma-separated (with --store etcd)')
    .option('--etcd-prefix <prefix>', 'the key prefix in etcd (default /weft/)')
    .option('--etcd-ca <file>', 'CA bundle of the etcd members (https:// endpoints)')
    .option('--etcd-cert <file>', 'client certificate for etcd (with --etcd-key)')
    .option('--etcd-key <file>', 'client key for etcd (with --etcd-cert)')
    .option(
      '--ca-kek-file <file>',
      'with --store etcd: the key-encryption key (32 bytes, mode 0600) sealing the CA key in etcd',
    )
    .action(async (opts: { config?: string; dataDir?: string } & StoreFlags) => {
      const config = loadConfigOrExit(opts.config, opts);
      if (opts.dataDir !== undefined) config.dataDir = opts.dataDir;
      // start() resolves after gRPC and HTTP are bound and <dataDir>/admin is written.
      const cp = await ControlPlane.start({ config });
      sdNotify(
        `READY=1\nSTATUS=serving on ${config.listen} (gRPC ${cp.grpcPort}, HTTP ${cp.httpPort}); admin credentials in ${cp.adminCredentialsDir}`,
      );
      await untilSignal();
      sdNotify('STOPPING=1');
      await cp.stop();
    });
  registerControlplaneMigrate(controlplane);
  registerControlplaneRotateKek(controlplane);
}

/** An invalid config exits EX_CONFIG, which weft-controlplane.service does not restart on. */
function loadConfigOrExit(file: string | undefined, flags: StoreFlags): ControlPlaneConfig {
  try {
    return applyStoreFlags(loadControlPlaneConfig(file), flags);
  } catch (err) {
    console.error(`weft: ${describeError(err)}`);
    process.exit(EXIT_CONFIG);
  }
}
