// `weft controlplane rotate-kek --ca-kek-file OLD --new-kek-file NEW --etcd-endpoints ...`:
// re-seals the CA key in etcd under a new KEK (controlplane/ca/rotate-kek.ts). The etcd and
// KEK options are `weft controlplane`'s own (commander gives them to the parent command).
import type { Command } from 'commander';
import { rotateKek } from '../../controlplane/ca/rotate-kek.js';
import {
  applyStoreFlags,
  parseControlPlaneConfig,
  type StoreFlags,
} from '../../controlplane/config.js';
import { WeftError } from '../../errors.js';

interface RotateFlags extends StoreFlags {
  newKekFile: string;
  config?: string;
  dataDir?: string;
}

export function registerControlplaneRotateKek(controlplane: Command): void {
  controlplane
    .command('rotate-kek')
    .description(
      'seal the CA key kept in etcd under a new key-encryption key (--ca-kek-file: the current one)',
    )
    .requiredOption('--new-kek-file <file>', 'the new KEK (32 random bytes, mode 0600)')
    .configureHelp({ showGlobalOptions: true })
    .action(async (_opts: unknown, command: Command) => {
      const flags = command.optsWithGlobals<RotateFlags>();
      const usage = (message: string) => new WeftError('WEFT_E_USAGE', message);
      for (const [given, flag] of [
        [flags.config, '--config'],
        [flags.dataDir, '--data-dir'],
      ] as const)
        if (given !== undefined) throw usage(`rotate-kek does not take ${flag}`);
      if (flags.caKekFile === undefined)
        throw usage('rotate-kek needs --ca-kek-file FILE: the KEK the CA key is sealed with now');
      if (flags.store !== undefined && flags.store !== 'etcd')
        throw usage('rotate-kek is for a control plane on etcd (--store etcd)');
      const config = applyStoreFlags(parseControlPlaneConfig({}, '(rotate-kek)'), {
        ...flags,
        store: 'etcd',
      });
      if (config.store.type !== 'etcd') throw usage('rotate-kek needs --etcd-endpoints');
      const { type: _etcd, ...etcd } = config.store;
      const done = await rotateKek({
        etcd,
        oldKekFile: flags.caKekFile,
        newKekFile: flags.newKekFile,
      });
      console.log(
        `the CA key (pin ${done.pin}) in etcd ${etcd.prefix} is sealed under ${flags.newKekFile} (KEK ${done.to}, was ${done.from})`,
      );
      console.log(
        `next: on every replica, put ${flags.newKekFile}'s key in its caKekFile (mode 0600) and restart it, one at a time; a replica started on the old KEK is refused`,
      );
    });
}
