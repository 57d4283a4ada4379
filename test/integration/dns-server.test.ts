// The agent's DNS server on loopback, asked by real clients: node's c-ares resolver (what
// `dns.Resolver` uses) and a raw UDP/TCP client for what c-ares hides (flags, authority
// section, ids), with real DNS servers of the test's own as upstreams.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type DecodedPacket, decode, encode, type Packet } from 'dns-packet';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type DnsServer, type DnsServerOptions, startDnsServer } from '../../src/dns/index.js';
import { waitFor } from '../helpers/wait.js';

type LogLine = Record<string, unknown> & { msg: string };

const TABLE: Record<string, { v4: string[]; v6: string[] }> = {
  echo: { v4: ['240.240.0.1'], v6: ['fd00:240::1'] },
  v4only: { v4: ['240.240.0.2'], v6: [] },
  // More addresses than fit in a UDP answer: the client must come back over TCP.
  many: { v4: Array.from({ length: 120 }, (_, i) => `240.240.1.${i + 1}`), v6: [] },
};
const resolve = (service: string) => TABLE[service];

/** A real UDP+TCP DNS server on loopback that answers A queries for *.example with 192.0.2.7. */
class FakeUpstream {
  readonly sent: Buffer[] = [];
  readonly received: DecodedPacket[] = [];
  readonly receivedBytes: Buffer[] = [];
  udp!: UdpSocket;
  tcp!: Server;
  port = 0;

  constructor(private readonly mode: 'answer' | 'swallow') {}

  /**
   * Binds UDP on a free port, then TCP on the same number. That number may be taken for TCP
   * (another process's connection, say), so on EADDRINUSE both are given up and it tries again.
   */
  async start(): Promise<this> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.bind();
        return this;
      } catch (err) {
        this.udp.close();
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || attempt === 20) throw err;
      }
    }
  }

  private async bind(): Promise<void> {
    this.udp = createSocket('udp4');
    this.udp.on('message', (msg, peer) => {
      const reply = this.reply(msg);
      if (reply) this.udp.send(reply, peer.port, peer.address);
    });
    this.udp.bind(0, '127.0.0.1');
    await once(this.udp, 'listening');
    this.port = this.udp.address().port;
    this.tcp = createServer((socket) => {
      socket.on('error', () => {});
      socket.on('data', (chunk) => {
        const reply = this.reply(chunk.subarray(2, 2 + chunk.readUInt16BE(0)));
        if (!reply) return;
        const prefix = Buffer.alloc(2);
        prefix.writeUInt16BE(reply.length);
        socket.write(Buffer.concat([prefix, reply]));
      });
    });
    this.tcp.listen(this.port, '127.0.0.1');
    await once(this.tcp, 'listening');
  }

  private reply(msg: Buffer): Buffer | undefined {
    const query = decode(msg);
    this.received.push(query);
    this.receivedBytes.push(Buffer.from(msg));
    if (this.mode === 'swallow') return undefined;
    const q = query.questions![0]!;
    const reply = encode({
      type: 'response',
      id: query.id,
      flags: (query.flags ?? 0) | (1 << 7),
      questions: [q],
      answers: [{ type: 'A', name: q.name, ttl: 42, class: 'IN', data: '192.0.2.7' }],
    });
    this.sent.push(reply);
    return reply;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  async stop(): Promise<void> {
    this.udp.close();
    this.tcp.close();
  }
}

let good: FakeUpstream;
let silent: FakeUpstream;
let server: DnsServer | undefined;
let lines: LogLine[] = [];

function logger() {
  return pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s)) });
}

async function start(opts: Partial<DnsServerOptions> = {}): Promise<DnsServer> {
  server = await startDnsServer({
    port: 0,
    resolve,
    upstreams: [good.address],
    log: logger(),
    ...opts,
  });
  return server;
}

function resolver(s: DnsServer, host = '127.0.0.1'): Resolver {
  // One try and a client timeout well above the server's upstream timeout: an error code
  // other than ETIMEOUT proves the server answered.
  const r = new Resolver({ timeout: 4000, tries: 1 });
  r.setServers([host.includes(':') ? `[${host}]:${s.address.port}` : `${host}:${s.address.port}`]);
  return r;
}

