// One-time join tokens: "<id>.<secret>", each naming the node that may join with it, the
// services that node may serve, and whether it may replace an existing node of that name (a
// rebuilt host). The id finds the record; only a SHA-256 of the 192-bit secret is stored (a
// secret that long needs no slow hash), compared in constant time. A token is consumed by the
// same store transaction that records the joined node, so two joins racing on one token cannot
// both win; a revoked token stays listed, refused, until it would have expired.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { TokenInfo, TokenState } from '../../api/messages.js';
import { isDnsLabel } from '../../api/spiffe.js';
import { WeftError } from '../../errors.js';
import { failedPrecondition, invalidRequest, Refusal, unauthenticated } from '../refusal.js';
import { TOKENS_PREFIX, tokenKey } from '../store/keys.js';
import type { Store, StoreEntry } from '../store/store.js';

export interface TokenRecord {
  id: string;
  /** sha256(secret), hex. */
  secretHash: string;
  description: string;
  createdAtMs: number;
  expiresAtMs: number;
  /** The hostname that may join with it. Tokens made before scoping have none: refused. */
  node?: string;
  /** Services that node may serve (sorted). */
  services?: string[];
  /** It may replace an existing node of that name. */
  replace?: boolean;
  /** Set when a join used it (the used-token marker). */
  usedAtMs?: number;
  usedBy?: string;
  /** sha256 of the CSR of the join that used it, and the node certificate that join got: the
   * same request sent again (its answer was lost) gets that answer, not "used" (redemption.ts). */
  usedFor?: string;
  usedCertificatePem?: string;
  revokedAtMs?: number;
}

export interface TokenScope {
  node: string;
  services: readonly string[];
  replace: boolean;
}

export interface NewToken {
  token: string;
  record: TokenRecord;
}

const TOKEN = /^([0-9a-f]{12})\.([A-Za-z0-9_-]{32})$/;
const TOKEN_ID = /^[0-9a-f]{12}$/;

const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('hex');

/** The scope as given, checked: a node name and service names that are DNS labels. */
export function checkScope(scope: Partial<TokenScope>): TokenScope {
  const node = scope.node ?? '';
  if (node === '') {
    throw invalidRequest(
      'token_node_missing',
      'a join token names the node that may use it: give node (`weft token create --node NAME`)',
    );
  }
  if (!isDnsLabel(node)) {
    throw invalidRequest(
      'token_node_invalid',
      `node "${node}" is not a valid hostname (a DNS label: lowercase letters, digits and "-")`,
    );
  }
  const services = [...new Set(scope.services ?? [])].sort();
  const bad = services.find((s) => !isDnsLabel(s));
  if (bad !== undefined) {
    throw invalidRequest(
      'service_invalid',
      `service "${bad}" is not a valid service name (a DNS label: lowercase letters, digits and "-")`,
    );
  }
  return { node, services, replace: scope.replace === true };
}

export function newToken(
  ttlMs: number,
  description: string,
  scope: TokenScope,
  now = Date.now(),
): NewToken {
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(24).toString('base64url');
  return {
    token: `${id}.${secret}`,
    record: {
      id,
      secretHash: hashSecret(secret),
      description,
      createdAtMs: now,
      expiresAtMs: now + ttlMs,
      node: scope.node,
      services: [...scope.services],
      replace: scope.replace,
    },
  };
}

export async function storeNewToken(
  store: Store,
  ttlMs: number,
  description: string,
  scope: TokenScope,
): Promise<NewToken> {
  const created = newToken(ttlMs, description, scope);
  await store.put(tokenKey(created.record.id), created.record, { prevModRevision: 0 });
  return created;
}

/** What a token is now; revoked and used outrank expired (they say more). */
export function tokenState(record: TokenRecord, now: number): TokenState {
  if (record.usedAtMs !== undefined) return 'used';
  if (record.revokedAtMs !== undefined) return 'revoked';
  if (record.expiresAtMs <= now) return 'expired';
  return 'unused';
}

