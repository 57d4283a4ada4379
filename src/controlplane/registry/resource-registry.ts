// Apply, get and delete of user resources. An apply is validated as a whole (sizes included:
// see api/resources/limits.ts) and written as one store transaction: one invalid document, or
// a conflict with a concurrent change, and nothing changes. Services get their virtual IP here,
// in the same transaction that creates them. Checks across resources (AuthorizationPolicy HTTP
// rules against Service port protocols) read the store within the same attempt.
// Each apply marks what it writes with an apply id, so that a transaction whose reply was lost
// (etcd3 retries it, and its compares then fail against its own commit) is recognised as ours.
import type { ApplyResult, ResourceMessage } from '../../api/messages.js';
import {
  applySizeProblem,
  describeDocument,
  documentBytes,
  documentSizeProblems,
  INTERNAL_KINDS,
  kindPlural,
  type Mesh,
  type ResourceKind,
  resolveKind,
  USER_KINDS,
  validateResource,
} from '../../api/resources/index.js';
import { WeftError } from '../../errors.js';
import { kindPrefix, RESOURCES_PREFIX, resourceKey, VIPS_PREFIX, vipKey } from '../store/keys.js';
import type { Store, StoreCompare, StoreEntry, StoreOp } from '../store/store.js';
import { newApplyId, withoutApplyId } from './apply-id.js';
import { checkAuthorizationPorts } from './authorization-port-check.js';
import { canonicalJson } from './canonical-json.js';
import { type AppliedDocument, checkTrafficPolicies } from './traffic-policy-check.js';
import { withTrafficPolicyStatus } from './traffic-policy-status.js';
import { pickVip, SERVICE_VIP_RANGE, type VipRange } from './vip-allocator.js';

export interface ApplyItem {
  /** The parsed document (JSON.parse of Resource.json). */
  document: unknown;
  /** "echo.yaml: document 2" */
  source: string;
}

interface StoredDocument {
  apiVersion: string;
  kind: ResourceKind;
  metadata: { name: string };
  spec: unknown;
  status?: Record<string, unknown>;
  /** The apply that wrote it (see committedBy); never shown, never sent to agents. */
  applyId?: string;
}

/** The time a route was first applied, to the second (ISO 8601, UTC). */
function nowIso(): string {
  return new Date(Math.floor(Date.now() / 1000) * 1000).toISOString();
}

/** How often an apply is retried when a concurrent change got in between (CAS conflict). */
const MAX_ATTEMPTS = 8;

/** As `weft get` shows it: with metadata.resourceVersion, which an apply of it checks. */
export function toResourceMessage(entry: StoreEntry<StoredDocument>): ResourceMessage {
  const doc = {
    ...withoutApplyId(entry.value),
    metadata: { ...entry.value.metadata, resourceVersion: String(entry.modRevision) },
  };
  return {
    kind: entry.value.kind,
    name: entry.value.metadata.name,
    json: JSON.stringify(doc),
    revision: entry.modRevision,
  };
}

/** A document's resourceVersion against the stored one: a conflict when they differ. */
function checkVersion(
  source: string,
  id: string,
  expected: string,
  current: number | undefined,
): void {
  if (current !== undefined && String(current) === expected) return;
  const [kind, name] = id.split('/');
  const again = `weft get ${kind!.toLowerCase()} ${name} -o yaml`;
  throw new WeftError(
    'WEFT_E_CONFLICT',
    current === undefined
      ? `${source} (${id}): metadata.resourceVersion ${expected}: ${id} was deleted since it was read; remove metadata.resourceVersion to create it again, or apply with --force`
      : `${source} (${id}): metadata.resourceVersion ${expected}: ${id} was changed since it was read (now at version ${current}); read it again (${again}), make the change there and apply it, or apply with --force to overwrite`,
  );
}

/** The kind a request names; unknown kinds are a usage error that lists the known ones. */
export function requireKind(input: string): ResourceKind {
  const kind = resolveKind(input);
  if (kind === undefined) {
    throw new WeftError(
      'WEFT_E_USAGE',
      `unknown kind "${input}"; expected one of ${[...USER_KINDS, ...INTERNAL_KINDS].join(', ')}`,
    );
  }
  return kind;
}

export class ResourceRegistry {
  private readonly store: Store;
  private readonly trustDomain: string;
  private readonly vipRange: VipRange;

  constructor(store: Store, options: { trustDomain: string; vipRange?: VipRange }) {
    this.store = store;
    this.trustDomain = options.trustDomain;
    this.vipRange = options.vipRange ?? SERVICE_VIP_RANGE;
  }

