// Prometheus metrics of the agent's control plane session (sync state, certificates, local
// workloads' health checks), registered on the registry the agent serves on 15020. Values are read from the session at scrape time (collect), so
// nothing on any hot path touches them. identity_cert_expiration_timestamp_seconds is the
// name Linkerd users alert on; an expiry alert is what catches a renewal that keeps failing.
import type { Registry } from 'prom-client';
import type { ControlPlaneSession, SyncState } from '../controlplane-client/session.js';
import { Counter, Gauge } from '../telemetry/prom.js';

const STATES: readonly SyncState[] = ['starting', 'connected', 'stale'];
const HEALTHS = ['healthy', 'unhealthy', 'unknown'] as const;

export function registerSyncMetrics(registry: Registry, session: ControlPlaneSession): void {
  new Gauge({
    name: 'weft_sync_state',
    help: 'Control plane sync state: 1 for the current one (connected, stale = serving cached state, starting)',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      for (const state of STATES) this.set({ state }, session.state === state ? 1 : 0);
    },
  });
  new Gauge({
    name: 'weft_sync_version',
    help: 'Version of the configuration snapshot the agent serves (0: none)',
    registers: [registry],
    collect() {
      this.set(session.status().version);
    },
  });
  new Gauge({
    name: 'weft_sync_last_update_timestamp_seconds',
    help: 'When the snapshot the agent serves was accepted (unix seconds)',
    registers: [registry],
    collect() {
      const at = session.status().lastUpdateUnixMs;
      if (at !== undefined) this.set(at / 1000);
    },
  });
  const nacks = new Counter({
    name: 'weft_sync_nacks_total',
    help: 'Configuration versions the agent rejected (see /config_dump lastNack for why)',
    registers: [registry],
  });
  session.on('nack', () => nacks.inc());
  new Gauge({
    name: 'weft_workload_health',
    help: "Local workloads' health as this agent checks and reports it: 1 for the current one",
    labelNames: ['workload', 'service', 'health'],
    registers: [registry],
    collect() {
      this.reset();
      for (const w of session.status().workloads)
        for (const health of HEALTHS)
          this.set({ workload: w.name, service: w.service, health }, w.health === health ? 1 : 0);
    },
  });
  new Counter({
    name: 'weft_workload_health_checks_total',
    help: 'Health checks of local workloads run, by check (listening, tcp, http GET PATH) and result (passed, failed, error: could not run)',
    labelNames: ['workload', 'check', 'result'],
    registers: [registry],
    collect() {
      // The session keeps the counts (they restart when SIGHUP reloads the workloads).
      this.reset();
      for (const w of session.status().workloads)
        for (const [result, n] of Object.entries(w.results))
          this.inc({ workload: w.name, check: w.check, result }, n);
    },
  });
  new Gauge({
    name: 'identity_cert_expiration_timestamp_seconds',
    help: 'When each certificate the agent holds expires (unix seconds)',
    labelNames: ['spiffe_id'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of session.certificates.all())
        this.set({ spiffe_id: c.spiffeId }, c.info.notAfter.getTime() / 1000);
    },
  });
}