interface UdpClient {
  /** Its own port, for datagrams sent to it. */
  port: number;
  send(message: Buffer): void;
  /** The next datagram not taken yet (from the server or anyone else), in arrival order. */
  next(what: string): Promise<{ message: Buffer; from: number }>;
  close(): void;
}

/** A raw UDP client of the server on `port`. Unconnected, so that a test can send it a sentinel. */
async function udpClient(port: number): Promise<UdpClient> {
  const socket = createSocket('udp4');
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const inbox: Array<{ message: Buffer; from: number }> = [];
  socket.on('message', (message, peer) => inbox.push({ message, from: peer.port }));
  return {
    port: socket.address().port,
    send: (message) => socket.send(message, port, '127.0.0.1'),
    next: (what) => waitFor(what, () => inbox.shift()),
    close: () => socket.close(),
  };
}

/** Sends one query over UDP and returns the reply's bytes. */
async function udpExchange(port: number, message: Buffer): Promise<Buffer> {
  const client = await udpClient(port);
  try {
    client.send(message);
    return (await client.next('a reply from the DNS server')).message;
  } finally {
    client.close();
  }
}

async function tcpExchange(port: number, message: Buffer): Promise<Buffer> {
  const socket = connect(port, '127.0.0.1');
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(message.length);
  socket.end(Buffer.concat([prefix, message])); // half-close: the server must still answer
  const chunks: Buffer[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer);
  const all = Buffer.concat(chunks);
  return all.subarray(2, 2 + all.readUInt16BE(0));
}

function query(name: string, type: 'A' | 'AAAA' | 'MX' | 'SOA', id = 4242, edns = false): Buffer {
  const packet: Packet = {
    type: 'query',
    id,
    flags: 1 << 8, // RD
    questions: [{ type, name, class: 'IN' }],
  };
  if (edns) {
    packet.additionals = [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: 1232,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: 0,
        flag_do: false,
        options: [],
      },
    ];
  }
  return encode(packet);
}

const rcodeOf = (reply: Buffer) => reply[3]! & 0xf;

beforeAll(async () => {
  good = await new FakeUpstream('answer').start();
  silent = await new FakeUpstream('swallow').start();
});
afterAll(async () => {
  await good?.stop();
  await silent?.stop();
});
afterEach(async () => {
  await server?.close();
  server = undefined;
  lines = [];
});

