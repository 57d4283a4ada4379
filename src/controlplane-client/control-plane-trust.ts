// How the agent decides, before it has joined, that it talks to the real control plane: from
// a pin (sha256 of the CA's public key, printed by `weft token create`) or a CA file. It
// fetches the control plane's chain once, finds the CA in it (pin) or verifies against it
// (file), and learns the trust domain from the server's spiffe://<td>/controlplane identity,
// which the node CSR needs before the join response could tell it.

import type { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { caPin, splitPemCertificates } from '../api/ca-pin.js';
import { parseSpiffeId, spiffeIdOfCertificate } from '../api/spiffe.js';
import { chainOf, checkControlPlaneIdentity, parseHostPort } from '../api/tls.js';
import { WeftError } from '../errors.js';

export interface ControlPlaneTrust {
  /** CA certificate(s) to verify the control plane with until the join returns a bundle. */
  caPem: string;
  trustDomain: string;
}

/**
 * Connects once to the control plane and establishes trust in it from caPin or caFile.
 * Throws WEFT_E_UNAVAILABLE when it cannot be reached, WEFT_E_DENIED when it is not the one meant.
 */
export async function establishTrust(
  address: string,
  pin: { caPin?: string | undefined; caFile?: string | undefined },
  timeoutMs = 5_000,
): Promise<ControlPlaneTrust> {
  if (pin.caPin === undefined && pin.caFile === undefined) {
    throw new WeftError(
      'WEFT_E_CONFIG',
      'controlPlane.caPin (printed by `weft token create`) or controlPlane.caFile is needed to join',
    );
  }
  const fileCa = pin.caFile === undefined ? undefined : readCaFile(pin.caFile);
  const chain = await fetchChain(address, fileCa, timeoutMs);
  const id = spiffeIdOfCertificate(chain[0]!);
  const parsed = id === undefined ? undefined : parseSpiffeId(id);
  if (parsed?.kind !== 'controlplane') {
    throw new WeftError(
      'WEFT_E_DENIED',
      `the server at ${address} is not a weft control plane (its identity is ${id ?? 'none'})`,
    );
  }
  const caPem = fileCa ?? pinnedCa(address, chain, pin.caPin!);
  return { caPem, trustDomain: parsed.trustDomain };
}

function readCaFile(file: string): string {
  let pem: string;
  try {
    pem = readFileSync(file, 'utf8');
  } catch (err) {
    throw new WeftError(
      'WEFT_E_CONFIG',
      `controlPlane.caFile: cannot read ${file}: ${(err as Error).message}`,
    );
  }
  if (splitPemCertificates(pem).length === 0) {
    throw new WeftError('WEFT_E_CONFIG', `controlPlane.caFile: ${file} holds no PEM certificate`);
  }
  return pem;
}

/** The chain the server presented, leaf first; verified against fileCa when there is one. */
function fetchChain(
  address: string,
  fileCa: string | undefined,
  timeoutMs: number,
): Promise<X509Certificate[]> {
  const { host, port } = parseHostPort(address, 15012);
  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port,
      ALPNProtocols: ['h2'],
      timeout: timeoutMs,
      // With only a pin there is nothing to verify against yet: pinnedCa() does it.
      rejectUnauthorized: fileCa !== undefined,
      ...(fileCa === undefined
        ? {}
        : { ca: fileCa, checkServerIdentity: checkControlPlaneIdentity() }),
    });
    socket.once('secureConnect', () => {
      const chain = chainOf(socket.getPeerCertificate(true));
      socket.end();
      if (chain.length === 0)
        reject(
          new WeftError('WEFT_E_DENIED', `control plane at ${address} presented no certificate`),
        );
      else resolve(chain);
    });
    socket.once('timeout', () => {
      socket.destroy();
      reject(
        new WeftError(
          'WEFT_E_UNAVAILABLE',
          `cannot reach the control plane at ${address}: timed out`,
        ),
      );
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      // Certificate errors only happen with caFile: the server is not the one that file trusts.
      // Only a verdict on the certificate says so (checkServerIdentity's error has no code); a
      // connection cut mid-handshake ("disconnected before secure TLS connection was
      // established", ECONNRESET) is an outage, retried, not a refusal.
      const tlsFailure =
        fileCa !== undefined &&
        (err.code === undefined || /CERT|SELF_SIGNED|UNABLE_TO_/.test(err.code));
      reject(
        tlsFailure
          ? new WeftError(
              'WEFT_E_DENIED',
              `control plane at ${address} is not trusted by controlPlane.caFile: ${err.message}`,
            )
          : new WeftError(
              'WEFT_E_UNAVAILABLE',
              `cannot reach the control plane at ${address}: ${err.message}`,
            ),
      );
    });
  });
}

/** The pinned CA from the chain, after checking every certificate below it is signed by the next. */
function pinnedCa(address: string, chain: X509Certificate[], pin: string): string {
  const index = chain.findIndex((c) => caPin(c) === pin.toLowerCase());
  if (index < 0) {
    throw new WeftError(
      'WEFT_E_DENIED',
      `control plane at ${address}: no certificate in its chain matches controlPlane.caPin (wrong pin or wrong server)`,
    );
  }
  for (let i = 0; i < index; i++) {
    if (!chain[i]!.verify(chain[i + 1]!.publicKey)) {
      throw new WeftError(
        'WEFT_E_DENIED',
        `control plane at ${address}: its certificate chain does not lead to the pinned CA`,
      );
    }
  }
  const leaf = chain[0]!;
  const now = Date.now();
  if (Date.parse(leaf.validFrom) > now || Date.parse(leaf.validTo) < now) {
    throw new WeftError(
      'WEFT_E_DENIED',
      `control plane at ${address}: its certificate is not valid now (${leaf.validFrom} - ${leaf.validTo})`,
    );
  }
  return chain[index]!.toString();
}
