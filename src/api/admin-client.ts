// The client the CLI's admin verbs (apply, get, delete, token, node) use: an admin certificate from
// the credentials directory the control plane writes (<data-dir>/admin), over gRPC + mTLS.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import type { Command } from 'commander';
import { WeftError } from '../errors.js';
import { fromGrpcError } from './grpc-errors.js';
import type * as m from './messages.js';
import {
  type AdminClient,
  CONTROL_PLANE_CHANNEL_OPTIONS,
  deadlineIn,
  loadProto,
  unary,
} from './proto.js';
import { parseSpiffeId, spiffeIdOfCertificate } from './spiffe.js';
import { controlPlaneCredentials, parseHostPort } from './tls.js';

/** The control plane's own state directory (user weft-cp, 0700): never the agent's /var/lib/weft. */
export const DEFAULT_CONTROL_PLANE_DATA_DIR = '/var/lib/weft-cp';
export const DEFAULT_ADMIN_CREDENTIALS_DIR = `${DEFAULT_CONTROL_PLANE_DATA_DIR}/admin`;
export const DEFAULT_CONTROL_PLANE_SERVER = '127.0.0.1:15012';

/** File names inside a credentials directory. */
export const ADMIN_FILES = { key: 'admin.key', cert: 'admin.crt', ca: 'ca.crt' } as const;

export interface AdminCredentials {
  dir: string;
  caPem: string;
  certPem: string;
  keyPem: string;
  /** From the admin certificate's SPIFFE ID. */
  trustDomain: string;
  spiffeId: string;
}

export interface AdminConnectOptions {
  /** HOST:PORT of the control plane's gRPC port; default $WEFT_SERVER or 127.0.0.1:15012. */
  server?: string;
  /** Default $WEFT_CREDENTIALS or /var/lib/weft-cp/admin. */
  credentialsDir?: string;
  /** Per call; default 10 s. */
  timeoutMs?: number;
}

/** Adds --server and --credentials to an admin verb. */
export function withAdminOptions(command: Command): Command {
  return command
    .option(
      '--server <host:port>',
      'control plane gRPC address (default $WEFT_SERVER or 127.0.0.1:15012)',
    )
    .option(
      '--credentials <dir>',
      `admin credentials directory (default $WEFT_CREDENTIALS or ${DEFAULT_ADMIN_CREDENTIALS_DIR})`,
    );
}

/** AdminConnectOptions from the options withAdminOptions added. */
export function adminOptionsFrom(opts: {
  server?: string;
  credentials?: string;
}): AdminConnectOptions {
  return { server: opts.server, credentialsDir: opts.credentials };
}

export function readAdminCredentials(dir: string): AdminCredentials {
  const read = (file: string): string => {
    try {
      return readFileSync(join(dir, file), 'utf8');
    } catch (err) {
      const why = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new WeftError(
        'WEFT_E_CONFIG',
        `cannot read admin credentials ${join(dir, file)} (${why}): run this on the control plane host as root, or pass --credentials DIR with a copy of its <data-dir>/admin`,
      );
    }
  };
  const creds = {
    caPem: read(ADMIN_FILES.ca),
    certPem: read(ADMIN_FILES.cert),
    keyPem: read(ADMIN_FILES.key),
  };
  const spiffeId = spiffeIdOfCertificate(creds.certPem);
  const parsed = spiffeId === undefined ? undefined : parseSpiffeId(spiffeId);
  if (spiffeId === undefined || parsed?.kind !== 'admin') {
    throw new WeftError(
      'WEFT_E_CONFIG',
      `${join(dir, ADMIN_FILES.cert)} is not a weft admin certificate (no spiffe://<td>/admin/<name> SAN)`,
    );
  }
  return { dir, ...creds, trustDomain: parsed.trustDomain, spiffeId };
}

export class WeftAdminClient {
  readonly server: string;
  private readonly client: AdminClient;
  private readonly timeoutMs: number;

  private constructor(server: string, client: AdminClient, timeoutMs: number) {
    this.server = server;
    this.client = client;
    this.timeoutMs = timeoutMs;
  }

