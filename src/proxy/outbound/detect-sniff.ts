// Protocol detection's pure decisions over the first bytes a client sent: is it an HTTP/1.x
// request line, the HTTP/2 preface, a TLS ClientHello (and for which server name), or none of
// them; or is it too early to say. detect.ts does the reading.

export type Sniffed = 'http1' | 'http2' | 'tls' | 'opaque' | 'more';

/** RFC 9113 section 3.4: the client connection preface of HTTP/2 with prior knowledge. */
export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * The longest request line waited for. Servers refuse longer ones anyway (Node's and nginx's
 * header limits are 8-16 KiB); beyond it the bytes are not HTTP we would handle.
 */
export const MAX_REQUEST_LINE_BYTES = 8 * 1024;

/**
 * The most bytes of TLS records read to find the SNI. A ClientHello is one record of a few
 * hundred bytes (about 1.8 KiB with post-quantum key shares); a larger one still goes through,
 * as TLS, with no SNI recorded.
 */
export const MAX_CLIENT_HELLO_BYTES = 16 * 1024;

/** What `bytes`, the first a client sent, are; 'more' while they could still be HTTP or TLS. */
export function sniffProtocol(bytes: Buffer): Sniffed {
  if (bytes.length === 0) return 'more';
  const preface = prefixMatch(bytes, HTTP2_PREFACE);
  if (preface === 'whole') return 'http2';
  if (preface === 'partial') return 'more';
  if (bytes[0] === TLS_HANDSHAKE) return sniffTlsRecord(bytes);
  return sniffRequestLine(bytes);
}

/**
 * On a port declared `http` the only question is which version: HTTP/2 when the bytes are its
 * preface, else HTTP/1.x (whose server answers anything malformed with a 400).
 */
export function sniffHttpVersion(bytes: Buffer): 'http1' | 'http2' | 'more' {
  const preface = prefixMatch(bytes, HTTP2_PREFACE);
  if (preface === 'whole') return 'http2';
  return preface === 'partial' ? 'more' : 'http1';
}

/** Whether `bytes` begins with `expected` ('whole'), is a proper prefix of it, or neither. */
function prefixMatch(bytes: Buffer, expected: Buffer): 'whole' | 'partial' | 'no' {
  const n = Math.min(bytes.length, expected.length);
  if (bytes.compare(expected, 0, n, 0, n) !== 0) return 'no';
  return n === expected.length ? 'whole' : 'partial';
}

// RFC 9112 section 3: request-line = method SP request-target SP HTTP-version CRLF, where
// method is a token (RFC 9110 section 5.6.2) and HTTP-version is "HTTP/" DIGIT "." DIGIT (only
// 1.x is HTTP/1; "HTTP/2.0" after PRI is the preface, handled above).
const TCHAR = (() => {
  const table = new Uint8Array(256);
  const extra = "!#$%&'*+-.^_`|~";
  for (let c = 0; c < 256; c++) {
    const ch = String.fromCharCode(c);
    if (/[A-Za-z0-9]/.test(ch) || extra.includes(ch)) table[c] = 1;
  }
  return table;
})();
const VERSION = Buffer.from('HTTP/1.', 'latin1');
const SP = 0x20;
const CR = 0x0d;
const LF = 0x0a;

function sniffRequestLine(bytes: Buffer): Sniffed {
  const end = Math.min(bytes.length, MAX_REQUEST_LINE_BYTES);
  let i = 0;
  // method
  while (i < end && TCHAR[bytes[i]!] === 1) i++;
  if (i === end) return moreUnlessFull(bytes);
  if (i === 0 || bytes[i] !== SP) return 'opaque';
  i++;
  // request-target: visible characters (and obs-text, which some clients send unencoded);
  // never a control character or a space
  const targetStart = i;
  while (i < end && isTargetByte(bytes[i]!)) i++;
  if (i === end) return moreUnlessFull(bytes);
  if (i === targetStart || bytes[i] !== SP) return 'opaque';
  i++;
  // HTTP-version CRLF
  for (const expected of [...VERSION, -1, CR, LF]) {
    if (i === end) return moreUnlessFull(bytes);
    const b = bytes[i]!;
    if (expected === -1 ? b < 0x30 || b > 0x39 : b !== expected) return 'opaque';
    i++;
  }
  return 'http1';
}

function isTargetByte(b: number): boolean {
  return b > SP && b !== 0x7f;
}

/** Still a prefix of a request line: wait for more, unless the line is already too long. */
function moreUnlessFull(bytes: Buffer): Sniffed {
  return bytes.length >= MAX_REQUEST_LINE_BYTES ? 'opaque' : 'more';
}

// RFC 8446 section 5.1: a record is type (22 = handshake), legacy_record_version (0x0301 in a
// ClientHello, 0x0300-0x0304 accepted), a 2-byte length of at most 2^14, then the fragment,
// whose first byte is the handshake type (1 = ClientHello).
const TLS_HANDSHAKE = 0x16;
const CLIENT_HELLO = 0x01;
const MAX_RECORD = 1 << 14;

