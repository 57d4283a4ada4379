// A TCP relay on 127.0.0.1 in front of a real server, that a test can cut and restore: what a
// network partition between one client and that server looks like to the client (its open
// connections reset, new ones refused at once), without touching the server or its other
// clients. Used to take etcd away from one control plane replica only.
import { createConnection, createServer, type Server, type Socket } from 'node:net';

export interface TcpRelay {
  /** The relay's port on 127.0.0.1. */
  port: number;
  /** Resets every relayed connection and every new one until restore(). */
  cut(): void;
  restore(): void;
  close(): Promise<void>;
}

export async function startTcpRelay(target: { host: string; port: number }): Promise<TcpRelay> {
  const open = new Set<Socket>();
  let cut = false;
  const server: Server = createServer((client) => {
    if (cut) {
      client.resetAndDestroy();
      return;
    }
    const upstream = createConnection(target);
    open.add(client);
    open.add(upstream);
    const end = () => {
      open.delete(client);
      open.delete(upstream);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('relay: no port');
  return {
    port: address.port,
    cut() {
      cut = true;
      for (const s of [...open]) s.resetAndDestroy();
      open.clear();
    },
    restore() {
      cut = false;
    },
    close() {
      cut = true;
      for (const s of [...open]) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