  static open(options: AdminConnectOptions = {}): WeftAdminClient {
    const server = options.server ?? process.env.WEFT_SERVER ?? DEFAULT_CONTROL_PLANE_SERVER;
    const dir =
      options.credentialsDir ?? process.env.WEFT_CREDENTIALS ?? DEFAULT_ADMIN_CREDENTIALS_DIR;
    const { host, port } = parseHostPort(server, 15012);
    const creds = readAdminCredentials(dir);
    const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    const { Admin } = loadProto();
    const client = new Admin(
      target,
      controlPlaneCredentials(creds, creds.trustDomain),
      CONTROL_PLANE_CHANNEL_OPTIONS,
    );
    return new WeftAdminClient(target, client, options.timeoutMs ?? 10_000);
  }

  private async call<Req, Res>(
    method: (c: AdminClient) => AdminClient[keyof AdminClient],
    req: Req,
  ): Promise<Res> {
    try {
      // biome-ignore lint/suspicious/noExplicitAny: the method is one of AdminClient's unary methods
      return await unary<Req, Res>(this.client, method(this.client) as any, req, {
        deadline: deadlineIn(this.timeoutMs),
      });
    } catch (err) {
      throw fromGrpcError(err, `the control plane at ${this.server}`);
    }
  }

  async apply(
    resources: m.ResourceMessage[],
    source: string,
    options: { force?: boolean } = {},
  ): Promise<m.ApplyResult[]> {
    const res = await this.call<m.ApplyRequest, m.ApplyResponse>((c) => c.apply, {
      resources,
      source,
      force: options.force ?? false,
    });
    return res.results;
  }

  async get(kind: string, name = ''): Promise<m.ResourceMessage[]> {
    const res = await this.call<m.GetRequest, m.GetResponse>((c) => c.get, { kind, name });
    return res.resources;
  }

  async delete(kind: string, name: string): Promise<boolean> {
    const res = await this.call<m.DeleteRequest, m.DeleteResponse>((c) => c.delete, { kind, name });
    return res.deleted;
  }

  createToken(request: m.CreateTokenRequest): Promise<m.CreateTokenResponse> {
    return this.call<m.CreateTokenRequest, m.CreateTokenResponse>((c) => c.createToken, request);
  }

  async listTokens(): Promise<m.TokenInfo[]> {
    const res = await this.call<m.ListTokensRequest, m.ListTokensResponse>((c) => c.listTokens, {});
    return res.tokens;
  }

  async revokeToken(id: string): Promise<m.TokenInfo> {
    const res = await this.call<m.RevokeTokenRequest, m.RevokeTokenResponse>((c) => c.revokeToken, {
      id,
    });
    return res.token;
  }

  async listNodes(): Promise<m.NodeInfo[]> {
    const res = await this.call<m.ListNodesRequest, m.ListNodesResponse>((c) => c.listNodes, {});
    return res.nodes;
  }

  deleteNode(name: string): Promise<m.DeleteNodeResponse> {
    return this.call<m.DeleteNodeRequest, m.DeleteNodeResponse>((c) => c.deleteNode, { name });
  }

  setNodeServices(request: m.SetNodeServicesRequest): Promise<m.SetNodeServicesResponse> {
    return this.call<m.SetNodeServicesRequest, m.SetNodeServicesResponse>(
      (c) => c.setNodeServices,
      request,
    );
  }

  createDashboardLogin(): Promise<m.CreateDashboardLoginResponse> {
    return this.call<m.CreateDashboardLoginRequest, m.CreateDashboardLoginResponse>(
      (c) => c.createDashboardLogin,
      {},
    );
  }

  getStats(request: m.GetStatsRequest): Promise<m.GetStatsResponse> {
    return this.call<m.GetStatsRequest, m.GetStatsResponse>((c) => c.getStats, request);
  }

  /** A tap's live stream (no deadline: it runs until cancelled). */
  tap(request: m.TapRequest, metadata?: grpc.Metadata): grpc.ClientReadableStream<m.TapBatch> {
    return metadata === undefined ? this.client.tap(request) : this.client.tap(request, metadata);
  }

  close(): void {
    this.client.close();
  }
}
