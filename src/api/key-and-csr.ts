// The agent's key pairs and PKCS#10 CSRs (RFC 2986), made with node:crypto and a few lines of
// DER: ECDSA P-256, an empty subject, one URI SAN (the SPIFFE ID), signed ecdsa-with-SHA256.
// The same request csr.ts builds with @peculiar/x509, whose ASN.1 stack (asn1-*, tsyringe,
// reflect-metadata) costs the agent's master 10 MiB it needs for nothing else.

import { generateKeyPair, sign } from 'node:crypto';
import { promisify } from 'node:util';

export interface KeyAndCsr {
  /** PKCS#8 PEM ("BEGIN PRIVATE KEY"); write it 0600. */
  keyPem: string;
  csrPem: string;
}

const makeKeyPair = promisify(generateKeyPair);

/** DER: tag, length (short or long form), content. */
function der(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  const n = body.length;
  let length: Buffer;
  if (n < 0x80) length = Buffer.from([n]);
  else if (n < 0x100) length = Buffer.from([0x81, n]);
  else if (n < 0x10000) length = Buffer.from([0x82, n >> 8, n & 0xff]);
  else throw new RangeError(`DER content of ${n} bytes: a CSR is never this long`);
  return Buffer.concat([Buffer.from([tag]), length, body]);
}

const SEQUENCE = 0x30;
const SET = 0x31;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OCTET_STRING = 0x04;
const CONTEXT_0 = 0xa0; // [0] IMPLICIT, constructed: the CSR's attributes
const GENERAL_NAME_URI = 0x86; // [6] IMPLICIT IA5String: uniformResourceIdentifier

/** Object identifiers, DER-encoded whole (tag 06 and length included). */
const OID_EXTENSION_REQUEST = Buffer.from('06092a864886f70d01090e', 'hex'); // 1.2.840.113549.1.9.14
const OID_SUBJECT_ALT_NAME = Buffer.from('0603551d11', 'hex'); // 2.5.29.17
const OID_ECDSA_WITH_SHA256 = Buffer.from('06082a8648ce3d040302', 'hex'); // 1.2.840.10045.4.3.2

/** The CertificationRequestInfo and signature of a CSR for `spiffeId` with this key pair. */
export function csrDer(
  spiffeId: string,
  spkiDer: Buffer,
  sign256: (data: Buffer) => Buffer,
): Buffer {
  const san = der(SEQUENCE, der(GENERAL_NAME_URI, Buffer.from(spiffeId, 'ascii')));
  const extensions = der(SEQUENCE, der(SEQUENCE, OID_SUBJECT_ALT_NAME, der(OCTET_STRING, san)));
  const attributes = der(CONTEXT_0, der(SEQUENCE, OID_EXTENSION_REQUEST, der(SET, extensions)));
  const info = der(
    SEQUENCE,
    der(INTEGER, Buffer.from([0])), // version 1
    der(SEQUENCE), // empty subject: the identity is the SAN
    spkiDer,
    attributes,
  );
  const signature = sign256(info);
  return der(
    SEQUENCE,
    info,
    der(SEQUENCE, OID_ECDSA_WITH_SHA256),
    der(BIT_STRING, Buffer.from([0]), signature),
  );
}

function pem(label: string, body: Buffer): string {
  const lines = body.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----`;
}

/** A fresh ECDSA P-256 key pair and a CSR for `spiffeId` signed with it. */
export async function createKeyAndCsr(spiffeId: string): Promise<KeyAndCsr> {
  if (!/^[\x21-\x7e]+$/.test(spiffeId))
    throw new TypeError(
      `a SPIFFE ID is printable ASCII without spaces, got ${JSON.stringify(spiffeId)}`,
    );
  const { publicKey, privateKey } = await makeKeyPair('ec', { namedCurve: 'P-256' });
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const csr = csrDer(spiffeId, spki, (data) =>
    sign('sha256', data, { key: privateKey, dsaEncoding: 'der' }),
  );
  return {
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    csrPem: pem('CERTIFICATE REQUEST', csr),
  };
}
