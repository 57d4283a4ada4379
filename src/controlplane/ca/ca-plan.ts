// Where a starting control plane gets its CA, decided from what it finds: a CA of its own (the
// `ca:` files or ca.key/ca.crt in its data directory), what the store records, and whether
// etcd holds the CA key sealed under a KEK. Pure: load-ca.ts gathers the facts and does it.
export interface CaFacts {
  store: 'file' | 'etcd';
  /** A KEK file is configured (caKekFile). */
  kek: boolean;
  /** The pin of the CA found on this host, if any. */
  localPin?: string;
  /** What the store records about the CA in use. */
  record?: { pin: string; source: 'generated' | 'file' };
  /** The pin of the CA whose key etcd holds sealed, if it holds one. */
  sealedPin?: string;
}

export type CaRefusal =
  /** etcd holds the CA key sealed; this replica has no KEK to open it. */
  | 'kek-needed'
  /** The CA this control plane created is gone from its data directory (file store). */
  | 'ca-missing'
  /** etcd records a CA shared as files, and this replica has none (no KEK in use). */
  | 'ca-not-here'
  /** etcd records a CA but holds no sealed key, and this replica has the KEK but no CA. */
  | 'no-sealed-key'
  /** This replica's own CA is not the one the other replicas sign with. */
  | 'other-ca';

export type CaPlan =
  /** This host's CA: recorded in the store (a changed one is logged). */
  | { kind: 'use-local' }
  /** A new CA, its key written to the data directory (0600). */
  | { kind: 'create-local' }
  /** The CA whose key etcd holds sealed, opened with the KEK. */
  | { kind: 'open-sealed' }
  /** This host's CA (imported, or copied before KEKs), sealed into etcd for every replica. */
  | { kind: 'seal-local' }
  /** A new CA whose key is only ever written to etcd, sealed. */
  | { kind: 'create-sealed' }
  | { kind: 'refuse'; reason: CaRefusal };

const refuse = (reason: CaRefusal): CaPlan => ({ kind: 'refuse', reason });

export function planCa(f: CaFacts): CaPlan {
  const otherLocal =
    f.localPin !== undefined && f.record !== undefined && f.record.pin !== f.localPin;
  if (f.store === 'file') {
    // A changed CA is the operator's choice on one control plane (logged: agents must rejoin).
    if (f.localPin !== undefined) return { kind: 'use-local' };
    return f.record?.source === 'generated' ? refuse('ca-missing') : { kind: 'create-local' };
  }
  if (f.sealedPin !== undefined) {
    if (!f.kek) return refuse('kek-needed');
    if (f.localPin !== undefined && f.localPin !== f.sealedPin) return refuse('other-ca');
    return { kind: 'open-sealed' };
  }
  if (otherLocal) return refuse('other-ca');
  if (f.kek) {
    if (f.localPin !== undefined) return { kind: 'seal-local' };
    return f.record !== undefined ? refuse('no-sealed-key') : { kind: 'create-sealed' };
  }
  // No KEK: the replicas share the CA as files copied by hand (before KEKs existed).
  if (f.localPin !== undefined) return { kind: 'use-local' };
  return f.record !== undefined ? refuse('ca-not-here') : { kind: 'create-local' };
}