function sniffTlsRecord(bytes: Buffer): Sniffed {
  if (bytes.length < 2) return 'more';
  if (bytes[1] !== 0x03) return 'opaque';
  if (bytes.length < 3) return 'more';
  if (bytes[2]! > 0x04) return 'opaque';
  if (bytes.length < 5) return 'more';
  const length = bytes.readUInt16BE(3);
  if (length === 0 || length > MAX_RECORD) return 'opaque';
  if (bytes.length < 6) return 'more';
  return bytes[5] === CLIENT_HELLO ? 'tls' : 'opaque';
}

export type SniResult = { kind: 'more' } | { kind: 'done'; sni?: string };

/**
 * The server name (RFC 6066 section 3) of the ClientHello that `bytes` begin with: 'more' until
 * the whole handshake message has arrived (it may span several records), then 'done', with the
 * name when there is a valid one. Anything malformed, oversized or absent is 'done' with no name:
 * the connection still goes through as opaque TLS, this only labels it.
 */
export function parseSni(bytes: Buffer): SniResult {
  const hello = reassembleHandshake(bytes);
  if (hello === 'more') return { kind: 'more' };
  if (hello === undefined) return { kind: 'done' };
  let sni: string | undefined;
  try {
    sni = serverNameOf(hello);
  } catch (err) {
    if (!(err instanceof MalformedHello)) throw err;
  }
  return sni === undefined ? { kind: 'done' } : { kind: 'done', sni };
}

/**
 * The first handshake message, from the fragments of consecutive handshake records; undefined
 * when it is not a ClientHello or needs more than MAX_CLIENT_HELLO_BYTES of records.
 */
function reassembleHandshake(bytes: Buffer): Buffer | 'more' | undefined {
  const fragments: Buffer[] = [];
  let have = 0;
  let total = Number.POSITIVE_INFINITY; // the message's length once its header has arrived
  let offset = 0;
  while (have < total) {
    if (bytes.length < offset + 5) return offset + 5 > MAX_CLIENT_HELLO_BYTES ? undefined : 'more';
    if (bytes[offset] !== TLS_HANDSHAKE) return undefined;
    const length = bytes.readUInt16BE(offset + 3);
    if (length === 0 || length > MAX_RECORD) return undefined;
    const end = offset + 5 + length;
    if (end > MAX_CLIENT_HELLO_BYTES) return undefined;
    if (bytes.length < end) return 'more';
    fragments.push(bytes.subarray(offset + 5, end));
    have += length;
    offset = end;
    if (total === Number.POSITIVE_INFINITY && have >= 4) {
      const head = Buffer.concat(fragments, have);
      if (head[0] !== CLIENT_HELLO) return undefined;
      total = 4 + head.readUIntBE(1, 3);
      // Its records cannot fit within the bound: do not wait for them.
      if (5 + total > MAX_CLIENT_HELLO_BYTES) return undefined;
    }
  }
  return Buffer.concat(fragments, have).subarray(0, total);
}

// RFC 8446 section 4.1.2: legacy_version(2) random(32) legacy_session_id<0..32>
// cipher_suites<2..2^16-2> legacy_compression_methods<1..2^8-1> extensions<8..2^16-1>; the
// server_name extension (type 0) holds a ServerNameList of (name_type, HostName) entries.
const SERVER_NAME_EXTENSION = 0;
const HOST_NAME = 0;
// A DNS name as clients send it (RFC 6066: ASCII, no trailing dot). Anything else is not
// recorded, so that log lines and labels only ever carry a plain host name.
const HOST_NAME_PATTERN = /^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$/;

function serverNameOf(hello: Buffer): string | undefined {
  const r = new Reader(hello, 4);
  r.skip(2 + 32);
  r.skip(r.u8());
  r.skip(r.u16());
  r.skip(r.u8());
  if (r.done()) return undefined; // no extensions at all
  const extensions = r.sub(r.u16());
  while (!extensions.done()) {
    const type = extensions.u16();
    const data = extensions.sub(extensions.u16());
    if (type !== SERVER_NAME_EXTENSION) continue;
    const list = data.sub(data.u16());
    while (!list.done()) {
      const nameType = list.u8();
      const name = list.bytes(list.u16());
      if (nameType !== HOST_NAME) continue;
      const text = name.toString('latin1').toLowerCase();
      return text.length <= 253 && HOST_NAME_PATTERN.test(text) ? text : undefined;
    }
    return undefined;
  }
  return undefined;
}

/** Reads big-endian fields within bounds; any overrun means a malformed hello (undefined). */
class Reader {
  constructor(
    private readonly buf: Buffer,
    private at: number,
    private readonly end = buf.length,
  ) {}

  done(): boolean {
    return this.at >= this.end;
  }

  u8(): number {
    return this.take(1).readUInt8(0);
  }

  u16(): number {
    return this.take(2).readUInt16BE(0);
  }

  skip(n: number): void {
    this.take(n);
  }

  bytes(n: number): Buffer {
    return this.take(n);
  }

  sub(n: number): Reader {
    const start = this.at;
    this.take(n);
    return new Reader(this.buf, start, start + n);
  }

  private take(n: number): Buffer {
    if (this.at + n > this.end) throw new MalformedHello();
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
}

class MalformedHello extends Error {}
