// How big resources may be. Every document reaches every agent and is held in memory there (a
// 10 MB annotation grew each agent by hundreds of MB), so the control plane refuses, per
// document, more than Kubernetes allows for annotations alone (256 KiB), labels and
// annotations above 64 KiB together, and more than 4 MiB in one apply. `weft apply` checks the
// same limits first, for errors that name the file; the control plane is the authority.

export const RESOURCE_LIMITS = {
  /** The whole document as JSON. */
  documentBytes: 256 * 1024,
  /** metadata.labels and metadata.annotations together (keys and values, as JSON). */
  metadataBytes: 64 * 1024,
  /** All documents of one apply, as JSON. */
  applyBytes: 4 * 1024 * 1024,
} as const;

/** "256 KiB", "300.1 KiB", "4.2 MiB", "12 bytes": exact multiples without decimals. */
export function formatBytes(bytes: number): string {
  const unit = (size: number, name: string): string => {
    const n = bytes / size;
    return `${Number.isInteger(n) ? n : n.toFixed(1)} ${name}`;
  };
  if (bytes >= 1024 * 1024) return unit(1024 * 1024, 'MiB');
  if (bytes >= 1024) return unit(1024, 'KiB');
  return `${bytes} bytes`;
}

const jsonBytes = (value: unknown): number => Buffer.byteLength(JSON.stringify(value) ?? '');

/** The size of a document as the control plane stores and sends it. */
export function documentBytes(doc: unknown): number {
  return jsonBytes(doc);
}

/** What is wrong with one document's size (empty: nothing), given its JSON size. */
export function documentSizeProblems(doc: unknown, bytes = documentBytes(doc)): string[] {
  const problems: string[] = [];
  if (bytes > RESOURCE_LIMITS.documentBytes) {
    problems.push(
      `${formatBytes(bytes)} of JSON, over the limit of ${formatBytes(RESOURCE_LIMITS.documentBytes)} per resource`,
    );
  }
  const metadata = (doc as { metadata?: { labels?: unknown; annotations?: unknown } } | null)
    ?.metadata;
  const meta =
    (metadata?.labels === undefined ? 0 : jsonBytes(metadata.labels)) +
    (metadata?.annotations === undefined ? 0 : jsonBytes(metadata.annotations));
  if (meta > RESOURCE_LIMITS.metadataBytes) {
    problems.push(
      `metadata.labels and metadata.annotations hold ${formatBytes(meta)}, over the limit of ${formatBytes(RESOURCE_LIMITS.metadataBytes)}`,
    );
  }
  return problems;
}

/** The problem with an apply of `bytes` in total, or undefined. */
export function applySizeProblem(bytes: number): string | undefined {
  if (bytes <= RESOURCE_LIMITS.applyBytes) return undefined;
  return `${formatBytes(bytes)} of JSON in one apply, over the limit of ${formatBytes(RESOURCE_LIMITS.applyBytes)}: apply fewer resources at a time`;
}
