// The listening sockets the master holds for its workers: the ones systemd's socket units
// passed, else bound here by the native addon as bare fds. The master never wraps them in a
// libuv handle, so it never accepts on them; it keeps them open while it lives, so a worker
// that dies or retires loses nothing queued in their backlogs.
//
// Spreading: workers sharing one listening socket split a burst of connections unevenly (each
// accepts in a loop until the backlog is empty: in the lab, 34 of 40 connections opened at
// once went to one of two workers). So the sockets bound here are one per worker slot, in a
// SO_REUSEPORT group per port, and the kernel spreads connections over them by 4-tuple hash;
// worker i of every generation serves slot i, so a reload's new worker takes over the very
// socket its predecessor served. Under systemd the socket units make the same kind of group
// (ReusePort=yes, one ListenStream= per worker, rendered by scripts/install.sh): slot i serves
// the i-th socket systemd passed for each port (modulo: fewer sockets than workers are shared).
// The master cannot add sockets of its own to systemd's groups: the kernel joins only sockets
// of the same owner uid, and systemd's are root's.
//
// After an upgrade's exec (handover.ts) the new master image adopts the same fds instead of
// binding: nothing is closed in between, so nothing queued is lost.
import { closeSync } from 'node:fs';
import { setCloexec } from '../../native/process-ops.js';
import type { SocketOps } from '../../native/socket-ops.js';
import type { AgentConfig } from '../config.js';
import { listenFds } from '../systemd.js';
import type { Handover } from './handover.js';

/** The TCP listeners one worker serves. */
export interface SlotSockets {
  outbound: number;
  inbound: number;
  tunnel: number;
}

const BACKLOG = 1024;

export class HeldSockets {
  private readonly passed: Map<string, number[]>;
  private readonly slots: SlotSockets[] = [];

  constructor(
    private readonly config: AgentConfig,
    private readonly socketOps: SocketOps,
    handover?: Handover,
  ) {
    if (!handover) {
      this.passed = listenFds();
      return;
    }
    this.passed = new Map(handover.passed);
    for (const s of handover.slots) {
      this.slots.push({ ...s });
      // Kept open across the exec; closed at the next one again unless handed over, and not
      // inherited by workers other than through their stdio slots.
      for (const fd of [s.outbound, s.inbound, s.tunnel])
        if (!this.isPassed(fd)) setCloexec(fd, true);
    }
  }

  /** What the next master image gets (handover.ts). */
  handover(): Pick<Handover, 'slots' | 'passed'> {
    return { slots: this.slots.map((s) => ({ ...s })), passed: [...this.passed.entries()] };
  }

  /** systemd's UDP DNS sockets (weft-agent-dns.socket), for the master's DNS; or none. */
  get dns(): number[] {
    return this.passed.get('dns') ?? [];
  }

  get socketActivated(): boolean {
    return this.passed.size > 0;
  }

  /** The most sockets systemd passed for one TCP port (0 when it passed none). */
  get passedPerPort(): number {
    return Math.max(
      0,
      ...['outbound', 'inbound', 'tunnel'].map((name) => this.passed.get(name)?.length ?? 0),
    );
  }

  /** The sockets of worker slot `i` (0-based), bound on first use. */
  slot(i: number): SlotSockets {
    while (this.slots.length <= i) this.slots.push(this.bindSlot());
    return this.slots[i]!;
  }

  /** Closes the sockets of slots from `count` on (fewer workers after a reload), when no
   * worker serves them any more. Connections queued in them are lost: the kernel resets them. */
  shrinkTo(count: number): void {
    while (this.slots.length > Math.max(1, count)) {
      const s = this.slots.pop()!;
      for (const fd of new Set([s.outbound, s.inbound, s.tunnel])) {
        if (this.isPassed(fd)) continue;
        closeSync(fd);
      }
    }
  }

  private isPassed(fd: number): boolean {
    return [...this.passed.values()].some((fds) => fds.includes(fd));
  }

  private bindSlot(): SlotSockets {
    const { capture } = this.config;
    const bind = (port: number, transparent = false) =>
      this.socketOps.transparentListener({
        host: '::',
        port,
        backlog: BACKLOG,
        transparent,
        reusePort: true,
      });
    const i = this.slots.length;
    const passed = (name: string) => {
      const fds = this.passed.get(name);
      return fds && fds.length > 0 ? fds[i % fds.length] : undefined;
    };
    return {
      outbound: passed('outbound') ?? bind(capture.outboundPort),
      // The socket unit sets Transparent= itself when inbound uses TPROXY.
      inbound: passed('inbound') ?? bind(capture.inboundPort, capture.inboundMode === 'tproxy'),
      tunnel: passed('tunnel') ?? bind(capture.agentPorts.tunnel),
    };
  }
}
