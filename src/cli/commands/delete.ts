// `weft delete KIND NAME`: removes one resource (a Service's virtual IP is freed with it).
import type { Command } from 'commander';
import { adminOptionsFrom, WeftAdminClient, withAdminOptions } from '../../api/admin-client.js';
import { resolveKind } from '../../api/resources/index.js';
import { WeftError } from '../../errors.js';

export function registerDelete(program: Command): void {
  withAdminOptions(
    program
      .command('delete')
      .description('delete a resource')
      .argument(
        '<kind>',
        'mesh, service (svc), trafficpolicy (tp), httproute, authorizationpolicy (authz), workload',
      )
      .argument('<name>', 'the resource name'),
  ).action(
    async (kindArg: string, name: string, opts: { server?: string; credentials?: string }) => {
      const kind = resolveKind(kindArg);
      if (kind === undefined) throw new WeftError('WEFT_E_USAGE', `unknown kind "${kindArg}"`);
      const client = WeftAdminClient.open(adminOptionsFrom(opts));
      try {
        await client.delete(kind, name);
        console.log(`${kind.toLowerCase()}/${name} deleted`);
      } finally {
        client.close();
      }
    },
  );
}
