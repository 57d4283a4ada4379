// `weft apply` across resources, through the registry over a real store: AuthorizationPolicy
// HTTP rules (methods, paths, grpc) on tcp (opaque) Service ports are refused, naming the
// policy, the rule and the port, whichever of the two is applied last; nothing changes then.
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ResourceRegistry } from '../../src/controlplane/registry/resource-registry.js';
import { FileStore } from '../../src/controlplane/store/file-store.js';
import { isWeftError } from '../../src/errors.js';

const dirs: string[] = [];
const stores: FileStore[] = [];

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function registry(): Promise<ResourceRegistry> {
  const dir = mkdtempSync(join(tmpdir(), 'weft-authz-ports-test-'));
  dirs.push(dir);
  const store = await FileStore.open({ dir });
  stores.push(store);
  return new ResourceRegistry(store, { trustDomain: 'weft.local' });
}

const echo = (...ports: Array<[number, string]>) => ({
  document: {
    apiVersion: 'weft/v1',
    kind: 'Service',
    metadata: { name: 'echo' },
    spec: { ports: ports.map(([port, protocol]) => ({ port, protocol })) },
  },
  source: 'echo.yaml: document 1',
});

const policy = (name: string, action: string, to: unknown[]) => ({
  document: {
    apiVersion: 'weft/v1',
    kind: 'AuthorizationPolicy',
    metadata: { name },
    spec: { targetRef: { name: 'echo' }, action, rules: [{ to }] },
  },
  source: `${name}.yaml: document 1`,
});

async function refusal(reg: ResourceRegistry, items: Parameters<ResourceRegistry['apply']>[0]) {
  try {
    await reg.apply(items);
  } catch (err) {
    if (isWeftError(err, 'WEFT_E_CONFIG')) return err.message;
    throw err;
  }
  throw new Error('expected the apply to be refused');
}

async function names(reg: ResourceRegistry, kind: string): Promise<string[]> {
  return (await reg.get(kind)).map((m) => m.name);
}

describe('AuthorizationPolicy HTTP rules and tcp ports', () => {
  it('refuses methods on a tcp port the rule names', async () => {
    const reg = await registry();
    await reg.apply([echo([80, 'http'], [5432, 'tcp'])]);
    expect(
      await refusal(reg, [policy('get-only', 'ALLOW', [{ ports: [80, 5432], methods: ['GET'] }])]),
    ).toBe(
      "get-only.yaml: document 1 (AuthorizationPolicy/get-only): spec.rules[0].to[0]: methods cannot be checked on port 5432: Service echo declares it tcp (opaque), whose connections carry no HTTP requests. Take 5432 out of this entry's ports (an entry without methods may name it), or declare the port http, http2, grpc or auto",
    );
    expect(await names(reg, 'authz')).toEqual([]);
  });

  it('refuses a rule without ports when every port is tcp', async () => {
    const reg = await registry();
    const message = await refusal(reg, [
      echo([5432, 'tcp']),
      policy('paths', 'ALLOW', [{ paths: ['/public*'] }]),
    ]);
    expect(message).toContain(
      'paths.yaml: document 1 (AuthorizationPolicy/paths): spec.rules[0].to[0]: paths cannot be checked: this entry names no ports',
    );
    expect(await names(reg, 'services')).toEqual([]);
  });

  it('accepts an ALLOW without ports on mixed ports, and refuses a DENY', async () => {
    const reg = await registry();
    await reg.apply([echo([80, 'http'], [5432, 'tcp'])]);
    await reg.apply([policy('reads', 'ALLOW', [{ methods: ['GET'] }])]);
    expect(
      await refusal(reg, [policy('no-orders', 'DENY', [{ grpc: [{ service: 'pkg.Orders' }] }])]),
    ).toContain(
      'no-orders.yaml: document 1 (AuthorizationPolicy/no-orders): spec.rules[0].to[0]: this DENY entry names no ports, so it covers every port of Service echo, and grpc cannot be checked on its tcp (opaque) port 5432',
    );
    expect(await names(reg, 'authz')).toEqual(['reads']);
  });

  it('refuses making a port tcp while a policy has HTTP rules for it', async () => {
    const reg = await registry();
    await reg.apply([echo([80, 'http']), policy('get-only', 'ALLOW', [{ methods: ['GET'] }])]);
    expect(await refusal(reg, [echo([80, 'tcp'])])).toBe(
      'echo.yaml: document 1 (Service/echo): spec.ports: AuthorizationPolicy get-only would no longer hold as written; change it first, or in the same apply: spec.rules[0].to[0]: methods cannot be checked: this entry names no ports, so it covers every port of Service echo, and all of them (80) are tcp (opaque), whose connections carry no HTTP requests. Declare the HTTP ports http, http2, grpc or auto, or drop methods',
    );
    const [svc] = await reg.get('service', 'echo');
    expect(JSON.parse(svc!.json).spec.ports[0].protocol).toBe('http');
  });

  it('accepts the port change together with the policy change', async () => {
    const reg = await registry();
    await reg.apply([echo([80, 'http']), policy('get-only', 'ALLOW', [{ methods: ['GET'] }])]);
    const results = await reg.apply([
      echo([80, 'tcp']),
      policy('get-only', 'ALLOW', [{ ports: [80] }]),
    ]);
    expect(results.map((r) => r.outcome)).toEqual(['configured', 'configured']);
  });

  it('checks a policy applied before its Service when the Service comes', async () => {
    const reg = await registry();
    await reg.apply([policy('get-only', 'ALLOW', [{ methods: ['GET'] }])]);
    expect(await refusal(reg, [echo([5432, 'tcp'])])).toContain(
      'echo.yaml: document 1 (Service/echo): spec.ports: AuthorizationPolicy get-only would no longer hold as written',
    );
    expect(await names(reg, 'services')).toEqual([]);
  });
});
