// Where trace and span ids come from: random, as W3C Trace Context asks (ids a collector can
// tell apart across the fleet), from a pool of CSPRNG bytes so a request costs no syscall.
import { randomFillSync } from 'node:crypto';

/** A source of ids, injected so tests can name the ids they expect. */
export interface TraceIdSource {
  /** 32 lower-case hex digits, not all zero. */
  traceId(): string;
  /** 16 lower-case hex digits, not all zero. */
  spanId(): string;
}

// 4 KiB of randomness per refill: 170 requests' worth of ids (a trace id and a span id each).
const POOL_BYTES = 4096;

/** Random ids from the OS's CSPRNG, drawn in batches. */
export function randomTraceIds(): TraceIdSource {
  const pool = Buffer.allocUnsafe(POOL_BYTES);
  let offset = POOL_BYTES;
  const hex = (bytes: number): string => {
    for (;;) {
      if (offset + bytes > POOL_BYTES) {
        randomFillSync(pool);
        offset = 0;
      }
      const id = pool.toString('hex', offset, offset + bytes);
      offset += bytes;
      // All zeroes is the spec's "invalid" id: draw again (a 2^-64 event at worst).
      if (!/^0+$/.test(id)) return id;
    }
  };
  return { traceId: () => hex(16), spanId: () => hex(8) };
}
