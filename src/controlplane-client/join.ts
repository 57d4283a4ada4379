// Joining: the one time the agent talks to the control plane without a node certificate. The
// join token is the credential; the key of the node certificate is made here and never sent.
import type { Logger } from 'pino';
import { createKeyAndCsr } from '../api/csr.js';
import { fromGrpcError } from '../api/grpc-errors.js';
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
  const { keyPem, csrPem } = await createKeyAndCsr(spiffeId);
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
