// Joining: the one time the agent talks to the control plane without a node certificate. The
// join token is the credential; the key of the node certificate is made here and never sent.
import type { Logger } from 'pino';
import { fromGrpcError } from '../api/grpc-errors.js';
import { createKeyAndCsr } from '../api/key-and-csr.js';
import type { JoinResponse } from '../api/messages.js';
import { deadlineIn, type IdentityClient, unary } from '../api/proto.js';
import { nodeSpiffeId } from '../api/spiffe.js';
import type { HostFacts } from '../api/stats-messages.js';
import { controlPlaneCredentials } from '../api/tls.js';
import { WeftError } from '../errors.js';
import { identityOnly } from './clients.js';
import { establishTrust } from './control-plane-trust.js';
import type { Identity, NodeRecord } from './identity-store.js';
import { certInfo, keyMatchesCert } from './pki.js';

export interface JoinParams {
  address: string;
  token: string | undefined;
  caPin: string | undefined;
  caFile: string | undefined;
  hostname: string;
  addresses: string[];
  zone: string;
  timeoutMs: number;
  /** What the host is (`weft get nodes`), when the agent could read it. */
  hostFacts?: HostFacts;
  /** Keeps the key and CSR across attempts until one succeeds (see JoinKey). */
  joinKey?: JoinKey;
}

/**
 * The node key and CSR of a join, kept until a join succeeds: a join sent again after its
 * answer was lost (the control plane committed it, then the reply or its store's reply went
 * missing) is then the same request, which the control plane answers again instead of
 * refusing the token it used up (controlplane/identity/redemption.ts).
 */
export class JoinKey {
  private held: { spiffeId: string; keyPem: string; csrPem: string } | undefined;

  async for(spiffeId: string): Promise<{ keyPem: string; csrPem: string }> {
    if (this.held?.spiffeId !== spiffeId)
      this.held = { spiffeId, ...(await createKeyAndCsr(spiffeId)) };
    return this.held;
  }

  /** The join succeeded: the next one (a rejoin) makes a new key. */
  clear(): void {
    this.held = undefined;
  }
}

export interface Joined {
  record: NodeRecord;
  identity: Identity;
  trustBundlePem: string;
}

export async function join(params: JoinParams, logger: Logger): Promise<Joined> {
  if (!params.token) {
    throw new WeftError(
      'WEFT_E_CONFIG',
      'this host has not joined the mesh: put a token from `weft token create` in controlPlane.token',
    );
  }
  const trust = await establishTrust(
    params.address,
    { caPin: params.caPin, caFile: params.caFile },
    params.timeoutMs,
  );
  const spiffeId = nodeSpiffeId(trust.trustDomain, params.hostname);
  const { keyPem, csrPem } = await (params.joinKey ?? new JoinKey()).for(spiffeId);
  logger.info({ controlPlane: params.address, spiffeId }, 'joining the mesh');

  const client = identityOnly(
    params.address,
    controlPlaneCredentials({ caPem: trust.caPem }, trust.trustDomain),
  );
  let res: JoinResponse;
  try {
    res = await joinCall(client, params, csrPem);
  } finally {
    client.close();
  }

  const info = certInfo(res.certificatePem);
  if (info.spiffeId !== spiffeId || !keyMatchesCert(keyPem, res.certificatePem)) {
    throw new WeftError(
      'WEFT_E_DENIED',
      `the control plane returned a certificate for ${info.spiffeId}, not ${spiffeId}`,
    );
  }
  params.joinKey?.clear();
  return {
    record: {
      hostname: params.hostname,
      trustDomain: trust.trustDomain,
      spiffeId,
      controlPlane: params.address,
    },
    identity: { spiffeId, keyPem, certPem: res.certificatePem, info },
    trustBundlePem: res.trustBundlePem,
  };
}

function joinCall(
  client: IdentityClient,
  params: JoinParams,
  csrPem: string,
): Promise<JoinResponse> {
  return unary(
    client,
    client.join,
    {
      token: params.token!,
      hostname: params.hostname,
      csrPem,
      addresses: params.addresses,
      zone: params.zone,
      ...(params.hostFacts ? { hostFacts: params.hostFacts } : {}),
    },
    { deadline: deadlineIn(params.timeoutMs) },
  ).catch((err) => {
    throw fromGrpcError(err, `the control plane at ${params.address}`);
  });
}