  /** Validates everything, then writes everything in one transaction. */
  /**
   * Validates everything, then writes everything in one transaction. A document that carries
   * metadata.resourceVersion (from `weft get`) is written only over that version (unless
   * force): a change made in between is a conflict, not silently overwritten.
   */
  async apply(
    items: readonly ApplyItem[],
    source = 'request',
    options: { force?: boolean } = {},
  ): Promise<ApplyResult[]> {
    const resources = this.validate(items, source);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const result = await this.tryApply(resources, options.force === true);
      if (result !== undefined) return result;
    }
    throw new WeftError(
      'WEFT_E_STORE',
      'the resources kept changing while being applied; try again',
    );
  }

  private validate(items: readonly ApplyItem[], source: string): AppliedDocument[] {
    const problems: string[] = [];
    const out: AppliedDocument[] = [];
    const seen = new Map<string, string>();
    let total = 0;
    for (const item of items) {
      const result = validateResource(item.document);
      const bytes = documentBytes(item.document);
      total += bytes;
      const named = result.ok
        ? describeDocument(item.source, result.resource.kind, result.resource.metadata.name)
        : describeDocument(item.source, result.kind, result.name);
      for (const p of documentSizeProblems(item.document, bytes)) problems.push(`${named}: ${p}`);
      if (!result.ok) {
        for (const p of result.problems) problems.push(`${named}: ${p}`);
        continue;
      }
      const id = `${result.resource.kind}/${result.resource.metadata.name}`;
      const where = describeDocument(
        item.source,
        result.resource.kind,
        result.resource.metadata.name,
      );
      const first = seen.get(id);
      if (first !== undefined) problems.push(`${where}: defined twice (also in ${first})`);
      seen.set(id, item.source);
      const meshProblem =
        result.resource.kind === 'Mesh' ? this.meshProblem(result.resource) : undefined;
      if (meshProblem !== undefined) problems.push(`${where}: ${meshProblem}`);
      out.push({ resource: result.resource, document: item.document, source: item.source });
    }
    const meshes = out.filter((r) => r.resource.kind === 'Mesh');
    if (meshes.length > 1)
      problems.push(
        `${meshes[1]!.source}: there is one Mesh per control plane; this apply defines ${meshes.length}`,
      );
    const tooBig = applySizeProblem(total);
    if (tooBig !== undefined) problems.push(`${source}: ${tooBig}`);
    if (problems.length > 0) throw new WeftError('WEFT_E_CONFIG', problems.join('\n'));
    return out;
  }

  private meshProblem(mesh: Mesh): string | undefined {
    const td = mesh.spec.trustDomain;
    if (td !== undefined && td !== this.trustDomain) {
      return `spec.trustDomain: must be ${this.trustDomain}, the control plane's trust domain (it is set in the control plane's config)`;
    }
    return undefined;
  }

  /** One attempt; undefined when a concurrent change made a compare fail. */
  private async tryApply(
    resources: AppliedDocument[],
    force: boolean,
  ): Promise<ApplyResult[] | undefined> {
    // Across resources: HTTP rules of AuthorizationPolicies only on ports that carry HTTP;
    // TrafficPolicies one per target, each Service's merged over the Mesh's still valid.
    const ports = await checkAuthorizationPorts(this.store, resources);
    const traffic = await checkTrafficPolicies(this.store, resources);
    const problems = [...ports.problems, ...traffic.problems];
    if (problems.length > 0) throw new WeftError('WEFT_E_CONFIG', problems.join('\n'));
    const compares: StoreCompare[] = [...ports.compares, ...traffic.compares];
    const ops: StoreOp[] = [];
    const results: ApplyResult[] = [];
    const applyId = newApplyId();
    let usedVips: Set<string> | undefined;
    for (const { resource, document, source } of resources) {
      const { kind } = resource;
      const name = resource.metadata.name;
      const key = resourceKey(kind, name);
      const existing = await this.store.get<StoredDocument>(key);
      const { resourceVersion, ...metadata } = resource.metadata;
      if (resourceVersion !== undefined && !force)
        checkVersion(source, `${kind}/${name}`, resourceVersion, existing?.modRevision);
      // The compare makes the check hold at commit: a change in between retries, and conflicts.
      compares.push({ key, modRevision: existing?.modRevision ?? 0 });
      if (kind === 'Mesh') await this.checkSingleMesh(name, source);
      const stored: StoredDocument = {
        apiVersion: resource.apiVersion,
        kind,
        metadata,
        spec: kind === 'Mesh' ? { ...resource.spec, trustDomain: this.trustDomain } : resource.spec,
      };
      // Kept as written: defaults are filled in after the Service's policy is merged over the
      // Mesh's (api/resources/traffic-policy-scopes.ts), where a default must not win.
      if (kind === 'TrafficPolicy') stored.spec = (document as { spec: unknown }).spec;
      if (kind === 'Service') {
        let vip = existing?.value.status?.vip as string | undefined;
        if (vip === undefined) {
          usedVips ??= await this.usedVips();
          vip = pickVip(name, usedVips, this.vipRange);
          usedVips.add(vip);
          compares.push({ key: vipKey(vip), modRevision: 0 });
          ops.push({ type: 'put', key: vipKey(vip), value: { service: name } });
        }
        stored.status = { vip };
      }
      if (kind === 'HTTPRoute' || kind === 'GRPCRoute') {
        // Route precedence breaks ties by age (Gateway API): kept from the first apply.
        const createdAt = existing?.value.status?.createdAt;
        stored.status = { createdAt: typeof createdAt === 'string' ? createdAt : nowIso() };
      }
      const same =
        existing !== undefined &&
        canonicalJson(withoutApplyId(existing.value)) === canonicalJson(stored);
      results.push({
        kind,
        name,
        outcome: existing === undefined ? 'created' : same ? 'unchanged' : 'configured',
        // Unchanged: the version found; else the revision this apply commits (set below).
        resourceVersion: same ? (existing?.modRevision ?? 0) : 0,
      });
      if (!same) ops.push({ type: 'put', key, value: { ...stored, applyId } });
    }
    if (ops.length === 0) return results;
    const revision = await this.commit({ compares, ops }, applyId);
    if (revision === undefined) return undefined;
    for (const r of results) if (r.resourceVersion === 0) r.resourceVersion = revision;
    return results;
  }

  /**
   * Commits the apply's transaction: its revision, or undefined when a compare failed. A
   * transaction etcd committed but whose reply was lost is either retried by the etcd client
   * (the retry's compares fail against our own commit) or fails; both are told apart from a
   * real conflict or failure by reading back the apply id we wrote (as joins do with the token's
   * redemption record, identity/redemption.ts).
   */
  private async commit(
    request: { compares: StoreCompare[]; ops: StoreOp[] },
    applyId: string,
  ): Promise<number | undefined> {
    let txn: { succeeded: boolean; revision: number };
    try {
      txn = await this.store.txn(request);
    } catch (err) {
      const ours = await this.committedBy(request.ops, applyId).catch(() => undefined);
      if (ours === undefined) throw err;
      return ours;
    }
    if (txn.succeeded) return txn.revision;
    return this.committedBy(request.ops, applyId);
  }

  /** The revision at which this apply's writes committed, if any of them is still there. */
  private async committedBy(ops: StoreOp[], applyId: string): Promise<number | undefined> {
    // One transaction: any key still carrying the id shows all committed, at its modRevision.
    for (const op of ops) {
      if (op.type !== 'put' || !op.key.startsWith(RESOURCES_PREFIX)) continue;
      const entry = await this.store.get<StoredDocument>(op.key);
      if (entry?.value.applyId === applyId) return entry.modRevision;
    }
    return undefined;
  }

  private async checkSingleMesh(name: string, source: string): Promise<void> {
    const meshes = await this.store.list<StoredDocument>(kindPrefix('Mesh'));
    const other = meshes.entries.find((e) => e.value.metadata.name !== name);
    if (other !== undefined) {
      throw new WeftError(
        'WEFT_E_CONFIG',
        `${source} (Mesh/${name}): metadata.name: a Mesh named "${other.value.metadata.name}" already exists; there is one Mesh: change that one, or delete it first`,
      );
    }
  }

  private async usedVips(): Promise<Set<string>> {
    const { entries } = await this.store.list(VIPS_PREFIX);
    return new Set(entries.map((e) => e.key.slice(VIPS_PREFIX.length)));
  }

  /** TrafficPolicies come with their effective values (status.effective). */
  async get(kindInput: string, name?: string): Promise<ResourceMessage[]> {
    const kind = requireKind(kindInput);
    let entries: StoreEntry<StoredDocument>[];
    if (name !== undefined && name !== '') {
      const entry = await this.store.get<StoredDocument>(resourceKey(kind, name));
      if (entry === undefined)
        throw new WeftError('WEFT_E_NOT_FOUND', `${kind} "${name}" not found`);
      entries = [entry];
    } else {
      entries = (await this.store.list<StoredDocument>(kindPrefix(kind))).entries;
    }
    if (kind !== 'TrafficPolicy') return entries.map(toResourceMessage);
    const all = (await this.store.list<StoredDocument>(kindPrefix(kind))).entries;
    const statuses = withTrafficPolicyStatus(all.map((e) => e.value));
    return entries.map((e) =>
      toResourceMessage({ ...e, value: statuses.get(e.value.metadata.name) ?? e.value }),
    );
  }

  /** Deletes one resource (a Service frees its virtual IP in the same transaction). */
  async delete(kindInput: string, name: string): Promise<void> {
    const kind = requireKind(kindInput);
    if (kind === 'Revocation') {
      throw new WeftError(
        'WEFT_E_USAGE',
        'Revocation resources are removed by the control plane once their certificates have expired; they cannot be deleted',
      );
    }
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const key = resourceKey(kind, name);
      const entry = await this.store.get<StoredDocument>(key);
      if (entry === undefined) {
        throw new WeftError(
          'WEFT_E_NOT_FOUND',
          `${kind} "${name}" not found (see weft get ${kindPlural(kind)})`,
        );
      }
      const ops: StoreOp[] = [{ type: 'delete', key }];
      const vip = entry.value.status?.vip;
      if (kind === 'Service' && typeof vip === 'string')
        ops.push({ type: 'delete', key: vipKey(vip) });
      const txn = await this.store.txn({
        compares: [{ key, modRevision: entry.modRevision }],
        ops,
      });
      if (txn.succeeded) return;
    }
    throw new WeftError(
      'WEFT_E_STORE',
      `${kind} "${name}" kept changing while being deleted; try again`,
    );
  }
}
