// The JSON documents the admin endpoint serves, built from the control plane session. Kept
// apart from the HTTP server so `weft status` and tests share one definition of each shape.
import type { ControlPlaneSession, SessionStatus } from '../controlplane-client/session.js';

export interface ReadyView {
  ready: boolean;
  /** connected | stale | starting */
  state: string;
  /** True when serving a cached snapshot because the control plane is unreachable. */
  stale: boolean;
  version: number;
  /** Why the agent is not ready (empty when it is). */
  reasons: string[];
}

export interface CertView {
  spiffeId: string;
  kind: 'node' | 'service';
  serial: string;
  notBefore: string;
  notAfter: string;
  secondsLeft: number;
}

export interface ConfigDumpView {
  state: string;
  version: number;
  lastUpdate: string | null;
  lastContact: string | null;
  /** Since when there has been no working stream to the control plane; null while connected. */
  disconnectedSince: string | null;
  /** The control plane replica connected to (or being tried). */
  controlPlane: string;
  /** Every replica the config names. */
  controlPlanes: string[];
  node: { hostname: string; spiffeId: string; trustDomain: string } | null;
  nacks: number;
  lastNack: { version: number; reason: string; at: string } | null;
  lastError: string | null;
  /** Local workloads with their health and how it is checked. */
  workloads: SessionStatus['workloads'];
  trustBundlePem: string;
  resources: unknown[];
}

export interface EndpointsView {
  version: number;
  services: Record<
    string,
    {
      vip: string | null;
      ports: { port: number; targetPort: number; protocol: string; name?: string }[];
      endpoints: {
        workload: string;
        node: string;
        address: string;
        port: number;
        health: string;
        weight: number;
        zone: string | null;
      }[];
    }
  >;
}

const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());

/** Without a control plane configured, the agent is a plain relay: state "standalone". */
const STANDALONE = 'standalone';

export function readyView(
  session: ControlPlaneSession | undefined,
  listenersUp: boolean,
  strict: boolean,
): ReadyView {
  const reasons: string[] = [];
  if (!listenersUp) reasons.push('the traffic listeners are not up yet');
  if (session === undefined) {
    return { ready: reasons.length === 0, state: STANDALONE, stale: false, version: 0, reasons };
  }
  const s = session.status();
  if (session.snapshot() === undefined) {
    reasons.push(
      `no configuration yet: nothing cached and the control plane has not answered${s.lastError ? ` (${s.lastError})` : ''}`,
    );
  } else if (strict && s.state === 'stale') {
    reasons.push(`serving cached version ${s.version}: the control plane is unreachable`);
  }
  return {
    ready: reasons.length === 0,
    state: s.state,
    stale: s.state === 'stale',
    version: s.version,
    reasons,
  };
}

export function certsView(
  session: ControlPlaneSession | undefined,
  now = Date.now(),
): { certificates: CertView[] } {
  if (session === undefined) return { certificates: [] };
  const node = session.certificates.node;
  return {
    certificates: session.certificates.all().map((c) => ({
      spiffeId: c.spiffeId,
      kind: c === node ? 'node' : 'service',
      serial: c.info.serial,
      notBefore: c.info.notBefore.toISOString(),
      notAfter: c.info.notAfter.toISOString(),
      secondsLeft: Math.max(0, Math.floor((c.info.notAfter.getTime() - now) / 1000)),
    })),
  };
}

export function configDumpView(session: ControlPlaneSession | undefined): ConfigDumpView {
  if (session === undefined) return standaloneDump();
  const s = session.status();
  const snapshot = session.snapshot();
  return {
    state: s.state,
    version: s.version,
    lastUpdate: iso(s.lastUpdateUnixMs),
    lastContact: iso(s.lastContactUnixMs),
    disconnectedSince: iso(s.disconnectedSinceUnixMs),
    controlPlane: s.controlPlane,
    controlPlanes: s.controlPlanes,
    node: s.node ?? null,
    nacks: s.nacks,
    lastNack: s.lastNack
      ? { version: s.lastNack.version, reason: s.lastNack.reason, at: iso(s.lastNack.atUnixMs)! }
      : null,
    lastError: s.lastError ?? null,
    workloads: s.workloads,
    trustBundlePem: session.trustBundle(),
    resources: snapshot ? [...snapshot.resources.values()].map((r) => r.doc) : [],
  };
}

export function endpointsView(session: ControlPlaneSession | undefined): EndpointsView {
  const view = session?.view();
  const out: EndpointsView = { version: view?.version ?? 0, services: {} };
  if (!view) return out;
  const names = new Set([...view.services.keys(), ...view.endpoints.keys()]);
  for (const name of [...names].sort()) {
    const svc = view.services.get(name);
    out.services[name] = {
      vip: svc?.vip ?? null,
      ports: svc?.ports ?? [],
      endpoints: (view.endpoints.get(name) ?? []).map((e) => ({
        workload: e.workload,
        node: e.node,
        address: e.address,
        port: e.port,
        health: e.health,
        weight: e.weight,
        zone: e.zone ?? null,
      })),
    };
  }
  return out;
}

function standaloneDump(): ConfigDumpView {
  return {
    state: STANDALONE,
    version: 0,
    lastUpdate: null,
    lastContact: null,
    disconnectedSince: null,
    controlPlane: '',
    controlPlanes: [],
    node: null,
    nacks: 0,
    lastNack: null,
    lastError: null,
    workloads: [],
    trustBundlePem: '',
    resources: [],
  };
}
