// Service virtual IPs: unique, stable across re-applies and restarts, freed on delete, and a
// clear error when the range is exhausted. Driven through the registry over a real store.
import { mkdtempSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ResourceRegistry } from '../../src/controlplane/registry/resource-registry.js';
import {
  pickVip,
  SERVICE_VIP_RANGE,
  VipRange,
} from '../../src/controlplane/registry/vip-allocator.js';
import { FileStore } from '../../src/controlplane/store/file-store.js';

const dirs: string[] = [];
const stores: FileStore[] = [];

afterEach(async () => {
  for (const s of stores.splice(0)) await s.close();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function registry(dir?: string, vipRange?: VipRange) {
  const d = dir ?? mkdtempSync(join(tmpdir(), 'weft-vip-test-'));
  if (dir === undefined) dirs.push(d);
  const store = await FileStore.open({ dir: d });
  stores.push(store);
  return {
    dir: d,
    store,
    registry: new ResourceRegistry(store, { trustDomain: 'weft.local', vipRange }),
  };
}

const serviceDoc = (name: string, port = 80) => ({
  document: {
    apiVersion: 'weft/v1',
    kind: 'Service',
    metadata: { name },
    spec: { ports: [{ port }] },
  },
  source: `${name}.yaml: document 1`,
});

async function vipOf(reg: ResourceRegistry, name: string): Promise<string> {
  const [msg] = await reg.get('service', name);
  return (JSON.parse(msg!.json) as { status: { vip: string } }).status.vip;
}

describe('picking an address', () => {
  it('stays inside 240.240.0.0/16, away from the network and broadcast addresses', () => {
    expect(SERVICE_VIP_RANGE.size).toBe(65_534);
    expect(SERVICE_VIP_RANGE.at(0)).toBe('240.240.0.1');
    expect(SERVICE_VIP_RANGE.at(65_533)).toBe('240.240.255.254');
    const vip = pickVip('orders', new Set());
    expect(SERVICE_VIP_RANGE.contains(vip)).toBe(true);
  });

  it('gives a name the same first choice every time, and skips taken addresses', () => {
    const first = pickVip('orders', new Set());
    expect(pickVip('orders', new Set())).toBe(first);
    const second = pickVip('orders', new Set([first]));
    expect(second).not.toBe(first);
  });

  it('hands out every address of a small range exactly once', () => {
    const range = new VipRange('10.0.0.0/28'); // 14 usable
    const used = new Set<string>();
    for (let i = 0; i < range.size; i++) used.add(pickVip(`svc-${i}`, used, range));
    expect(used.size).toBe(14);
    expect(() => pickVip('one-more', used, range)).toThrow(
      'no free virtual IP for service "one-more": all 14 addresses of 10.0.0.0/28 are taken; delete services you no longer need',
    );
  });
});

describe('virtual IPs of services', () => {
  it('are unique across many services', async () => {
    const { registry: reg } = await registry();
    const names = Array.from({ length: 200 }, (_, i) => `svc-${i}`);
    await reg.apply(names.map((n) => serviceDoc(n)));
    const vips = await Promise.all(names.map((n) => vipOf(reg, n)));
    expect(new Set(vips).size).toBe(200);
  });

  it('are unique when applies race each other', async () => {
    const { registry: reg } = await registry(undefined, new VipRange('10.1.0.0/29')); // 6 usable
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    await Promise.all(names.map((n) => reg.apply([serviceDoc(n)])));
    const vips = await Promise.all(names.map((n) => vipOf(reg, n)));
    expect(new Set(vips).size).toBe(6);
  });

  it('stay the same when a service is applied again or changed', async () => {
    const { registry: reg } = await registry();
    expect(await reg.apply([serviceDoc('echo')])).toMatchObject([
      { kind: 'Service', name: 'echo', outcome: 'created' },
    ]);
    const vip = await vipOf(reg, 'echo');
    expect(await reg.apply([serviceDoc('echo')])).toMatchObject([
      { kind: 'Service', name: 'echo', outcome: 'unchanged' },
    ]);
    expect(await reg.apply([serviceDoc('echo', 8080)])).toMatchObject([
      { kind: 'Service', name: 'echo', outcome: 'configured' },
    ]);
    expect(await vipOf(reg, 'echo')).toBe(vip);
  });

  it('stay the same after a restart', async () => {
    const first = await registry();
    await first.registry.apply([serviceDoc('echo'), serviceDoc('orders')]);
    const before = [await vipOf(first.registry, 'echo'), await vipOf(first.registry, 'orders')];
    await first.store.close();
    stores.splice(stores.indexOf(first.store), 1);
    const again = await registry(first.dir);
    expect([await vipOf(again.registry, 'echo'), await vipOf(again.registry, 'orders')]).toEqual(
      before,
    );
    await again.registry.apply([serviceDoc('new')]);
    expect(before).not.toContain(await vipOf(again.registry, 'new'));
  });

  it('are freed on delete, and exhaustion is a clear error that changes nothing', async () => {
    const { registry: reg } = await registry(undefined, new VipRange('10.2.0.0/30')); // 2 usable
    await reg.apply([serviceDoc('a'), serviceDoc('b')]);
    await expect(reg.apply([serviceDoc('c'), serviceDoc('b', 81)])).rejects.toThrow(
      'no free virtual IP for service "c": all 2 addresses of 10.2.0.0/30 are taken',
    );
    expect((await reg.get('svc')).map((r) => r.name)).toEqual(['a', 'b']);
    expect(JSON.parse((await reg.get('svc', 'b'))[0]!.json).spec.ports[0].port).toBe(80);
    const freed = await vipOf(reg, 'a');
    await reg.delete('service', 'a');
    await reg.apply([serviceDoc('c')]);
    expect(await vipOf(reg, 'c')).toBe(freed);
  });
});
