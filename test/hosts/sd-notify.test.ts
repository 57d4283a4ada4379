// The agent's side of systemd without systemd: LISTEN_FDS parsing, and sd_notify messages
// received on a real unix datagram socket (socat), as systemd's notify socket would get them.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenFds, sdNotify, sdStatus } from '../../src/agent/systemd.js';
import { requireRootAndTools } from '../helpers/prereqs.js';
import { waitFor } from '../helpers/wait.js';

describe('listenFds', () => {
  it('maps FileDescriptorName= names to fds from 3, in order, and unsets the variables', () => {
    const env: Record<string, string | undefined> = {
      LISTEN_PID: '42',
      LISTEN_FDS: '5',
      LISTEN_FDNAMES: 'outbound:inbound:tunnel:dns:dns',
    };
    const fds = listenFds(env, 42);
    expect([...fds]).toEqual([
      ['outbound', [3]],
      ['inbound', [4]],
      ['tunnel', [5]],
      ['dns', [6, 7]],
    ]);
    expect(env).toEqual({});
  });

  it('ignores sockets meant for another process, and names missing names "unknown"', () => {
    expect(listenFds({ LISTEN_PID: '7', LISTEN_FDS: '1' }, 8).size).toBe(0);
    expect([...listenFds({ LISTEN_PID: '7', LISTEN_FDS: '2' }, 7)]).toEqual([['unknown', [3, 4]]]);
    expect(listenFds({}, 7).size).toBe(0);
  });
});

describe('sdNotify', () => {
  let dir: string;
  let receiver: ChildProcess;
  let received = '';

  beforeAll(async () => {
    requireRootAndTools(['socat']);
    dir = mkdtempSync(join(tmpdir(), 'weft-notify-'));
    const socket = join(dir, 'notify');
    receiver = spawn('socat', ['-u', `UNIX-RECV:${socket}`, 'STDOUT'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    receiver.stdout?.on('data', (d) => (received += `${d}|`));
    await waitFor('socat to bind the notify socket', () => existsSync(socket));
  });

  afterAll(() => {
    receiver?.kill();
    delete process.env.NOTIFY_SOCKET;
  });

  it('is a no-op without NOTIFY_SOCKET', () => {
    delete process.env.NOTIFY_SOCKET;
    expect(sdNotify('READY=1')).toBe(false);
  });

  it('sends READY=1 and a one-line STATUS= to the notify socket', async () => {
    process.env.NOTIFY_SOCKET = join(dir, 'notify');
    expect(sdNotify('READY=1')).toBe(true);
    expect(sdStatus('sync connected,\n snapshot v3')).toBe(true);
    // Two datagrams may arrive in one pipe read: compare the bytes in order.
    const bytes = () => received.replaceAll('|', '');
    const expected = 'READY=1STATUS=sync connected, snapshot v3';
    await waitFor('both messages at the socket', () => bytes().length >= expected.length, {
      detail: () => `received: ${JSON.stringify(received)}`,
    });
    expect(bytes()).toBe(expected);
  });
});
