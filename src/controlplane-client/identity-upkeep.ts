// Keeps this host's identities current over one control plane connection: registers the local
// workloads, gets a certificate for each local service that lacks one or is past half-life,
// renews the node certificate, and forgets services that left (or that the control plane
// refused: this node may not serve them). Idempotent: it runs on every connect, when a
// certificate falls due, when the workloads change, and while registrations stay refused.
import type { Logger } from 'pino';
import { fromGrpcError } from '../api/grpc-errors.js';
import { createKeyAndCsr } from '../api/key-and-csr.js';
import type { RegisterWorkloadsResponse } from '../api/messages.js';
import { deadlineIn, type IdentityClient, unary } from '../api/proto.js';
import { serviceSpiffeId } from '../api/spiffe.js';
import { WeftError } from '../errors.js';
import type { Certificates } from './certificates.js';
import type { Identity } from './identity-store.js';
import { type Health, type LocalWorkload, localServices } from './local-workloads.js';
import { certInfo, keyMatchesCert } from './pki.js';

export interface UpkeepContext {
  client: IdentityClient;
  certs: Certificates;
  workloads: readonly LocalWorkload[];
  health: (name: string) => Health;
  trustDomain: string;
  timeoutMs: number;
  logger: Logger;
  /** A bundle that came with a certificate (the CA may have rotated). */
  onTrustBundle: (pem: string) => Promise<void>;
  /** What a registration stored and refused (the session keeps and reports the refusals). */
  onRegistered: (res: RegisterWorkloadsResponse) => void;
  /** Names of the local workloads the control plane refuses now: they get no certificate. */
  refused: () => ReadonlySet<string>;
}

/** Registers the workloads (when asked) and brings every certificate up to date. */
export async function upkeep(ctx: UpkeepContext, register: boolean): Promise<void> {
  if (register) ctx.onRegistered(await registerWorkloads(ctx));
  const { certs } = ctx;
  if (certs.needsRenewal(certs.node)) await renewNode(ctx);
  const refused = ctx.refused();
  const wanted = localServices(ctx.workloads.filter((w) => !refused.has(w.name)));
  for (const service of wanted) {
    if (certs.needsRenewal(certs.service(service))) await signWorkload(ctx, service);
  }
  for (const service of certs.serviceNames()) {
    if (!wanted.includes(service)) await certs.dropService(service);
  }
}

async function registerWorkloads(ctx: UpkeepContext): Promise<RegisterWorkloadsResponse> {
  const workloads = ctx.workloads.map((w) => ({
    name: w.name,
    service: w.service,
    address: w.address,
    port: w.port,
    health: ctx.health(w.name),
    weight: w.weight,
    zone: w.zone,
  }));
  const res = await unary(
    ctx.client,
    ctx.client.registerWorkloads,
    { workloads },
    { deadline: deadlineIn(ctx.timeoutMs) },
  ).catch((err) => {
    throw withContext(err, 'registering workloads');
  });
  // An older control plane sends no `refused`.
  return { names: res.names ?? [], refused: res.refused ?? [] };
}

async function renewNode(ctx: UpkeepContext): Promise<void> {
  const spiffeId = ctx.certs.node!.spiffeId;
  const { keyPem, csrPem } = await createKeyAndCsr(spiffeId);
  const res = await unary(
    ctx.client,
    ctx.client.renewNode,
    { csrPem },
    { deadline: deadlineIn(ctx.timeoutMs) },
  ).catch((err) => {
    throw withContext(err, 'renewing the node certificate');
  });
  const identity = checkIssued(spiffeId, keyPem, res.certificatePem);
  if (res.trustBundlePem) await ctx.onTrustBundle(res.trustBundlePem);
  await ctx.certs.setNode(identity);
  ctx.logger.info(
    { spiffeId, serial: identity.info.serial, notAfter: identity.info.notAfter },
    'node certificate renewed',
  );
}

async function signWorkload(ctx: UpkeepContext, service: string): Promise<void> {
  const spiffeId = serviceSpiffeId(ctx.trustDomain, service);
  const { keyPem, csrPem } = await createKeyAndCsr(spiffeId);
  const res = await unary(
    ctx.client,
    ctx.client.signWorkload,
    { service, csrPem },
    { deadline: deadlineIn(ctx.timeoutMs) },
  ).catch((err) => {
    throw withContext(err, `getting a certificate for ${spiffeId}`);
  });
  const identity = checkIssued(spiffeId, keyPem, res.certificatePem);
  if (res.trustBundlePem) await ctx.onTrustBundle(res.trustBundlePem);
  await ctx.certs.setService(service, identity);
  ctx.logger.info(
    { spiffeId, serial: identity.info.serial, notAfter: identity.info.notAfter },
    'workload certificate issued',
  );
}

/** The certificate must be for the identity asked for and for the key made here. */
function checkIssued(spiffeId: string, keyPem: string, certPem: string): Identity {
  const info = certInfo(certPem);
  if (info.spiffeId !== spiffeId) {
    throw new WeftError(
      'WEFT_E_DENIED',
      `the control plane issued a certificate for ${info.spiffeId}, asked for ${spiffeId}`,
    );
  }
  if (!keyMatchesCert(keyPem, certPem)) {
    throw new WeftError(
      'WEFT_E_DENIED',
      `the certificate issued for ${spiffeId} is not for the key in the CSR`,
    );
  }
  return { spiffeId, keyPem, certPem, info };
}

/** The control plane's error, with what the agent was doing in front of its message. */
function withContext(err: unknown, what: string): WeftError {
  const e = fromGrpcError(err);
  return new WeftError(e.code, `${what}: ${e.message}`, { cause: err });
}
