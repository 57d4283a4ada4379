// A real control plane in this process, on 127.0.0.1 with OS-chosen ports, for loopback and
// multi-host tests: the same server `weft controlplane` runs, with test-friendly defaults
// (log lines kept in memory for assertions and printed only with WEFT_TEST_LOG=debug|info|...,
// a fresh temp data directory unless one is given, so that a test can stop it and start
// another on the same directory).
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { type AdminCredentials, readAdminCredentials } from '../../src/api/admin-client.js';
import { createKeyAndCsr } from '../../src/api/csr.js';
import { parseDuration } from '../../src/api/duration.js';
import {
  type AdminClient,
  CONTROL_PLANE_CHANNEL_OPTIONS,
  type IdentityClient,
  loadProto,
  type SyncClient,
  unary,
} from '../../src/api/proto.js';
import { nodeSpiffeId } from '../../src/api/spiffe.js';
import { controlPlaneCredentials } from '../../src/api/tls.js';
import {
  type ControlPlaneConfigInput,
  parseControlPlaneConfig,
} from '../../src/controlplane/config.js';
import { ControlPlane } from '../../src/controlplane/control-plane.js';

export interface StartControlPlaneOptions {
  /** Default: a new temp directory (kept after stop; pass it again to restart on it). */
  dataDir?: string;
  /** Config overrides (as in the YAML file: durations as "2s"). */
  config?: Omit<ControlPlaneConfigInput, 'dataDir'>;
}

export interface TestControlPlane {
  /** "127.0.0.1:PORT" of the gRPC port. */
  grpcAddress: string;
  /** "http://127.0.0.1:PORT" of the HTTP port (/healthz, /readyz, /metrics). */
  httpUrl: string;
  dataDir: string;
  trustDomain: string;
  caPin: string;
  /** The CA certificate(s) agents trust. */
  trustBundlePem: string;
  /** The admin credential (<dataDir>/admin) the CLI uses: dir, caPem, certPem, keyPem. */
  adminCredentials: AdminCredentials;
  controlPlane: ControlPlane;
  /** A one-time join token for one node, made through the Admin API as `weft token create`. */
  createToken(options: TokenOptions): Promise<string>;
  /** Every line the control plane logged (pino JSON, parsed), oldest first. */
  logs: LogLine[];
  stop(options?: { removeDataDir?: boolean }): Promise<void>;
}

export interface TokenOptions {
  /** The node that may join with it. */
  node: string;
  /** Services that node may serve. */
  services?: string[];
  /** It may replace an existing node of that name (a rebuilt host). */
  replace?: boolean;
  /** "1s"/"1h" or milliseconds (default: the configured 24 h). */
  ttl?: string | number;
}

export type LogLine = Record<string, unknown> & { level: number; msg: string };

/** pino's numeric levels. */
export const LOG_LEVEL = { debug: 20, info: 30, warn: 40, error: 50 } as const;

/** A pino logger that keeps every line in `lines` and prints them only with WEFT_TEST_LOG. */
function capturingLogger(lines: LogLine[]) {
  const print = process.env.WEFT_TEST_LOG !== undefined;
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (text === '') continue;
        lines.push(JSON.parse(text) as LogLine);
        if (print) process.stdout.write(`${text}\n`);
      }
      done();
    },
  });
  const level = process.env.WEFT_TEST_LOG ?? 'info';
  return pino({ name: 'weft-controlplane', level: level === 'silent' ? 'info' : level }, sink);
}

