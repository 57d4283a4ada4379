// Local health checks of this host's workloads (a TCP connect, or an HTTP GET when the
// workload names a path). Results feed the Heartbeat, so peers stop sending to an endpoint
// whose process died; a change is reported at once rather than at the next heartbeat.
import { EventEmitter } from 'node:events';
import { request } from 'node:http';
import { connect } from 'node:net';
import type { Health, LocalWorkload } from './local-workloads.js';

export class WorkloadHealth extends EventEmitter<{ change: [name: string, health: Health] }> {
  private readonly health = new Map<string, Health>();
  private readonly timers: NodeJS.Timeout[] = [];
  private stopped = false;

  constructor(private readonly workloads: readonly LocalWorkload[]) {
    super();
    for (const w of workloads) this.health.set(w.name, 'unknown');
  }

  start(): void {
    for (const w of this.workloads) {
      void this.checkNow(w);
      const timer = setInterval(() => void this.checkNow(w), w.config.health.intervalMs);
      timer.unref();
      this.timers.push(timer);
    }
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
  }

  get(name: string): Health {
    return this.health.get(name) ?? 'unknown';
  }

  all(): { name: string; health: Health }[] {
    return this.workloads.map((w) => ({ name: w.name, health: this.get(w.name) }));
  }

  private async checkNow(w: LocalWorkload): Promise<void> {
    const ok = await probe(w);
    if (this.stopped) return;
    const next: Health = ok ? 'healthy' : 'unhealthy';
    if (this.health.get(w.name) === next) return;
    this.health.set(w.name, next);
    this.emit('change', w.name, next);
  }
}

/** One probe: true when the workload answered within its timeout. */
export function probe(w: LocalWorkload): Promise<boolean> {
  const { httpPath, timeoutMs } = w.config.health;
  return httpPath === undefined
    ? probeTcp(w.address, w.port, timeoutMs)
    : probeHttp(w, httpPath, timeoutMs);
}

function probeTcp(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: timeoutMs });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

function probeHttp(w: LocalWorkload, path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      { host: w.address, port: w.port, path, method: 'GET', timeout: timeoutMs, agent: false },
      (res) => {
        res.resume();
        const status = res.statusCode ?? 0;
        resolve(status >= 200 && status < 400);
      },
    );
    req.once('timeout', () => req.destroy(new Error('timeout')));
    req.once('error', () => resolve(false));
    req.end();
  });
}