describe('mesh names', () => {
  it('answers A and AAAA for a service with its virtual IPs and the configured TTL', async () => {
    const s = await start({ ttl: 7 });
    const r = resolver(s);
    expect(await r.resolve4('echo.mesh', { ttl: true })).toEqual([
      { address: '240.240.0.1', ttl: 7 },
    ]);
    expect(await r.resolve6('echo.mesh')).toEqual(['fd00:240::1']);
  });

  it('matches names case-insensitively and echoes the question as asked', async () => {
    const s = await start();
    expect(await resolver(s).resolve4('EcHo.MESH')).toEqual(['240.240.0.1']);
    const reply = decode(await udpExchange(s.address.port, query('EcHo.MeSh.', 'A')));
    expect(reply.questions).toEqual([{ name: 'EcHo.MeSh', type: 'A', class: 'IN' }]);
    expect(reply.answers?.[0]).toMatchObject({ name: 'EcHo.MeSh', data: '240.240.0.1' });
  });

  it('answers NODATA with an SOA for a known service without that address family', async () => {
    const s = await start({ ttl: 9 });
    await expect(resolver(s).resolve6('v4only.mesh')).rejects.toMatchObject({ code: 'ENODATA' });
    const reply = decode(await udpExchange(s.address.port, query('v4only.mesh', 'AAAA')));
    expect(reply).toMatchObject({ rcode: 'NOERROR', flag_aa: true });
    expect(reply.answers).toEqual([]);
    expect(reply.authorities).toMatchObject([
      { type: 'SOA', name: 'mesh', ttl: 9, data: { minimum: 9 } },
    ]);
  });

  it('answers an authoritative NXDOMAIN with an SOA for an unknown name under the domain', async () => {
    const s = await start();
    await expect(resolver(s).resolve4('nope.mesh')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    const reply = decode(await udpExchange(s.address.port, query('nope.mesh', 'A', 7)));
    expect(reply).toMatchObject({ id: 7, rcode: 'NXDOMAIN', flag_aa: true, flag_rd: true });
    expect(reply.authorities?.map((a) => a.type)).toEqual(['SOA']);
    expect(good.received.some((q) => q.questions?.[0]?.name === 'nope.mesh')).toBe(false);
  });

  it('serves another domain when configured, and forwards names of the default one', async () => {
    const s = await start({ domain: 'Corp.Internal.' });
    expect(await resolver(s).resolve4('echo.corp.internal')).toEqual(['240.240.0.1']);
    expect(await resolver(s).resolve4('echo.mesh')).toEqual(['192.0.2.7']);
  });

  it('answers over TCP, also when the client shuts down its side after the query', async () => {
    const s = await start();
    const reply = decode(await tcpExchange(s.address.port, query('echo.mesh', 'A', 99)));
    expect(reply).toMatchObject({ id: 99, rcode: 'NOERROR' });
    expect(reply.answers).toMatchObject([{ type: 'A', data: '240.240.0.1' }]);
  });

  it('truncates an answer too large for UDP, and the client gets it whole over TCP', async () => {
    const s = await start();
    const udp = decode(await udpExchange(s.address.port, query('many.mesh', 'A', 5, true)));
    expect(udp.flag_tc).toBe(true);
    expect(udp.answers).toEqual([]);
    // c-ares retries a truncated answer over TCP by itself.
    expect(await resolver(s).resolve4('many.mesh')).toEqual(TABLE.many!.v4);
  });

  it('listens on 127.0.0.1 and ::1 with one port when both are asked', async () => {
    const s = await start({ host: ['127.0.0.1', '::1'] });
    expect(s.addresses).toEqual([
      { host: '127.0.0.1', port: s.address.port },
      { host: '::1', port: s.address.port },
    ]);
    expect(await resolver(s, '::1').resolve4('echo.mesh')).toEqual(['240.240.0.1']);
    expect(await resolver(s, '127.0.0.1').resolve6('echo.mesh')).toEqual(['fd00:240::1']);
  });
});

describe('forwarding', () => {
  it('forwards other names with the same id and relays the reply byte for byte', async () => {
    const s = await start();
    expect(await resolver(s).resolve4('www.example', { ttl: true })).toEqual([
      { address: '192.0.2.7', ttl: 42 },
    ]);
    const sent = query('api.example', 'A', 0xbeef);
    const reply = await udpExchange(s.address.port, sent);
    expect(reply).toEqual(good.sent.at(-1));
    expect(reply!.readUInt16BE(0)).toBe(0xbeef);
    expect(good.receivedBytes.at(-1)).toEqual(sent);
  });

  it('forwards TCP queries over TCP', async () => {
    const s = await start();
    const reply = await tcpExchange(s.address.port, query('tcp.example', 'A', 0x0102));
    expect(reply).toEqual(good.sent.at(-1));
    expect(decode(reply).answers?.[0]).toMatchObject({ data: '192.0.2.7' });
  });

  it('answers SERVFAIL, well before the client gives up, when the upstream never replies', async () => {
    const s = await start({ upstreams: [silent.address], upstreamTimeoutMs: 300 });
    await expect(resolver(s).resolve4('lost.example')).rejects.toMatchObject({
      code: 'ESERVFAIL',
    });
    const reply = decode(await udpExchange(s.address.port, query('lost.example', 'A', 11)));
    expect(reply).toMatchObject({ id: 11, rcode: 'SERVFAIL', flag_ra: true });
    expect(reply.questions).toEqual([{ name: 'lost.example', type: 'A', class: 'IN' }]);
    expect(lines.some((l) => l.msg.startsWith('dns upstream is not answering'))).toBe(true);
  });

  it('answers SERVFAIL over TCP too when no upstream answers', async () => {
    const s = await start({ upstreams: [silent.address], upstreamTimeoutMs: 300 });
    const reply = decode(await tcpExchange(s.address.port, query('lost.example', 'A', 12)));
    expect(reply).toMatchObject({ id: 12, rcode: 'SERVFAIL' });
  });

  it('tries the next upstream when one times out or refuses, then prefers the one that answered', async () => {
    const closed = createSocket('udp4'); // a port with nothing behind it: ICMP unreachable
    closed.bind(0, '127.0.0.1');
    await once(closed, 'listening');
    const deadPort = closed.address().port;
    closed.close();
    const s = await start({
      upstreams: [`127.0.0.1:${deadPort}`, silent.address, good.address],
      upstreamTimeoutMs: 300,
    });
    const before = silent.received.length;
    expect(await resolver(s).resolve4('first.example')).toEqual(['192.0.2.7']);
    expect(silent.received.length).toBe(before + 1);
    expect(await resolver(s).resolve4('second.example')).toEqual(['192.0.2.7']);
    expect(silent.received.length).toBe(before + 1);
  });

  it('answers SERVFAIL above the bound on queries being forwarded', async () => {
    const s = await start({ upstreams: [silent.address], upstreamTimeoutMs: 1500, maxInflight: 1 });
    const asked = () => silent.received.map((q) => q.questions?.[0]?.name);
    const first = udpExchange(s.address.port, query('slow.example', 'A', 1));
    await waitFor('the first query at the upstream', () => asked().includes('slow.example'));
    const second = await udpExchange(s.address.port, query('slow2.example', 'A', 2));
    expect(decode(second)).toMatchObject({ id: 2, rcode: 'SERVFAIL' });
    // The first was still waiting for its upstream when the second was refused; its own
    // SERVFAIL comes after anything the server could have sent upstream for the second.
    expect(decode(await first)).toMatchObject({ id: 1, rcode: 'SERVFAIL' });
    expect(asked()).not.toContain('slow2.example');
  });

  it('refuses at start an upstream that is its own address and port', async () => {
    const probe = createSocket('udp4');
    probe.bind(0, '127.0.0.1');
    await once(probe, 'listening');
    const port = probe.address().port;
    probe.close();
    await expect(
      startDnsServer({ port, resolve, upstreams: [`127.0.0.1:${port}`], log: logger() }),
    ).rejects.toMatchObject({
      code: 'WEFT_E_CONFIG',
      message: expect.stringContaining("is this DNS server's own address"),
    });
  });

  it.each([
    [{ port: 70000 }, /^dns port: must be an integer from 0 to 65535, got 70000$/],
    [{ host: 'localhost' }, /^dns host: "localhost" is not an IP address$/],
    [{ upstreams: [] }, /^dns upstreams: must list at least one nameserver/],
    [{ upstreams: ['dns.example'] }, /^dns upstreams\[0\]: "dns.example" is not an IP address/],
    [{ upstreamTimeoutMs: 0 }, /^dns upstreamTimeoutMs: /],
    [{ ttl: -1 }, /^dns ttl: /],
    [{ domain: 'bad domain' }, /^dns domain: "bad domain" is not a DNS domain/],
  ])('refuses bad options naming the field: %j', async (bad, message) => {
    await expect(
      startDnsServer({ resolve, upstreams: [good.address], log: logger(), ...bad }),
    ).rejects.toMatchObject({ code: 'WEFT_E_CONFIG', message: expect.stringMatching(message) });
  });

  it('takes the nameservers of resolv.conf by default and says so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-dns-'));
    try {
      const file = join(dir, 'resolv.conf');
      writeFileSync(file, `# test\nsearch example\nnameserver ${good.address.split(':')[0]}\n`);
      await start({ upstreams: undefined, resolvConf: file });
      const line = lines.find((l) => l.msg.startsWith('dns: forwarding names outside .mesh'));
      expect(line).toMatchObject({ upstreams: ['127.0.0.1:53'], resolv_conf: file });
      expect(line?.msg).toContain(file);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('robustness and metrics', () => {
  it('drops or FORMERRs malformed packets and keeps answering', async () => {
    const s = await start();
    // Junk, then a query as the sentinel: the server takes them in order, so a reply to the
    // junk would come first.
    const client = await udpClient(s.address.port);
    client.send(Buffer.from('hello'));
    client.send(query('echo.mesh', 'A', 21));
    const first = await client.next('the answer to the sentinel query');
    client.close();
    expect(decode(first.message)).toMatchObject({ id: 21, rcode: 'NOERROR' });
    // A valid header claiming one question, followed by junk.
    const junk = Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f, 0x61]);
    const formerr = await udpExchange(s.address.port, junk);
    expect(formerr.readUInt16BE(0)).toBe(0x1234);
    expect(rcodeOf(formerr)).toBe(1);
    const tcp = connect(s.address.port, '127.0.0.1');
    tcp.end(Buffer.from([0, 3, 1, 2, 3]));
    await once(tcp, 'close');
    expect(await resolver(s).resolve4('echo.mesh')).toEqual(['240.240.0.1']);
  });

  it('answers SERVFAIL when the mesh lookup throws, and keeps serving', async () => {
    const s = await start({
      resolve: (service) => {
        if (service === 'broken') throw new Error('snapshot not loaded');
        return TABLE[service];
      },
    });
    await expect(resolver(s).resolve4('broken.mesh')).rejects.toMatchObject({ code: 'ESERVFAIL' });
    expect(await resolver(s).resolve4('echo.mesh')).toEqual(['240.240.0.1']);
  });

  it('closes while queries are being forwarded without failing them loudly or crashing', async () => {
    const s = await start({ upstreams: [silent.address], upstreamTimeoutMs: 5000 });
    const client = await udpClient(s.address.port);
    client.send(query('pending.example', 'A', 3));
    await waitFor('the query at the upstream', () =>
      silent.received.some((q) => q.questions?.[0]?.name === 'pending.example'),
    );
    await s.close();
    // A sentinel sent to the client after the close: had the server answered the pending
    // query (or failed it loudly on the wire), that datagram would have come first.
    const sentinel = createSocket('udp4');
    sentinel.bind(0, '127.0.0.1');
    await once(sentinel, 'listening');
    sentinel.send('sentinel', client.port, '127.0.0.1');
    const first = await client.next('the sentinel datagram');
    sentinel.close();
    client.close();
    expect(first.message.toString()).toBe('sentinel');
    await expect(resolver(s).resolve4('echo.mesh')).rejects.toMatchObject({
      code: expect.stringMatching(/ECONNREFUSED|ETIMEOUT/),
    });
  });

  it('counts queries by type and result, and times upstream attempts', async () => {
    const registry = new Registry();
    const s = await start({ registry, upstreams: [good.address] });
    const r = resolver(s);
    await r.resolve4('echo.mesh');
    await r.resolve4('other.example');
    await expect(r.resolve4('nope.mesh')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await s.close();
    server = await start({ registry, upstreams: [silent.address], upstreamTimeoutMs: 200 });
    await expect(resolver(server).resolve4('lost.example')).rejects.toMatchObject({
      code: 'ESERVFAIL',
    });
    const text = await registry.metrics();
    expect(text).toContain('weft_dns_queries_total{type="A",result="mesh"} 1');
    expect(text).toContain('weft_dns_queries_total{type="A",result="forwarded"} 1');
    expect(text).toContain('weft_dns_queries_total{type="A",result="nxdomain"} 1');
    expect(text).toContain('weft_dns_queries_total{type="A",result="servfail"} 1');
    expect(text).toMatch(
      /weft_dns_upstream_duration_seconds_count\{upstream="127\.0\.0\.1:\d+",outcome="answer"\} 1/,
    );
    expect(text).toMatch(
      /weft_dns_upstream_duration_seconds_count\{upstream="127\.0\.0\.1:\d+",outcome="timeout"\} 1/,
    );
  });
});
