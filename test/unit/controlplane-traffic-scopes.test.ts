// `weft apply` of TrafficPolicies across documents, through the registry over a real store:
// one policy per target (a second one is refused, naming the first), a Mesh target's name is
// the Mesh's, a Service policy whose merge over the Mesh's would not hold is refused (and a
// Mesh policy that would break a stored Service policy), and nothing changes then. `get`
// returns the policy as written with its effective values and their scopes.
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
  const dir = mkdtempSync(join(tmpdir(), 'weft-traffic-scopes-test-'));
  dirs.push(dir);
  const store = await FileStore.open({ dir });
  stores.push(store);
  return new ResourceRegistry(store, { trustDomain: 'weft.local' });
}

const policy = (name: string, targetRef: Record<string, unknown>, fields = {}) => ({
  document: {
    apiVersion: 'weft/v1',
    kind: 'TrafficPolicy',
    metadata: { name },
    spec: { targetRef, ...fields },
  },
  source: `${name}.yaml: document 1`,
});

const mesh = (name: string) => ({
  document: { apiVersion: 'weft/v1', kind: 'Mesh', metadata: { name }, spec: {} },
  source: 'mesh.yaml: document 1',
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

async function names(reg: ResourceRegistry): Promise<string[]> {
  return (await reg.get('TrafficPolicy')).map((m) => m.name);
}

describe('one TrafficPolicy per target', () => {
  it('a second policy for a Service is refused, naming the first; nothing changes', async () => {
    const reg = await registry();
    await reg.apply([policy('orders-a', { name: 'orders' }, { timeouts: { request: '1s' } })]);
    const message = await refusal(reg, [
      policy('orders-b', { name: 'orders' }, { timeouts: { request: '2s' } }),
    ]);
    expect(message).toBe(
      'orders-b.yaml: document 1 (TrafficPolicy/orders-b): spec.targetRef: TrafficPolicy/orders-a already applies to Service/orders; there is one policy per target: put these fields in that one, or delete it first',
    );
    expect(await names(reg)).toEqual(['orders-a']);
  });

  it('two in one apply are refused too, and so is a second Mesh policy', async () => {
    const reg = await registry();
    const both = await refusal(reg, [
      policy('x', { name: 'orders' }),
      policy('y', { kind: 'Service', name: 'orders' }),
    ]);
    expect(both).toContain('(TrafficPolicy/x): spec.targetRef: TrafficPolicy/y already applies');
    expect(both).toContain('(TrafficPolicy/y): spec.targetRef: TrafficPolicy/x already applies');
    await reg.apply([policy('defaults', { kind: 'Mesh' }, { timeouts: { idle: '1m' } })]);
    expect(await refusal(reg, [policy('more', { kind: 'Mesh' })])).toContain(
      '(TrafficPolicy/more): spec.targetRef: TrafficPolicy/defaults already applies to the Mesh',
    );
    expect(await names(reg)).toEqual(['defaults']);
  });

  it('re-applying the same policy, or retargeting it, is no conflict with itself', async () => {
    const reg = await registry();
    await reg.apply([policy('p', { name: 'orders' })]);
    expect(await reg.apply([policy('p', { name: 'orders' })])).toMatchObject([
      { kind: 'TrafficPolicy', name: 'p', outcome: 'unchanged' },
    ]);
    expect(await reg.apply([policy('p', { kind: 'Mesh' })])).toMatchObject([
      { kind: 'TrafficPolicy', name: 'p', outcome: 'configured' },
    ]);
  });
});

describe("a Mesh target's name", () => {
  it("must be the Mesh's, when it is given", async () => {
    const reg = await registry();
    expect(await refusal(reg, [policy('d', { kind: 'Mesh', name: 'prod' })])).toContain(
      'spec.targetRef.name: there is no Mesh named "prod" (no Mesh resource exists): leave the name out to target the whole mesh',
    );
    await reg.apply([mesh('default')]);
    expect(await refusal(reg, [policy('d', { kind: 'Mesh', name: 'prod' })])).toContain(
      'spec.targetRef.name: the Mesh is named "default", not "prod": correct it, or leave the name out',
    );
    await reg.apply([policy('d', { kind: 'Mesh', name: 'default' })]);
    expect(await names(reg)).toEqual(['d']);
  });
});

describe('a merge that would not hold is refused', () => {
  const meshRetries = {
    retries: { on: ['retriable-status-codes'], retriableStatusCodes: [503] },
  };

  it("a Service policy over the Mesh's: names the Mesh's policy and the field", async () => {
    const reg = await registry();
    await reg.apply([policy('defaults', { kind: 'Mesh' }, meshRetries)]);
    const message = await refusal(reg, [
      policy('orders-tp', { name: 'orders' }, { retries: { on: ['5xx'] } }),
    ]);
    expect(message).toBe(
      "orders-tp.yaml: document 1 (TrafficPolicy/orders-tp): merged with the Mesh's TrafficPolicy/defaults, Service/orders would get spec.retries.retriableStatusCodes: does nothing unless `on` lists retriable-status-codes: add it there, or remove this field (set or null that field here or there)",
    );
    // null drops the inherited statuses: accepted.
    await reg.apply([
      policy(
        'orders-tp',
        { name: 'orders' },
        { retries: { on: ['5xx'], retriableStatusCodes: null } },
      ),
    ]);
    expect(await names(reg)).toEqual(['defaults', 'orders-tp']);
  });

  it("a Service's qos needs adaptiveConcurrency, its own or the Mesh's", async () => {
    const reg = await registry();
    const qos = { qos: { classes: { sheddable: ['batch'] } } };
    const message = await refusal(reg, [policy('orders-tp', { name: 'orders' }, qos)]);
    expect(message).toBe(
      "orders-tp.yaml: document 1 (TrafficPolicy/orders-tp): spec.qos: classes act only on adaptiveConcurrency's limit: set adaptiveConcurrency too (here or in the Mesh's policy), or remove qos",
    );
    expect(await names(reg)).toEqual([]);
    await reg.apply([
      policy('defaults', { kind: 'Mesh' }, { adaptiveConcurrency: { maxConcurrency: 50 } }),
      policy('orders-tp', { name: 'orders' }, qos),
    ]);
    expect(await names(reg)).toEqual(['defaults', 'orders-tp']);
  });

  it('a Mesh policy under a stored Service policy: names that policy', async () => {
    const reg = await registry();
    await reg.apply([policy('orders-tp', { name: 'orders' }, { retries: { on: ['5xx'] } })]);
    const message = await refusal(reg, [policy('defaults', { kind: 'Mesh' }, meshRetries)]);
    expect(message).toContain(
      '(TrafficPolicy/defaults): merged with TrafficPolicy/orders-tp, Service/orders would get spec.retries.retriableStatusCodes:',
    );
    expect(await names(reg)).toEqual(['orders-tp']);
  });
});

describe('get: the policy as written, and its effective values', () => {
  it('a Service policy shows what it inherits and from where; the Mesh policy, who overrides it', async () => {
    const reg = await registry();
    await reg.apply([
      policy('defaults', { kind: 'Mesh' }, { retries: { attempts: 2, on: ['5xx'] } }),
      policy('orders-tp', { name: 'orders' }, { retries: { attempts: 4 } }),
    ]);
    const [orders] = await reg.get('TrafficPolicy', 'orders-tp');
    const doc = JSON.parse(orders!.json);
    // Stored as written: no default filled in.
    expect(doc.spec).toEqual({ targetRef: { name: 'orders' }, retries: { attempts: 4 } });
    expect(doc.status.effective.target).toBe('Service/orders');
    expect(doc.status.effective.spec.retries).toEqual({
      attempts: 4,
      on: ['5xx'],
      backoff: { base: '25ms', max: '250ms' },
      budget: { percent: 20, minPerSecond: 10 },
    });
    expect(doc.status.effective.from).toEqual({
      'retries.attempts': 'Service (TrafficPolicy/orders-tp)',
      'retries.on': 'Mesh (TrafficPolicy/defaults)',
      'retries.backoff.base': 'default',
      'retries.backoff.max': 'default',
      'retries.budget.percent': 'default',
      'retries.budget.minPerSecond': 'default',
    });
    const [defaults] = await reg.get('TrafficPolicy', 'defaults');
    const meshDoc = JSON.parse(defaults!.json);
    expect(meshDoc.status.effective.target).toBe(
      'Mesh (every Service without a TrafficPolicy of its own)',
    );
    expect(meshDoc.status.effective.from['retries.attempts']).toBe('Mesh (TrafficPolicy/defaults)');
    expect(meshDoc.status.overriddenBy).toEqual(['TrafficPolicy/orders-tp (Service/orders)']);
  });
});
