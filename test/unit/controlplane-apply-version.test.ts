// Optimistic concurrency of apply: a document read with `weft get` carries
// metadata.resourceVersion, and applying it over a newer version is a conflict that names both
// versions and the way out (read again, or --force); without a version an apply writes as
// before. Driven through the registry over a real store.
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

async function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'weft-apply-version-'));
  dirs.push(dir);
  const store = await FileStore.open({ dir });
  stores.push(store);
  return { store, registry: new ResourceRegistry(store, { trustDomain: 'weft.local' }) };
}

const service = (port: number, resourceVersion?: string) => ({
  document: {
    apiVersion: 'weft/v1',
    kind: 'Service',
    metadata: { name: 'echo', ...(resourceVersion !== undefined ? { resourceVersion } : {}) },
    spec: { ports: [{ port }] },
  },
  source: 'echo.yaml: document 1',
});

/** What `weft get service echo` shows: the document with its resourceVersion. */
async function read(registry: ResourceRegistry) {
  const [msg] = await registry.get('Service', 'echo');
  return JSON.parse(msg!.json) as {
    metadata: { resourceVersion: string };
    spec: { ports: Array<{ port: number }> };
  };
}

describe('apply with metadata.resourceVersion', () => {
  it('shows each resource’s version on get, and never stores it', async () => {
    const { store, registry } = await setup();
    await registry.apply([service(80)]);
    const entry = await store.get<{ metadata: Record<string, unknown> }>('/resources/Service/echo');
    expect((await read(registry)).metadata.resourceVersion).toBe(String(entry!.modRevision));
    await registry.apply([service(81, String(entry!.modRevision))]);
    const after = await store.get<{ metadata: Record<string, unknown> }>('/resources/Service/echo');
    expect(after!.value.metadata).toEqual({ name: 'echo' });
  });

  it('writes over the version it was read at', async () => {
    const { registry } = await setup();
    await registry.apply([service(80)]);
    const seen = await read(registry);
    expect(await registry.apply([service(81, seen.metadata.resourceVersion)])).toMatchObject([
      { kind: 'Service', name: 'echo', outcome: 'configured' },
    ]);
    expect((await read(registry)).spec.ports[0]!.port).toBe(81);
  });

  it('refuses to write over a newer version, changing nothing, and --force overwrites', async () => {
    const { registry } = await setup();
    await registry.apply([service(80)]);
    const stale = (await read(registry)).metadata.resourceVersion;
    await registry.apply([service(81)]); // someone else's change, after the read
    const now = (await read(registry)).metadata.resourceVersion;
    const err = await registry.apply([service(82, stale)]).catch((e: unknown) => e);
    expect(isWeftError(err, 'WEFT_E_CONFLICT')).toBe(true);
    expect((err as Error).message).toBe(
      `echo.yaml: document 1 (Service/echo): metadata.resourceVersion ${stale}: Service/echo was changed since it was read (now at version ${now}); read it again (weft get service echo -o yaml), make the change there and apply it, or apply with --force to overwrite`,
    );
    expect((await read(registry)).spec.ports[0]!.port).toBe(81);
    await registry.apply([service(82, stale)], 'request', { force: true });
    expect((await read(registry)).spec.ports[0]!.port).toBe(82);
  });

  it('refuses to bring back a resource deleted since it was read', async () => {
    const { registry } = await setup();
    await registry.apply([service(80)]);
    const seen = (await read(registry)).metadata.resourceVersion;
    await registry.delete('Service', 'echo');
    await expect(registry.apply([service(81, seen)])).rejects.toThrow(
      'Service/echo was deleted since it was read; remove metadata.resourceVersion to create it again, or apply with --force',
    );
  });

  it('lets exactly one of two applies from the same read win', async () => {
    const { registry } = await setup();
    await registry.apply([service(80)]);
    const seen = (await read(registry)).metadata.resourceVersion;
    const results = await Promise.allSettled([
      registry.apply([service(81, seen)]),
      registry.apply([service(82, seen)]),
    ]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(isWeftError(lost.reason, 'WEFT_E_CONFLICT')).toBe(true);
  });

  it('refuses a version that is not one weft printed', async () => {
    const { registry } = await setup();
    await expect(registry.apply([service(80, 'abc')])).rejects.toThrow(
      'metadata.resourceVersion: must be the version weft get printed (a positive number)',
    );
  });
});
