// The three ways of checking a local workload, as executors of a HealthCheck: listening (the
// kernel's table of listening sockets; nothing reaches the application), a TCP connect, and an
// HTTP GET. Each resolves true (passed), false (failed) or undefined (could not be run).

import { connect } from 'node:net';
import { request } from '../sys/node-http.js';
import { type HealthCheck, statusPasses } from './health-check.js';

/** Is something listening on address:port? (SocketOps.listening) */
export type ListeningQuery = (address: string, port: number) => boolean;

export interface ProbeTarget {
  address: string;
  port: number;
}

export async function runProbe(
  check: HealthCheck,
  target: ProbeTarget,
  listening: () => Promise<ListeningQuery>,
): Promise<boolean | undefined> {
  switch (check.kind) {
    case 'listening':
      return (await listening())(target.address, target.port);
    case 'tcp':
      return probeTcp(target, check.timeoutMs);
    case 'http':
      return probeHttp(target, check.path, check.expectedStatuses, check.timeoutMs);
  }
}

function probeTcp({ address, port }: ProbeTarget, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port });
    const timer = setTimeout(() => done(false), timeoutMs);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

function probeHttp(
  { address, port }: ProbeTarget,
  path: string,
  expected: readonly number[] | undefined,
  timeoutMs: number,
): Promise<boolean> {
  return new Promise((resolve) => {
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve(ok);
    };
    // The timeout covers the whole check, up to the response's status line.
    const req = request({ host: address, port, path, method: 'GET', agent: false }, (res) => {
      res.resume();
      done(statusPasses(res.statusCode ?? 0, expected));
    });
    const timer = setTimeout(() => done(false), timeoutMs);
    req.once('error', () => done(false));
    req.end();
  });
}
