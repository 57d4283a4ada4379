// `weft node allow NAME --service S` and `weft node disallow NAME --service S`: which services
// a node may serve (register workloads of, and get certificates for). Disallowing removes the
// node's workloads of the service and revokes its certificates for it.
import type { Command } from 'commander';
import { adminOptionsFrom, WeftAdminClient, withAdminOptions } from '../../api/admin-client.js';
import { WeftError } from '../../errors.js';
import { serviceList } from './token.js';

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

type Flags = { service: string[]; server?: string; credentials?: string };

async function change(name: string, opts: Flags, allow: boolean): Promise<void> {
  const services = opts.service.flatMap((s) => serviceList(s, '--service'));
  if (services.length === 0)
    throw new WeftError('WEFT_E_USAGE', '--service S is required (repeatable, or a,b)');
  const client = WeftAdminClient.open(adminOptionsFrom(opts));
  try {
    const res = await client.setNodeServices({
      node: name,
      allow: allow ? services : [],
      disallow: allow ? [] : services,
    });
    console.log(`node/${name} may serve ${res.services.join(', ') || 'no service'}`);
    if (res.workloadsRemoved > 0 || res.revokedCertificates > 0)
      console.log(
        `removed ${res.workloadsRemoved} workload(s), revoked ${res.revokedCertificates} certificate(s)`,
      );
  } finally {
    client.close();
  }
}

export function registerNode(program: Command): void {
  const node = program.command('node').description("a node's allowed services");
  for (const allow of [true, false]) {
    withAdminOptions(
      node
        .command(allow ? 'allow' : 'disallow')
        .description(
          allow
            ? 'let a node serve a service (register workloads of it, get its certificate)'
            : 'stop a node serving a service: its workloads of it go, its certificates for it are revoked',
        )
        .argument('<name>', 'the node (see weft get nodes)')
        .requiredOption('--service <name>', 'a service (repeatable, or a,b)', collect),
    ).action((name: string, opts: Flags) => change(name, opts, allow));
  }
}
