// The agent's view of the mesh as versioned snapshots, and the one pure rule that moves it
// forward: a SyncResponse is applied only when the whole result validates; otherwise the
// agent keeps what it has and tells the control plane why (a Nack). Nothing here does I/O.
import { X509Certificate } from 'node:crypto';
import { splitPemCertificates } from '../api/ca-pin.js';

/** A resource as it travels on the wire (the proto's Resource). */
export interface WireResource {
  kind: string;
  name: string;
  /** The whole document: apiVersion, kind, metadata, spec, status. */
  json: string;
  revision: number;
}

export interface ResourceKey {
  kind: string;
  name: string;
}

/** One SyncResponse, with numbers already converted from uint64. */
export interface SyncDelta {
  version: number;
  baseVersion: number;
  full: boolean;
  upserts: WireResource[];
  removals: ResourceKey[];
  /** '' when unchanged (always set with full). */
  trustBundlePem: string;
}

export interface SnapshotResource {
  kind: string;
  name: string;
  revision: number;
  /** Parsed and validated by the shared schema of its kind. */
  doc: Record<string, unknown>;
  /** The document as received, kept for the on-disk cache. */
  json: string;
}

export interface Snapshot {
  version: number;
  trustBundlePem: string;
  /** Keyed by `${kind}/${name}`. */
  resources: ReadonlyMap<string, SnapshotResource>;
}

/**
 * Validation of single documents and of a whole snapshot; the shared resource schemas plug in
 * here (see resource-rules.ts), so this file stays about versions and deltas.
 */
export interface SnapshotRules {
  /** Parses a document of a kind; returns the parsed document or a reason naming the field. */
  parse(
    kind: string,
    doc: unknown,
  ): { ok: true; doc: Record<string, unknown> } | { ok: false; reason: string };
  /** Checks cross-resource invariants (e.g. no two services share a VIP); a reason or undefined. */
  checkConsistency(resources: ReadonlyMap<string, SnapshotResource>): string | undefined;
}

/** resync: the versions disagree, so a fresh Hello (not a later delta) is what can fix it. */
export type ApplyResult =
  /** unchanged: the same version confirmed, nothing to store. */
  | { ok: true; snapshot: Snapshot; unchanged?: boolean }
  | { ok: false; reason: string; resync?: boolean };

export function resourceKey(kind: string, name: string): string {
  return `${kind}/${name}`;
}

/** Applies one SyncResponse to the current snapshot, or says why it must be rejected. */
export function applyDelta(
  current: Snapshot | undefined,
  delta: SyncDelta,
  rules: SnapshotRules,
): ApplyResult {
  const versionProblem = checkVersions(current, delta);
  if (versionProblem) return { ok: false, reason: versionProblem, resync: true };
  if (current !== undefined && !delta.full && isEmpty(delta)) {
    return {
      ok: true,
      snapshot: { ...current, version: delta.version },
      unchanged: delta.version === current.version,
    };
  }

  const resources = new Map(delta.full || current === undefined ? [] : current.resources);
  const removed = new Set<string>();
  for (const key of delta.removals) {
    const id = resourceKey(key.kind, key.name);
    removed.add(id);
    // Removing what is not held is harmless (an idempotent retransmission), so it is allowed.
    resources.delete(id);
  }
  for (const wire of delta.upserts) {
    const id = resourceKey(wire.kind, wire.name);
    if (removed.has(id))
      return { ok: false, reason: `${id}: both upserted and removed in version ${delta.version}` };
    const parsed = parseWire(wire, rules);
    if (!parsed.ok) return parsed;
    resources.set(id, parsed.resource);
  }

  const trustBundlePem =
    delta.trustBundlePem !== '' ? delta.trustBundlePem : (current?.trustBundlePem ?? '');
  const bundleProblem = checkTrustBundle(trustBundlePem);
  if (bundleProblem) return { ok: false, reason: bundleProblem };

  const inconsistency = rules.checkConsistency(resources);
  if (inconsistency) return { ok: false, reason: inconsistency };
  return { ok: true, snapshot: { version: delta.version, trustBundlePem, resources } };
}

function checkVersions(current: Snapshot | undefined, delta: SyncDelta): string | undefined {
  if (delta.full) {
    if (delta.trustBundlePem === '')
      return `full snapshot ${delta.version} carries no trust bundle`;
    return undefined;
  }
  if (current === undefined) {
    return `delta ${delta.baseVersion} -> ${delta.version} arrived but no snapshot is held (a full snapshot is needed)`;
  }
  if (delta.baseVersion !== current.version) {
    return `delta base version ${delta.baseVersion} does not match the held version ${current.version}`;
  }
  if (delta.version < delta.baseVersion) {
    return `delta version ${delta.version} goes back from its base ${delta.baseVersion}`;
  }
  // version == base is the control plane saying "you are up to date" (after a Hello that
  // named its current version): fine when empty, contradictory when it changes anything.
  if (delta.version === delta.baseVersion && !isEmpty(delta)) {
    return `delta ${delta.baseVersion} -> ${delta.version} changes resources without a new version`;
  }
  return undefined;
}

function isEmpty(delta: SyncDelta): boolean {
  return delta.upserts.length === 0 && delta.removals.length === 0 && delta.trustBundlePem === '';
}

function parseWire(
  wire: WireResource,
  rules: SnapshotRules,
): { ok: true; resource: SnapshotResource } | { ok: false; reason: string } {
  const id = resourceKey(wire.kind, wire.name);
  let doc: unknown;
  try {
    doc = JSON.parse(wire.json);
  } catch (err) {
    return { ok: false, reason: `${id}: not valid JSON: ${(err as Error).message}` };
  }
  const envelope = doc as { kind?: unknown; metadata?: { name?: unknown } } | null;
  if (envelope?.kind !== wire.kind) {
    return {
      ok: false,
      reason: `${id}: document kind ${JSON.stringify(envelope?.kind)} does not match`,
    };
  }
  if (envelope.metadata?.name !== wire.name) {
    return {
      ok: false,
      reason: `${id}: metadata.name ${JSON.stringify(envelope.metadata?.name)} does not match`,
    };
  }
  const parsed = rules.parse(wire.kind, doc);
  if (!parsed.ok) return { ok: false, reason: `${id}: ${parsed.reason}` };
  return {
    ok: true,
    resource: {
      kind: wire.kind,
      name: wire.name,
      revision: wire.revision,
      doc: parsed.doc,
      json: wire.json,
    },
  };
}

/** A trust bundle must hold at least one certificate and nothing unparseable. */
function checkTrustBundle(pem: string): string | undefined {
  const certs = splitPemCertificates(pem);
  if (certs.length === 0) return 'the trust bundle holds no certificate';
  for (const [i, cert] of certs.entries()) {
    try {
      new X509Certificate(cert);
    } catch (err) {
      return `trust bundle certificate ${i}: ${(err as Error).message}`;
    }
  }
  return undefined;
}