/** The record as `weft token list` shows it: never the secret (nor its hash). */
export function tokenInfo(record: TokenRecord, now: number): TokenInfo {
  return {
    id: record.id,
    node: record.node ?? '',
    services: record.services ?? [],
    replace: record.replace === true,
    description: record.description,
    createdUnixMs: record.createdAtMs,
    expiresUnixMs: record.expiresAtMs,
    state: tokenState(record, now),
    usedBy: record.usedBy ?? '',
    usedAtUnixMs: record.usedAtMs ?? 0,
    revokedAtUnixMs: record.revokedAtMs ?? 0,
  };
}

const when = (ms: number): string => new Date(ms).toISOString();

/** The stored record of a token whose secret matches, whatever its state. */
export async function knownToken(store: Store, token: string): Promise<StoreEntry<TokenRecord>> {
  const m = TOKEN.exec(token.trim());
  if (m === null) {
    throw unauthenticated(
      'token_malformed',
      'malformed join token: expected <id>.<secret> as printed by `weft token create`',
    );
  }
  const [, id, secret] = m as unknown as [string, string, string];
  const entry = await store.get<TokenRecord>(tokenKey(id));
  const given = Buffer.from(hashSecret(secret), 'hex');
  if (entry === undefined || !timingSafeEqual(given, Buffer.from(entry.value.secretHash, 'hex'))) {
    throw unauthenticated(
      'token_unknown',
      'unknown join token: create one with `weft token create` on the control plane',
    );
  }
  return entry;
}

/**
 * The stored record of a token that may be used now; refuses malformed, unknown, used,
 * revoked, expired and unscoped tokens, each with its own reason.
 */
export async function usableToken(
  store: Store,
  token: string,
  now = Date.now(),
): Promise<StoreEntry<TokenRecord>> {
  const entry = await knownToken(store, token);
  const record = entry.value;
  const id = record.id;
  const create = `\`weft token create --node ${record.node ?? 'NAME'}\``;
  switch (tokenState(record, now)) {
    case 'used':
      throw new Refusal(
        'token_used',
        `join token ${id} was already used (by ${record.usedBy ?? 'a node'} at ${when(record.usedAtMs!)}); tokens are one-time: create a new one with ${create}`,
      );
    case 'revoked':
      throw new Refusal(
        'token_revoked',
        `join token ${id} was revoked at ${when(record.revokedAtMs!)}; create a new one with ${create}`,
      );
    case 'expired':
      throw new Refusal(
        'token_expired',
        `join token ${id} expired at ${when(record.expiresAtMs)}; create a new one with ${create}`,
      );
    default:
  }
  if (record.node === undefined) {
    throw new Refusal(
      'token_unscoped',
      `join token ${id} was made before tokens named their node, and is no longer accepted; create a new one with ${create}`,
    );
  }
  return entry;
}

export async function listTokens(store: Store, now = Date.now()): Promise<TokenInfo[]> {
  const { entries } = await store.list<TokenRecord>(TOKENS_PREFIX);
  return entries
    .map((e) => tokenInfo(e.value, now))
    .sort((a, b) => a.createdUnixMs - b.createdUnixMs || a.id.localeCompare(b.id));
}

/** Revokes an unused token; idempotent for a revoked one. */
export async function revokeToken(store: Store, id: string, now = Date.now()): Promise<TokenInfo> {
  if (!TOKEN_ID.test(id)) {
    throw invalidRequest(
      'token_id_invalid',
      `"${id}" is not a token id: give the 12 hex digits before the "." (see weft token list)`,
    );
  }
  for (let attempt = 0; attempt < 8; attempt++) {
    const entry = await store.get<TokenRecord>(tokenKey(id));
    if (entry === undefined) {
      throw new WeftError('WEFT_E_NOT_FOUND', `join token ${id} not found (see weft token list)`);
    }
    const record = entry.value;
    if (record.usedAtMs !== undefined) {
      throw failedPrecondition(
        'token_used',
        `join token ${id} was already used by ${record.usedBy}: to take that node out of the mesh use \`weft delete node ${record.usedBy}\``,
      );
    }
    if (record.revokedAtMs !== undefined) return tokenInfo(record, now);
    const revoked: TokenRecord = { ...record, revokedAtMs: now };
    const txn = await store.put(tokenKey(id), revoked, { prevModRevision: entry.modRevision });
    if (txn.succeeded) return tokenInfo(revoked, now);
  }
  throw new WeftError(
    'WEFT_E_STORE',
    `join token ${id} kept changing while being revoked; try again`,
  );
}
