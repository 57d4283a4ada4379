// DNS over TCP frames every message with a two-byte big-endian length (RFC 1035 4.2.2);
// one connection may carry several queries in a row (RFC 7766 6.2.1).

export function frame(message: Buffer): Buffer {
  const prefix = Buffer.allocUnsafe(2);
  prefix.writeUInt16BE(message.length, 0);
  return Buffer.concat([prefix, message]);
}

/** Returns a function fed with stream chunks that calls `onMessage` once per whole message. */
export function frameReader(onMessage: (message: Buffer) => void): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0);
  return (chunk) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 2) {
      const size = pending.readUInt16BE(0);
      if (pending.length < 2 + size) break;
      onMessage(pending.subarray(2, 2 + size));
      pending = pending.subarray(2 + size);
    }
  };
}
