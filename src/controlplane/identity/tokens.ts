// One-time join tokens: "<id>.<secret>". The id finds the record; only a SHA-256 of the 192-bit
// secret is stored (a secret that long needs no slow hash), compared in constant time. A token
// is consumed by the same store transaction that records the joined node, so two joins racing
// on one token cannot both win.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { Refusal, unauthenticated } from '../refusal.js';
import { tokenKey } from '../store/keys.js';
import type { Store, StoreEntry } from '../store/store.js';

export interface TokenRecord {
  id: string;
  /** sha256(secret), hex. */
  secretHash: string;
  description: string;
  createdAtMs: number;
  expiresAtMs: number;
  /** Set when a join used it (the used-token marker). */
  usedAtMs?: number;
  usedBy?: string;
}

export interface NewToken {
  token: string;
  record: TokenRecord;
}

const TOKEN = /^([0-9a-f]{12})\.([A-Za-z0-9_-]{32})$/;

const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('hex');

export function newToken(ttlMs: number, description: string, now = Date.now()): NewToken {
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
    },
  };
}

export async function storeNewToken(
  store: Store,
  ttlMs: number,
  description: string,
): Promise<NewToken> {
  const created = newToken(ttlMs, description);
  await store.put(tokenKey(created.record.id), created.record, { prevModRevision: 0 });
  return created;
}

/**
 * The stored record of a token that may be used now; refuses malformed, unknown, used and
 * expired tokens, each with its own reason.
 */
export async function usableToken(
  store: Store,
  token: string,
  now = Date.now(),
): Promise<StoreEntry<TokenRecord>> {
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
  const record = entry.value;
  if (record.usedAtMs !== undefined) {
    throw new Refusal(
      'token_used',
      `join token ${id} was already used (by ${record.usedBy ?? 'a node'} at ${new Date(record.usedAtMs).toISOString()}); tokens are one-time: create a new one with \`weft token create\``,
    );
  }
  if (record.expiresAtMs <= now) {
    throw new Refusal(
      'token_expired',
      `join token ${id} expired at ${new Date(record.expiresAtMs).toISOString()}; create a new one with \`weft token create\``,
    );
  }
  return entry;
}
