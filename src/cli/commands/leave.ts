// `weft leave --config /etc/weft/agent.yaml`: this host leaves the mesh. With the node
// certificate from the agent's data directory it tells the control plane (Leave), which
// removes the node and its workloads and revokes its certificates; then the identity is
// forgotten locally, so that a later install joins afresh with a new token. Exit status 0
// when the node is out of the mesh (also when the control plane had removed it already),
// non-zero with the reason otherwise. Used by scripts/uninstall.sh.
import type { Command } from 'commander';
import { loadAgentConfig } from '../../agent/config.js';
import { fromGrpcError, refusalReason } from '../../api/grpc-errors.js';
import type { LeaveResponse } from '../../api/messages.js';
import { deadlineIn, unary } from '../../api/proto.js';
import { controlPlaneCredentials } from '../../api/tls.js';
import { identityOnly } from '../../controlplane-client/clients.js';
import { IdentityStore } from '../../controlplane-client/identity-store.js';
import { WeftError } from '../../errors.js';

/** Refusals that mean the control plane no longer has this node: it is out already. */
const ALREADY_OUT = new Set(['certificate_revoked', 'node_unknown']);

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;

export function registerLeave(program: Command): void {
  program
    .command('leave')
    .description(
      'take this host out of the mesh: the control plane removes it and revokes its certificates',
    )
    .option('-c, --config <file>', 'the agent config (its dataDir and controlPlane.address)')
    .option('--timeout <ms>', 'how long to wait for the control plane', '10000')
    .action(async (opts: { config?: string; timeout: string }) => {
      const config = loadAgentConfig(opts.config);
      if (config.controlPlane === undefined) {
        throw new WeftError(
          'WEFT_E_CONFIG',
          `${opts.config ?? 'the agent config'}: controlPlane.address is not set: there is no control plane to leave`,
        );
      }
      const store = new IdentityStore(config.dataDir);
      const node = await store.loadNode();
      if (node === undefined) {
        throw new WeftError(
          'WEFT_E_CONFIG',
          `this host has no mesh identity in ${config.dataDir} (not joined, or it left already): nothing to leave`,
        );
      }
      // Any replica will do (they share the store): the first one listed.
      const address = config.controlPlane.addresses[0]!;
      const client = identityOnly(
        address,
        controlPlaneCredentials(
          {
            caPem: node.trustBundlePem,
            certPem: node.identity.certPem,
            keyPem: node.identity.keyPem,
          },
          node.record.trustDomain,
        ),
      );
      let res: LeaveResponse | undefined;
      try {
        res = await unary(
          client,
          client.leave,
          {},
          { deadline: deadlineIn(Number(opts.timeout) || 10_000) },
        );
      } catch (err) {
        const reason = refusalReason(err);
        if (reason === undefined || !ALREADY_OUT.has(reason))
          throw fromGrpcError(err, `the control plane at ${address}`);
        console.log(
          `node ${node.record.hostname} is not in the mesh any more: ${fromGrpcError(err).message}`,
        );
      } finally {
        client.close();
      }
      await store.forgetNode();
      if (res !== undefined)
        console.log(
          `node ${node.record.hostname} left the mesh: ${plural(res.revokedCertificates, 'certificate', 'certificates')} revoked, ${plural(res.workloadsRemoved, 'workload', 'workloads')} removed`,
        );
    });
}
