// The listening sockets the master holds for its workers: the ones systemd's socket units
// passed, else bound here by the native addon as bare fds. The master never wraps them in a
// libuv handle, so it never accepts on them; it keeps them open while it lives, so a worker
// that dies or retires loses nothing queued in their backlogs.
import type { SocketOps } from '../../native/socket-ops.js';
import type { AgentConfig } from '../config.js';
import { listenFds } from '../systemd.js';

/** TCP listeners for the workers, and systemd's UDP DNS sockets for the master's DNS. */
export interface HeldSockets {
  outbound: number;
  inbound: number;
  tunnel: number;
  /** Passed by weft-agent-dns.socket (the master's DNS adopts them); empty otherwise. */
  dns: number[];
  socketActivated: boolean;
}

const BACKLOG = 1024;

export function holdListeningSockets(config: AgentConfig, socketOps: SocketOps): HeldSockets {
  const passed = listenFds();
  const { capture } = config;
  const bind = (port: number, transparent = false) =>
    socketOps.transparentListener({ host: '::', port, backlog: BACKLOG, transparent });
  return {
    outbound: passed.get('outbound')?.[0] ?? bind(capture.outboundPort),
    // The socket unit sets Transparent= itself when inbound uses TPROXY.
    inbound:
      passed.get('inbound')?.[0] ?? bind(capture.inboundPort, capture.inboundMode === 'tproxy'),
    tunnel: passed.get('tunnel')?.[0] ?? bind(capture.agentPorts.tunnel),
    dns: passed.get('dns') ?? [],
    socketActivated: passed.size > 0,
  };
}
