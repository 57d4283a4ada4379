// `weft controlplane migrate --from DIR --to etcd --etcd-endpoints ... --ca-kek-file FILE`:
// moves a file-store control plane's state and CA into etcd (controlplane/migrate/). The etcd
// and KEK options are those of `weft controlplane` itself (commander gives them to the parent
// command, wherever they are written), so both read them with the same names and checks.
import type { Command } from 'commander';
import {
  applyStoreFlags,
  parseControlPlaneConfig,
  type StoreFlags,
} from '../../controlplane/config.js';
import { migrateToEtcd } from '../../controlplane/migrate/migrate-to-etcd.js';
import { WeftError } from '../../errors.js';

interface MigrateFlags extends StoreFlags {
  from: string;
  to: string;
  overwrite?: boolean;
  caCert?: string;
  caKey?: string;
  config?: string;
  dataDir?: string;
}

export function registerControlplaneMigrate(controlplane: Command): void {
  controlplane
    .command('migrate')
    .description(
      "move a file-store control plane's state (resources, nodes, tokens, VIPs, workloads) and CA into etcd; stop that control plane first",
    )
    .requiredOption(
      '--from <data-dir>',
      'the data directory of the control plane on the file store',
    )
    .requiredOption('--to <store>', 'where to: etcd (with --etcd-endpoints, --ca-kek-file)')
    .option('--overwrite', 'delete what the etcd prefix holds first (stop every replica on it)')
    .option('--ca-cert <file>', 'the CA certificate, when the control plane used `ca:` files')
    .option('--ca-key <file>', 'the CA key, when the control plane used `ca:` files')
    .configureHelp({ showGlobalOptions: true })
    .action(async (_opts: unknown, command: Command) => {
      const flags = command.optsWithGlobals<MigrateFlags>();
      const usage = (message: string) => new WeftError('WEFT_E_USAGE', message);
      for (const [given, flag] of [
        [flags.config, '--config'],
        [flags.dataDir, '--data-dir'],
        [flags.store, '--store'],
      ] as const)
        if (given !== undefined)
          throw usage(
            `migrate does not take ${flag}: give --from DIR and --to etcd with the etcd options`,
          );
      if (flags.to !== 'etcd')
        throw usage(`--to ${flags.to}: the only store to migrate to is etcd`);
      if (flags.caKekFile === undefined)
        throw usage(
          '--to etcd needs --ca-kek-file FILE: the CA key goes into etcd sealed with it (umask 077; head -c 32 /dev/urandom > FILE), and every replica then starts with the same file',
        );
      if ((flags.caCert === undefined) !== (flags.caKey === undefined))
        throw usage('--ca-cert and --ca-key go together');
      const config = applyStoreFlags(parseControlPlaneConfig({}, '(migrate)'), {
        ...flags,
        store: 'etcd',
      });
      if (config.store.type !== 'etcd') throw usage('--to etcd needs --etcd-endpoints');
      const store = config.store;
      const result = await migrateToEtcd({
        from: flags.from,
        etcd: {
          endpoints: store.endpoints,
          prefix: store.prefix,
          caFile: store.caFile,
          certFile: store.certFile,
          keyFile: store.keyFile,
        },
        kekFile: flags.caKekFile,
        ca:
          flags.caCert !== undefined && flags.caKey !== undefined
            ? { certFile: flags.caCert, keyFile: flags.caKey }
            : undefined,
        overwrite: flags.overwrite === true,
        say: (line) => console.log(line),
      });
      console.log(
        `migrated ${result.keys} keys and ${result.leases} leases from ${flags.from} to etcd ${store.prefix}; the CA (pin ${result.caPin}) is sealed there under ${flags.caKekFile}`,
      );
      console.log(
        `next: start the replicas with --store etcd --etcd-endpoints ... --ca-kek-file (a copy of ${flags.caKekFile} on each), with a data directory that holds no store/ (move ${flags.from}/store away), and point the agents' controlPlane.addresses at them; keep ${flags.from} as the way back`,
      );
    });
}
