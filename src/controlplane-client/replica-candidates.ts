// The control plane replicas as this (re)connect finds them: each configured host:port, a DNS
// name expanded to every address it resolves to now (so replicas added behind a name are
// found without a restart). A name that does not resolve stays as it is: dialing it fails
// with the resolver's error, which the agent reports, and the next attempt resolves again.
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { parseHostPort } from '../api/tls.js';
import type { ReplicaCandidate } from './replica-choice.js';

export const CONTROL_PLANE_PORT = 15012;

export type ResolveAll = (host: string) => Promise<string[]>;

const systemResolve: ResolveAll = async (host) =>
  (await lookup(host, { all: true })).map((a) => a.address);

/** host:port for an address, with brackets for IPv6. */
export function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The candidates of `entries` given what each name resolved to (absent: did not resolve). */
export function expandCandidates(
  entries: readonly string[],
  resolved: ReadonlyMap<string, readonly string[]>,
): ReplicaCandidate[] {
  return entries.flatMap((entry) => {
    const { host, port } = parseHostPort(entry, CONTROL_PLANE_PORT);
    if (isIP(host) !== 0) return [{ dial: hostPort(host, port), name: entry }];
    const ips = resolved.get(host);
    if (ips === undefined || ips.length === 0) return [{ dial: entry, name: entry }];
    return ips.map((ip) => ({ dial: hostPort(ip, port), name: entry }));
  });
}

export async function resolveCandidates(
  entries: readonly string[],
  resolve: ResolveAll = systemResolve,
): Promise<ReplicaCandidate[]> {
  const names = [
    ...new Set(
      entries.map((e) => parseHostPort(e, CONTROL_PLANE_PORT).host).filter((h) => isIP(h) === 0),
    ),
  ];
  const resolved = new Map<string, string[]>();
  await Promise.all(
    names.map(async (name) => {
      try {
        resolved.set(name, [...new Set(await resolve(name))]);
      } catch {
        // Left unresolved: see the file's comment.
      }
    }),
  );
  return expandCandidates(entries, resolved);
}
