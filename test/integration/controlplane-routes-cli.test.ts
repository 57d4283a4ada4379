// HTTPRoute and GRPCRoute through the admin verbs, as an operator runs them against a real
// control plane: `weft apply` takes both kinds (and records when each route was first applied,
// precedence's tie-breaker, unchanged by a re-apply), `weft get grpcroutes` lists them, route
// timeouts are taken, and timeouts that cannot work are refused with a message naming the field.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type CliResult,
  runWeft,
  startControlPlane,
  type TestControlPlane,
} from '../helpers/controlplane.js';

let cp: TestControlPlane;
let dir: string;
let weft: (...args: string[]) => Promise<CliResult>;

beforeAll(async () => {
  cp = await startControlPlane();
  dir = mkdtempSync(join(tmpdir(), 'weft-routes-cli-'));
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

const ROUTES = `apiVersion: weft/v1
kind: HTTPRoute
metadata: {name: web-canary}
spec:
  parentRefs: [{name: web}]
  rules:
    - matches: [{queryParams: [{name: v, value: "2"}]}]
      backendRefs: [{name: web-v2}]
---
apiVersion: weft/v1
kind: GRPCRoute
metadata: {name: greeter}
spec:
  parentRefs: [{name: greeter, port: 9090}]
  rules:
    - matches: [{method: {service: pkg.Greeter, method: Hello}}]
      backendRefs: [{name: greeter-v2, weight: 1}]
`;

describe('routes through the CLI', () => {
  it('applies both kinds, lists GRPCRoutes, and keeps each route first-applied time', async () => {
    const path = file('routes.yaml', ROUTES);
    const first = await weft('apply', '-f', path);
    expect(first).toMatchObject({ exitCode: 0, stderr: '' });
    expect(first.stdout).toBe('httproute/web-canary created\ngrpcroute/greeter created\n');
    const table = await weft('get', 'grpcroutes');
    expect(table.stdout).toMatch(/^NAME\s+PARENTS\s+RULES\ngreeter\s+greeter\s+1\n$/);
    const created = JSON.parse((await weft('get', 'httproute', 'web-canary', '-o', 'json')).stdout)
      .status.createdAt;
    expect(created).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    const again = await weft('apply', '-f', path);
    expect(again.stdout).toBe('httproute/web-canary unchanged\ngrpcroute/greeter unchanged\n');
    const changed = await weft('apply', '-f', file('routes.yaml', ROUTES.replace('"2"', '"3"')));
    expect(changed.stdout).toContain('httproute/web-canary configured');
    const after = JSON.parse((await weft('get', 'httproutes', 'web-canary', '-o', 'json')).stdout);
    expect(after.status.createdAt).toBe(created);
  });

  it('takes route timeouts, and refuses a try longer than the whole request', async () => {
    const withTimeouts = (t: string) =>
      ROUTES.replace(
        'backendRefs: [{name: web-v2}]',
        `backendRefs: [{name: web-v2}]\n      timeouts: ${t}`,
      );
    const ok = await weft(
      'apply',
      '-f',
      file('timeouts.yaml', withTimeouts('{request: 3s, backendRequest: 500ms}')),
    );
    expect(ok).toMatchObject({ exitCode: 0, stderr: '' });
    const route = JSON.parse((await weft('get', 'httproute', 'web-canary', '-o', 'json')).stdout);
    expect(route.spec.rules[0].timeouts).toEqual({ request: '3s', backendRequest: '500ms' });
    const r = await weft(
      'apply',
      '-f',
      file('too-long.yaml', withTimeouts('{request: 1s, backendRequest: 2s}')),
    );
    expect(r.exitCode).not.toBe(0);
    expect(r.stderr).toContain(
      'too-long.yaml: document 1 (HTTPRoute/web-canary): spec.rules[0].timeouts.backendRequest: must not be longer than timeouts.request',
    );
  });
});
