// `weft delete KIND NAME`: removes one resource (a Service's virtual IP is freed with it).
// `weft delete node NAME` removes a node: its workloads and unused tokens go with it, and every
// certificate it holds is revoked (the control plane and every agent refuse them at once).
import type { Command } from 'commander';
import { adminOptionsFrom, WeftAdminClient, withAdminOptions } from '../../api/admin-client.js';
import { resolveKind } from '../../api/resources/index.js';
import { WeftError } from '../../errors.js';

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

export function registerDelete(program: Command): void {
  withAdminOptions(
    program
      .command('delete')
      .description('delete a resource, or a node (revoking its certificates)')
      .argument(
        '<kind>',
        'node, mesh, service (svc), trafficpolicy (tp), httproute, grpcroute, authorizationpolicy (authz), workload',
      )
      .argument('<name>', 'the resource or node name'),
  ).action(
    async (kindArg: string, name: string, opts: { server?: string; credentials?: string }) => {
      const isNode = /^(node|nodes|no)$/i.test(kindArg);
      const kind = isNode ? undefined : resolveKind(kindArg);
      if (!isNode && kind === undefined)
        throw new WeftError('WEFT_E_USAGE', `unknown kind "${kindArg}"`);
      const client = WeftAdminClient.open(adminOptionsFrom(opts));
      try {
        if (kind === undefined) {
          const res = await client.deleteNode(name);
          console.log(
            `node/${name} deleted: ${plural(res.revokedCertificates, 'certificate', 'certificates')} revoked, ${plural(res.workloadsRemoved, 'workload', 'workloads')} removed`,
          );
          return;
        }
        await client.delete(kind, name);
        console.log(`${kind.toLowerCase()}/${name} deleted`);
      } finally {
        client.close();
      }
    },
  );
}
