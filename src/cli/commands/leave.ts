// `weft leave --config /etc/weft/agent.yaml`: this host leaves the mesh. With the node
// certificate from the agent's data directory it tells the control plane (Leave, asked of each
// replica in controlPlane.addresses in turn until one decides), which removes the node and its
// workloads and revokes its certificates; then the identity is
// forgotten locally, so that a later install joins afresh with a new token. Exit status 0
// when the node is out of the mesh (also when the control plane had removed it already),
// non-zero with the reason otherwise. Used by scripts/uninstall.sh.
import type { Command } from 'commander';
import { loadAgentConfig } from '../../agent/config.js';
import { fromGrpcError } from '../../api/grpc-errors.js';
import type { LeaveResponse } from '../../api/messages.js';
import { deadlineIn, unary } from '../../api/proto.js';
import { controlPlaneCredentials } from '../../api/tls.js';
import { identityOnly } from '../../controlplane-client/clients.js';
import { IdentityStore } from '../../controlplane-client/identity-store.js';
import { resolveCandidates } from '../../controlplane-client/replica-candidates.js';
import { WeftError } from '../../errors.js';
import { leaveOutcome } from './leave-outcome.js';

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
      // Any replica will do (they share the store): each in turn until one decides.
      const credentials = controlPlaneCredentials(
        {
          caPem: node.trustBundlePem,
          certPem: node.identity.certPem,
          keyPem: node.identity.keyPem,
        },
        node.record.trustDomain,
      );
      const timeoutMs = Number(opts.timeout) || 10_000;
      const unreachable: string[] = [];
      let res: LeaveResponse | undefined;
      let out = false;
      for (const { dial } of await resolveCandidates(config.controlPlane.addresses)) {
        const client = identityOnly(dial, credentials);
        let error: WeftError | undefined;
        try {
          res = await unary(client, client.leave, {}, { deadline: deadlineIn(timeoutMs) });
        } catch (err) {
          error = fromGrpcError(err, `the control plane at ${dial}`);
        } finally {
          client.close();
        }
        const outcome = leaveOutcome(error);
        if (outcome === 'fail') throw error!;
        if (outcome === 'next-replica') {
          unreachable.push(`${dial}: ${error!.message}`);
          continue;
        }
        if (outcome === 'already-out')
          console.log(
            `node ${node.record.hostname} is not in the mesh any more: ${error!.message}`,
          );
        out = true;
        break;
      }
      if (!out)
        throw new WeftError(
          'WEFT_E_UNAVAILABLE',
          `no control plane replica could take node ${node.record.hostname} out of the mesh (its identity is kept; run weft leave again when one is up): ${unreachable.join('; ')}`,
        );
      await store.forgetNode();
      if (res !== undefined)
        console.log(
          `node ${node.record.hostname} left the mesh: ${plural(res.revokedCertificates, 'certificate', 'certificates')} revoked, ${plural(res.workloadsRemoved, 'workload', 'workloads')} removed`,
        );
    });
}
