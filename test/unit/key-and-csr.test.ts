// The agent's CSRs (src/api/key-and-csr.ts, DER written by hand so the agent loads no ASN.1
// library): the control plane's CA accepts each one (parse, self-signature, P-256, exactly the
// one SPIFFE ID), whatever the ID's length (the DER length forms), and the key PEM holds the
// key the CSR carries.
import { createPublicKey } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createKeyAndCsr } from '../../src/api/key-and-csr.js';
import { x509 } from '../../src/api/x509.js';
import { verifyCsr } from '../../src/controlplane/ca/csr-check.js';

describe('createKeyAndCsr', () => {
  it.each([
    ['a service', 'spiffe://weft.local/svc/echo'],
    ['a node', 'spiffe://weft.local/node/host-1'],
    ['an ID of 130 characters (long-form lengths)', `spiffe://weft.local/svc/${'a'.repeat(106)}`],
    ['an ID of 300 characters (two length bytes)', `spiffe://weft.local/svc/${'b'.repeat(276)}`],
  ])('makes a CSR the CA accepts for %s', async (_what, spiffeId) => {
    const { keyPem, csrPem } = await createKeyAndCsr(spiffeId);
    expect(csrPem).toMatch(
      /^-----BEGIN CERTIFICATE REQUEST-----\n[\s\S]+\n-----END CERTIFICATE REQUEST-----$/,
    );
    const key = await verifyCsr(csrPem, spiffeId);
    expect(key.algorithm).toMatchObject({ name: 'ECDSA', namedCurve: 'P-256' });
    // The private key is the CSR's: its public half is the key the CA will certify.
    const spki = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
    expect(Buffer.from(key.rawData).equals(spki)).toBe(true);
    expect(new x509.Pkcs10CertificateRequest(csrPem).subject).toBe('');
  });

  it('makes a new key each time', async () => {
    const [a, b] = await Promise.all([
      createKeyAndCsr('spiffe://weft.local/svc/echo'),
      createKeyAndCsr('spiffe://weft.local/svc/echo'),
    ]);
    expect(a.keyPem).not.toBe(b.keyPem);
  });

  it('is refused by the CA for another ID than its own', async () => {
    const { csrPem } = await createKeyAndCsr('spiffe://weft.local/svc/echo');
    await expect(verifyCsr(csrPem, 'spiffe://weft.local/svc/other')).rejects.toThrow(
      /asks for spiffe:\/\/weft.local\/svc\/echo/,
    );
  });

  it('refuses an ID that is not printable ASCII, naming it', async () => {
    await expect(createKeyAndCsr('spiffe://weft.local/svc/é')).rejects.toThrow(
      /printable ASCII.*svc\/é/,
    );
  });
});
