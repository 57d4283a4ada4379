// The admin verbs as an operator runs them: `node bin/weft apply|get|delete|token` against a
// real control plane on loopback. Invalid files name the file, document and field, and change
// nothing.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { unary } from '../../src/api/proto.js';
import {
  adminClient,
  type CliResult,
  joinNode,
  runWeft,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';

let cp: TestControlPlane;
let dir: string;
let weft: (...args: string[]) => Promise<CliResult>;

beforeAll(async () => {
  cp = await startControlPlane();
  dir = mkdtempSync(join(tmpdir(), 'weft-cli-test-'));
  weft = (...args) =>
    runWeft([...args, '--server', cp.grpcAddress, '--credentials', cp.adminCredentials.dir]);
});

afterAll(async () => {
  await cp.stop({ removeDataDir: true });
  await rm(dir, { recursive: true, force: true });
});

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

const ECHO = `apiVersion: weft/v1
kind: Service
metadata:
  name: echo
spec:
  ports:
    - port: 80
      targetPort: 8080
      protocol: http
---
apiVersion: weft/v1
kind: TrafficPolicy
metadata:
  name: echo
spec:
  targetRef: {name: echo}
  balancer: {type: roundRobin}
  timeouts: {request: 5s}
`;

/** Everything the control plane holds that apply could change. */
async function snapshot(): Promise<string> {
  const out: string[] = [];
  for (const kind of [
    'mesh',
    'services',
    'trafficpolicies',
    'httproutes',
    'authorizationpolicies',
  ]) {
    out.push((await weft('get', kind, '-o', 'json')).stdout);
  }
  return out.join('\n');
}

describe('apply, get, delete', () => {
  it('applies a multi-document file, then reports it unchanged', async () => {
    const path = file('echo.yaml', ECHO);
    const first = await weft('apply', '-f', path);
    expect(first).toMatchObject({ exitCode: 0, stderr: '' });
    expect(first.stdout).toBe('service/echo created\ntrafficpolicy/echo created\n');
    const again = await weft('apply', '-f', path);
    expect(again.stdout).toBe('service/echo unchanged\ntrafficpolicy/echo unchanged\n');
    const changed = await weft(
      'apply',
      '-f',
      file('echo.yaml', ECHO.replace('roundRobin', 'leastConnections')),
    );
    expect(changed.stdout).toBe('service/echo unchanged\ntrafficpolicy/echo configured\n');
  });

  it('shows a table, YAML that can be applied again, and JSON', async () => {
    const table = await weft('get', 'svc');
    expect(table.exitCode).toBe(0);
    const [header, row] = table.stdout.trim().split('\n');
    expect(header!.split(/\s{2,}/)).toEqual(['NAME', 'VIP', 'PORTS', 'RATE', 'SUCCESS', 'P99']);
    // No agent reported traffic: no numbers.
    expect(row).toMatch(/^echo\s+240\.240\.\d+\.\d+\s+80->8080\/http\s+-\s+-\s+-$/);

    const yaml = await weft('get', 'Service', 'echo', '-o', 'yaml');
    const doc = parseYaml(yaml.stdout) as { spec: unknown; status: { vip: string } };
    expect(doc.spec).toEqual({ ports: [{ port: 80, targetPort: 8080, protocol: 'http' }] });
    expect(row).toContain(doc.status.vip);
    const reapplied = await weft('apply', '-f', file('roundtrip.yaml', yaml.stdout));
    expect(reapplied.stdout).toBe('service/echo unchanged\n');

    const json = await weft('get', 'trafficpolicies', '-o', 'json');
    expect(JSON.parse(json.stdout)).toMatchObject([
      {
        kind: 'TrafficPolicy',
        metadata: { name: 'echo' },
        spec: { balancer: { type: 'leastConnections' } },
      },
    ]);
  });

  it('applies every YAML file of a directory', async () => {
    const sub = mkdtempSync(join(dir, 'dir-'));
    writeFileSync(
      join(sub, 'a.yaml'),
      'apiVersion: weft/v1\nkind: Service\nmetadata: {name: alpha}\nspec: {ports: [{port: 81}]}\n',
    );
    writeFileSync(
      join(sub, 'b.yml'),
      'apiVersion: weft/v1\nkind: Service\nmetadata: {name: beta}\nspec: {ports: [{port: 82}]}\n',
    );
    writeFileSync(join(sub, 'notes.txt'), 'not a resource');
    const res = await weft('apply', '-f', sub);
    expect(res.stdout).toBe('service/alpha created\nservice/beta created\n');
    const all = await weft('get', 'services', '-o', 'yaml');
    expect(
      parseAllDocuments(all.stdout).map(
        (d) => (d.toJS() as { metadata: { name: string } }).metadata.name,
      ),
    ).toEqual(['alpha', 'beta', 'echo']);
  });

  it('deletes, and says so when there is nothing to delete', async () => {
    expect((await weft('delete', 'svc', 'alpha')).stdout).toBe('service/alpha deleted\n');
    const missing = await weft('delete', 'svc', 'alpha');
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toBe(
      'weft: WEFT_E_NOT_FOUND: Service "alpha" not found (see weft get services)\n',
    );
    const get = await weft('get', 'service', 'alpha');
    expect(get.stderr).toBe('weft: WEFT_E_NOT_FOUND: Service "alpha" not found\n');
  });

  it('refuses an unknown kind', async () => {
    const res = await weft('get', 'gateways');
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toContain('weft: WEFT_E_USAGE: unknown kind "gateways"');
  });
});

describe('TrafficPolicy scopes', () => {
  const SCOPES = `apiVersion: weft/v1
kind: TrafficPolicy
metadata: {name: defaults}
spec:
  targetRef: {kind: Mesh}
  retries: {attempts: 2, on: [5xx], backoff: {max: 1s}}
---
apiVersion: weft/v1
kind: TrafficPolicy
metadata: {name: orders-tp}
spec:
  targetRef: {name: orders}
  retries: {attempts: 4}
`;

  it('get -o yaml shows the policy as written, its effective values and the scope of each', async () => {
    const path = file('scopes.yaml', SCOPES);
    expect((await weft('apply', '-f', path)).stdout).toBe(
      'trafficpolicy/defaults created\ntrafficpolicy/orders-tp created\n',
    );
    const yaml = await weft('get', 'trafficpolicy', 'orders-tp', '-o', 'yaml');
    expect(yaml).toMatchObject({ exitCode: 0, stderr: '' });
    const doc = parseYaml(yaml.stdout);
    expect(doc.spec).toEqual({ targetRef: { name: 'orders' }, retries: { attempts: 4 } });
    expect(doc.status.effective).toEqual({
      target: 'Service/orders',
      spec: {
        retries: {
          attempts: 4,
          on: ['5xx'],
          backoff: { base: '25ms', max: '1s' },
          budget: { percent: 20, minPerSecond: 10 },
        },
      },
      from: {
        'retries.attempts': 'Service (TrafficPolicy/orders-tp)',
        'retries.on': 'Mesh (TrafficPolicy/defaults)',
        'retries.backoff.base': 'default',
        'retries.backoff.max': 'Mesh (TrafficPolicy/defaults)',
        'retries.budget.percent': 'default',
        'retries.budget.minPerSecond': 'default',
      },
    });
    // The YAML, status and all, applies again as it is.
    const again = await weft('apply', '-f', file('orders-tp.yaml', yaml.stdout));
    expect(again.stdout).toBe('trafficpolicy/orders-tp unchanged\n');

    const mesh = parseYaml((await weft('get', 'tp', 'defaults', '-o', 'yaml')).stdout);
    expect(mesh.status.effective.target).toBe(
      'Mesh (every Service without a TrafficPolicy of its own)',
    );
    expect(mesh.status.overriddenBy).toContain('TrafficPolicy/orders-tp (Service/orders)');
  });

  it('the table shows each target; a second policy for one target is refused, naming the first', async () => {
    const rows = (await weft('get', 'tp')).stdout.trim().split('\n');
    expect(rows[0]!.split(/\s{2,}/)).toEqual(['NAME', 'TARGET', 'BALANCER', 'POLICIES']);
    expect(rows).toContainEqual(expect.stringMatching(/^defaults\s+Mesh\s+-\s+retries$/));
    expect(rows).toContainEqual(
      expect.stringMatching(/^orders-tp\s+Service\/orders\s+-\s+retries$/),
    );

    const second = await weft(
      'apply',
      '-f',
      file(
        'second.yaml',
        'apiVersion: weft/v1\nkind: TrafficPolicy\nmetadata: {name: orders-more}\nspec: {targetRef: {name: orders}, timeouts: {request: 1s}}\n',
      ),
    );
    expect(second.exitCode).toBe(1);
    expect(second.stderr).toContain(
      'spec.targetRef: TrafficPolicy/orders-tp already applies to Service/orders; there is one policy per target',
    );
    expect((await weft('get', 'tp', 'orders-more')).exitCode).toBe(1);

    for (const name of ['orders-tp', 'defaults'])
      expect((await weft('delete', 'tp', name)).exitCode).toBe(0);
  });
});

describe('invalid input changes nothing', () => {
  it('names the file, document and field of an invalid resource', async () => {
    const before = await snapshot();
    const path = file(
      'bad.yaml',
      `${ECHO.replace('timeouts: {request: 5s}', 'timeouts: {request: 9s}')}---\napiVersion: weft/v1\nkind: Service\nmetadata:\n  name: orders\nspec:\n  ports:\n    - port: 70000\n`,
    );
    const res = await weft('apply', '-f', path);
    expect(res.exitCode).toBe(1);
    expect(res.stdout).toBe('');
    expect(res.stderr).toBe(
      `weft: WEFT_E_CONFIG: ${path}: document 3 (Service/orders): spec.ports[0].port: must be 1-65535\n`,
    );
    expect(await snapshot()).toBe(before);
  });

  it('names the file and document of invalid YAML', async () => {
    const before = await snapshot();
    const path = file('broken.yaml', `${ECHO}---\nkind: Service\nmetadata: {name: [unclosed\n`);
    const res = await weft('apply', '-f', path);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toMatch(
      new RegExp(
        `^weft: WEFT_E_CONFIG: ${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: document 3: not valid YAML: `,
      ),
    );
    expect(await snapshot()).toBe(before);
  });

  it('refuses a Workload, which only agents register', async () => {
    const res = await weft(
      'apply',
      '-f',
      file('wl.yaml', 'apiVersion: weft/v1\nkind: Workload\nmetadata: {name: w}\nspec: {}\n'),
    );
    expect(res.stderr).toContain(
      'document 1 (Workload/w): kind: Workload resources are registered by agents and cannot be applied',
    );
  });

  it('refuses HTTP rules of an AuthorizationPolicy on a tcp port (checked by the control plane)', async () => {
    const before = await snapshot();
    const path = file(
      'db.yaml',
      'apiVersion: weft/v1\nkind: Service\nmetadata: {name: db}\nspec:\n  ports: [{port: 5432, protocol: tcp}]\n---\napiVersion: weft/v1\nkind: AuthorizationPolicy\nmetadata: {name: db-reads}\nspec:\n  targetRef: {name: db}\n  rules:\n    - to: [{ports: [5432], methods: [GET]}]\n',
    );
    const res = await weft('apply', '-f', path);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toBe(
      `weft: WEFT_E_CONFIG: ${path}: document 2 (AuthorizationPolicy/db-reads): spec.rules[0].to[0]: methods cannot be checked on port 5432: Service db declares it tcp (opaque), whose connections carry no HTTP requests. Take 5432 out of this entry's ports (an entry without methods may name it), or declare the port http, http2, grpc or auto\n`,
    );
    expect(await snapshot()).toBe(before);
  });

  it('refuses a Mesh with another trust domain (checked by the control plane)', async () => {
    const res = await weft(
      'apply',
      '-f',
      file(
        'mesh.yaml',
        'apiVersion: weft/v1\nkind: Mesh\nmetadata: {name: default}\nspec: {trustDomain: example.org}\n',
      ),
    );
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toContain(
      "mesh.yaml: document 1 (Mesh/default): spec.trustDomain: must be weft.local, the control plane's trust domain",
    );
  });
});

describe('tokens and nodes', () => {
  it('creates a join token for a node with the CA pin and an agent config snippet', async () => {
    const res = await weft(
      'token',
      'create',
      '--node',
      'cli-node',
      '--services',
      'echo,web',
      '--ttl',
      '30m',
    );
    expect(res.exitCode).toBe(0);
    const token = /^token: +(\S+)$/m.exec(res.stdout)?.[1];
    expect(token).toMatch(/^[0-9a-f]{12}\.[A-Za-z0-9_-]{32}$/);
    expect(res.stdout).toContain(`CA pin:  ${cp.caPin}`);
    expect(res.stdout).toMatch(/^node: +cli-node \(may serve echo, web\)$/m);
    const expires = Date.parse(/^expires: (\S+)$/m.exec(res.stdout)![1]!);
    expect(expires - Date.now()).toBeGreaterThan(29 * 60_000);
    expect(expires - Date.now()).toBeLessThanOrEqual(30 * 60_000);
    const snippet = parseYaml(res.stdout.slice(res.stdout.indexOf('controlPlane:'))) as {
      controlPlane: Record<string, string>;
    };
    expect(snippet.controlPlane).toMatchObject({ token, caPin: cp.caPin });
    // The token works for a join of that node.
    const node = await joinNode(cp, 'cli-node', { token });
    expect(node.certificatePem).toContain('BEGIN CERTIFICATE');
    const nodes = await weft('get', 'nodes');
    const [header, row] = nodes.stdout.trim().split('\n');
    expect(header!.split(/\s{2,}/)).toEqual([
      'NAME',
      'STATE',
      'SERVICES',
      'ADDRESSES',
      'VERSION',
      'SYNC',
      'LAST SEEN',
      'CERT EXPIRES',
      'OS',
      'KERNEL',
      'CPUS',
      'MEMORY',
      'WORKLOADS',
    ]);
    // Joined without an agent: no agent or sync version, no host facts.
    expect(row).toMatch(
      /^cli-node\s+disconnected\s+echo,web\s+127\.0\.0\.1\s+-\s+-\s+\S+ ago\s+in 2\dh(\s+-){5}$/,
    );
  });

  it('refuses a token without --node, saying why', async () => {
    const res = await weft('token', 'create', '--ttl', '30m');
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toBe(
      'weft: WEFT_E_USAGE: --node NAME is required: a join token names the host that may use it (the hostname it joins as)\n',
    );
  });

  it('refuses a bad --ttl', async () => {
    const res = await weft('token', 'create', '--node', 'x', '--ttl', 'soon');
    expect(res.exitCode).toBe(2);
    expect(res.stderr).toBe(
      'weft: WEFT_E_USAGE: --ttl: "soon" is not a duration like 30m, 1h or 7d\n',
    );
  });

  it('lists tokens without their secret and revokes one', async () => {
    const created = await weft('token', 'create', '--node', 'later', '--replace');
    const token = /^token: +(\S+)$/m.exec(created.stdout)![1]!;
    const [id, secret] = token.split('.') as [string, string];
    const list = await weft('token', 'list');
    expect(list.exitCode).toBe(0);
    expect(list.stdout).not.toContain(secret);
    const [header, ...rows] = list.stdout.trim().split('\n');
    expect(header!.split(/\s{2,}/)).toEqual([
      'ID',
      'NODE',
      'SERVICES',
      'REPLACE',
      'CREATED',
      'EXPIRES',
      'STATE',
    ]);
    expect(rows.find((r) => r.startsWith(id))).toMatch(
      new RegExp(`^${id}\\s+later\\s+-\\s+yes\\s+\\S+\\s+\\S+\\s+unused$`),
    );
    expect(rows.find((r) => r.includes('cli-node'))).toMatch(/used by cli-node at \S+$/);
    const revoked = await weft('token', 'revoke', id);
    expect(revoked).toMatchObject({ exitCode: 0, stdout: `token ${id} revoked\n` });
    expect((await weft('token', 'list')).stdout).toMatch(
      new RegExp(`^${id}.*revoked at \\S+$`, 'm'),
    );
  });

  it('allows and disallows services on a node, and deletes it', async () => {
    const allowed = await weft('node', 'allow', 'cli-node', '--service', 'orders');
    expect(allowed).toMatchObject({
      exitCode: 0,
      stdout: 'node/cli-node may serve echo, orders, web\n',
    });
    const disallowed = await weft('node', 'disallow', 'cli-node', '--service', 'echo');
    expect(disallowed.stdout).toBe('node/cli-node may serve orders, web\n');
    const json = JSON.parse(
      (await weft('get', 'nodes', 'cli-node', '-o', 'json')).stdout,
    ) as Array<{
      services: string[];
    }>;
    expect(json[0]?.services).toEqual(['orders', 'web']);
    const deleted = await weft('delete', 'node', 'cli-node');
    expect(deleted).toMatchObject({
      exitCode: 0,
      stdout: 'node/cli-node deleted: 1 certificate revoked, 0 workloads removed\n',
    });
    const missing = await weft('delete', 'node', 'cli-node');
    expect(missing.exitCode).toBe(1);
    expect(missing.stderr).toBe(
      'weft: WEFT_E_NOT_FOUND: node "cli-node" not found (see weft get nodes)\n',
    );
  });

  it('explains missing admin credentials', async () => {
    const res = await runWeft([
      'get',
      'svc',
      '--server',
      cp.grpcAddress,
      '--credentials',
      join(dir, 'nowhere'),
    ]);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toContain(
      `weft: WEFT_E_CONFIG: cannot read admin credentials ${join(dir, 'nowhere', 'ca.crt')} (ENOENT)`,
    );
  });

  it('explains an unreachable control plane', async () => {
    const res = await runWeft([
      'get',
      'svc',
      '--server',
      '127.0.0.1:1',
      '--credentials',
      cp.adminCredentials.dir,
    ]);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toMatch(
      /^weft: WEFT_E_UNAVAILABLE: cannot reach the control plane at 127\.0\.0\.1:1: /,
    );
  });
});

describe('resource size limits', () => {
  /** A Service document with an annotation of `kib` KiB. */
  const serviceWithAnnotation = (name: string, kib: number): string =>
    `apiVersion: weft/v1\nkind: Service\nmetadata:\n  name: ${name}\n  annotations:\n    note: "${'x'.repeat(kib * 1024)}"\nspec:\n  ports: [{port: 80}]\n`;

  it('refuses a 10 MB annotation naming the file, document and limits, and changes nothing', async () => {
    const before = await snapshot();
    const path = file('huge.yaml', `${ECHO}---\n${serviceWithAnnotation('huge', 10 * 1024)}`);
    const res = await weft('apply', '-f', path);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toContain(
      `${path}: document 3 (Service/huge): 10.0 MiB of JSON, over the limit of 256 KiB per resource`,
    );
    expect(res.stderr).toContain(
      `${path}: document 3 (Service/huge): metadata.labels and metadata.annotations hold 10.0 MiB, over the limit of 64 KiB`,
    );
    expect(await snapshot()).toBe(before);
  });

  it('refuses an apply over 4 MiB in total', async () => {
    const docs = Array.from({ length: 80 }, (_, i) => serviceWithAnnotation(`s${i}`, 60)).join(
      '---\n',
    );
    const path = file('many.yaml', docs);
    const res = await weft('apply', '-f', path);
    expect(res.exitCode).toBe(1);
    expect(res.stderr).toMatch(
      new RegExp(
        `^weft: WEFT_E_CONFIG: ${path.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: 4\\.\\d MiB of JSON in one apply, over the limit of 4 MiB: apply fewer resources at a time\\n$`,
      ),
    );
  });

  it('is enforced by the control plane, not only by the CLI', async () => {
    const doc = {
      apiVersion: 'weft/v1',
      kind: 'Service',
      metadata: { name: 'sneaky', annotations: { note: 'x'.repeat(300 * 1024) } },
      spec: { ports: [{ port: 80 }] },
    };
    const admin = adminClient(cp);
    const err = await unary(admin, admin.apply, {
      resources: [
        { kind: 'Service', name: 'sneaky', json: JSON.stringify(doc), revision: 0, source: 'raw' },
      ],
      source: 'raw',
    }).catch((e: grpc.ServiceError) => e);
    admin.close();
    expect((err as grpc.ServiceError).code).toBe(grpc.status.INVALID_ARGUMENT);
    expect((err as grpc.ServiceError).details).toContain(
      'raw (Service/sneaky): 300.1 KiB of JSON, over the limit of 256 KiB per resource',
    );
    expect((await weft('get', 'svc', 'sneaky')).exitCode).toBe(1);
  });
});