export async function startControlPlane(
  options: StartControlPlaneOptions = {},
): Promise<TestControlPlane> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'weft-cp-test-'));
  const config = parseControlPlaneConfig(
    {
      listen: '127.0.0.1',
      grpcPort: 0,
      httpPort: 0,
      advertise: ['127.0.0.1', 'localhost'],
      ...options.config,
      dataDir,
    },
    'test config',
  );
  const logs: LogLine[] = [];
  const controlPlane = await ControlPlane.start({
    config,
    log: capturingLogger(logs),
    defaultMetrics: false,
  });
  const adminCredentials = readAdminCredentials(controlPlane.adminCredentialsDir);
  return {
    grpcAddress: controlPlane.grpcAddress,
    httpUrl: controlPlane.httpUrl,
    dataDir,
    trustDomain: controlPlane.trustDomain,
    caPin: controlPlane.caPin,
    trustBundlePem: controlPlane.trustBundlePem,
    adminCredentials,
    controlPlane,
    logs,
    async createToken(token: TokenOptions): Promise<string> {
      const ms = typeof token.ttl === 'string' ? parseDuration(token.ttl) : token.ttl;
      if (token.ttl !== undefined && ms === undefined)
        throw new Error(`createToken: "${token.ttl}" is not a duration`);
      const admin = adminClient({ grpcAddress: controlPlane.grpcAddress, adminCredentials });
      try {
        const res = await unary(admin, admin.createToken, {
          ttlSeconds: ms === undefined ? 0 : Math.max(1, Math.ceil(ms / 1000)),
          description: 'test',
          node: token.node,
          services: token.services ?? [],
          replace: token.replace ?? false,
        } as never);
        return res.token;
      } finally {
        admin.close();
      }
    },
    async stop(stopOptions = {}): Promise<void> {
      await controlPlane.stop();
      if (stopOptions.removeDataDir === true) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- raw clients for tests

export interface NodeCredentials {
  hostname: string;
  keyPem: string;
  certificatePem: string;
  caPem: string;
}

export interface NodeClients {
  identity: IdentityClient;
  sync: SyncClient;
  close(): void;
}

/** gRPC clients of the Identity and Sync services, with a node certificate or none (Join). */
export function nodeClients(
  cp: Pick<TestControlPlane, 'grpcAddress' | 'trustBundlePem' | 'trustDomain'>,
  creds?: Pick<NodeCredentials, 'keyPem' | 'certificatePem'>,
): NodeClients {
  const { Identity, Sync } = loadProto();
  const channel = controlPlaneCredentials(
    { caPem: cp.trustBundlePem, keyPem: creds?.keyPem, certPem: creds?.certificatePem },
    cp.trustDomain,
  );
  const identity = new Identity(cp.grpcAddress, channel, CONTROL_PLANE_CHANNEL_OPTIONS);
  const sync = new Sync(cp.grpcAddress, channel, CONTROL_PLANE_CHANNEL_OPTIONS);
  return {
    identity,
    sync,
    close() {
      identity.close();
      sync.close();
    },
  };
}

/** A raw gRPC client of the Admin service with the control plane's admin credentials. */
export function adminClient(
  cp: Pick<TestControlPlane, 'grpcAddress' | 'adminCredentials'>,
): AdminClient {
  const { Admin } = loadProto();
  const creds = cp.adminCredentials;
  return new Admin(
    cp.grpcAddress,
    controlPlaneCredentials(
      { caPem: creds.caPem, keyPem: creds.keyPem, certPem: creds.certPem },
      creds.trustDomain,
    ),
    CONTROL_PLANE_CHANNEL_OPTIONS,
  );
}

/**
 * Joins `hostname` with a fresh token for it (allowed `services`), or the token given;
 * returns its node credentials.
 */
export async function joinNode(
  cp: TestControlPlane,
  hostname: string,
  options: { token?: string; services?: string[]; addresses?: string[]; zone?: string } = {},
): Promise<NodeCredentials> {
  const token =
    options.token ?? (await cp.createToken({ node: hostname, services: options.services }));
  const { keyPem, csrPem } = await createKeyAndCsr(nodeSpiffeId(cp.trustDomain, hostname));
  const clients = nodeClients(cp);
  try {
    const res = await unary(clients.identity, clients.identity.join, {
      token,
      hostname,
      csrPem,
      addresses: options.addresses ?? ['127.0.0.1'],
      zone: options.zone ?? '',
    });
    return { hostname, keyPem, certificatePem: res.certificatePem, caPem: res.trustBundlePem };
  } finally {
    clients.close();
  }
}

// ---------------------------------------------------------------- the built CLI

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/weft ARGS` (the run's global setup built it: test/global-setup.ts). */
export function runWeft(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, 'bin/weft'), ...args],
      { cwd: ROOT, env: { ...process.env, ...env }, timeout: 30_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1;
        resolve({ exitCode: code, stdout, stderr });
      },
    );
  });
}
