// A throwaway CA and two ECDSA P-256 certificates (server.bench, client.bench) for the HAProxy
// setup, made with openssl at run time; each .pem holds the certificate then the key.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const openssl = (dir, ...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });

export function makeCerts(dir) {
  openssl(dir, 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key');
  openssl(
    dir,
    'req',
    '-x509',
    '-new',
    '-key',
    'ca.key',
    '-subj',
    '/CN=bench-ca',
    '-days',
    '2',
    '-out',
    'ca.pem',
  );
  for (const name of ['server', 'client']) {
    openssl(dir, 'ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
    openssl(
      dir,
      'req',
      '-new',
      '-key',
      `${name}.key`,
      '-subj',
      `/CN=${name}.bench`,
      '-out',
      `${name}.csr`,
    );
    writeFileSync(
      join(dir, `${name}.ext`),
      `subjectAltName=DNS:${name}.bench\nextendedKeyUsage=serverAuth,clientAuth\n`,
    );
    openssl(
      dir,
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    );
    writeFileSync(
      join(dir, `${name}.pem`),
      readFileSync(join(dir, `${name}.crt`), 'utf8') +
        readFileSync(join(dir, `${name}.key`), 'utf8'),
    );
  }
}
