// A real etcd for a test file: Debian's etcd-server binary in a temporary data directory,
// client and peer ports on 127.0.0.1 chosen free, ready once /health answers, killed and
// removed by stop(). With `tls`, it serves https and asks every client for a certificate
// signed by the given CA (--client-cert-auth). A missing binary fails the test loudly.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './wait.js';

export interface EtcdTls {
  /** The etcd member's server certificate (SAN IP 127.0.0.1) and key. */
  certFile: string;
  keyFile: string;
  /** The CA that signs the clients' certificates (and the server's, for clients to trust). */
  caFile: string;
  /** A client certificate signed by caFile, used to check health. */
  clientCertFile: string;
  clientKeyFile: string;
}

export interface TestEtcd {
  /** The client URL (http://127.0.0.1:PORT, https:// with TLS). */
  endpoint: string;
  dataDir: string;
  /** What etcd printed (for a failure's message). */
  output(): string;
  /** Kills etcd (SIGKILL) and starts it again on the same data directory and ports. */
  restart(): Promise<void>;
  /** Kills etcd (SIGKILL), keeping its data directory; start() brings it back. */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function requireEtcd(): void {
  try {
    execFileSync('sh', ['-c', 'command -v etcd'], { stdio: 'ignore' });
  } catch {
    throw new Error(
      "these tests need etcd (Debian's etcd-server package): run scripts/bootstrap to install it",
    );
  }
}

/** A port nobody listens on right now (the OS's choice). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address !== null
          ? resolve(address.port)
          : reject(new Error('no port')),
      );
    });
  });
}

function healthy(endpoint: string, tls: EtcdTls | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    const url = new URL('/health', endpoint);
    const req = (tls === undefined ? httpRequest : httpsRequest)(
      url,
      tls === undefined
        ? {}
        : {
            ca: readFileSync(tls.caFile),
            cert: readFileSync(tls.clientCertFile),
            key: readFileSync(tls.clientKeyFile),
          },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => {
          body += chunk.toString('utf8');
        });
        res.on('end', () => resolve(res.statusCode === 200 && body.includes('"health":"true"')));
      },
    );
    req.on('error', () => resolve(false));
    req.end();
  });
}

export async function startEtcd(options: { tls?: EtcdTls } = {}): Promise<TestEtcd> {
  requireEtcd();
  const dataDir = mkdtempSync(join(tmpdir(), 'weft-etcd-test-'));
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const scheme = options.tls === undefined ? 'http' : 'https';
  const endpoint = `${scheme}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const name = `weft-test-${clientPort}`;
  const args = [
    `--name=${name}`,
    `--data-dir=${join(dataDir, 'data')}`,
    `--listen-client-urls=${endpoint}`,
    `--advertise-client-urls=${endpoint}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${name}=${peer}`,
    '--initial-cluster-state=new',
    '--log-level=warn',
    '--logger=zap',
  ];
  if (options.tls !== undefined) {
    args.push(
      `--cert-file=${options.tls.certFile}`,
      `--key-file=${options.tls.keyFile}`,
      `--trusted-ca-file=${options.tls.caFile}`,
      '--client-cert-auth',
    );
  }
  let output = '';
  let child: ChildProcess | undefined;
  let exited = true;
  let exit: Promise<void> = Promise.resolve();
  const launch = async () => {
    const proc = spawn('etcd', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    exited = false;
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-8_000);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    exit = new Promise<void>((resolve) => {
      proc.once('exit', () => {
        exited = true;
        resolve();
      });
    });
    await waitFor(
      `etcd to answer /health at ${endpoint}`,
      async () => {
        if (exited) throw new Error(`etcd exited before it was ready:\n${output}`);
        return healthy(endpoint, options.tls);
      },
      { timeoutMs: 60_000, detail: () => output },
    );
  };
  const kill = async () => {
    if (!exited) child?.kill('SIGKILL');
    await exit;
  };
  const stop = async () => {
    await kill();
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    await launch();
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    endpoint,
    dataDir,
    output: () => output,
    stop,
    kill,
    start: launch,
    async restart() {
      await kill();
      await launch();
    },
  };
}
