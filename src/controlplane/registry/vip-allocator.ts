// Virtual IPs for Services, from 240.240.0.0/16 (class E space: never routed on the internet,
// so it cannot collide with a real destination). A service's first choice is derived from its
// name, so deleting and re-creating it usually gives back the same address; taken addresses
// are skipped. Uniqueness across concurrent applies is the store's job (compare-and-swap on the
// /vips/<ip> key); this module only picks.
import { WeftError } from '../../errors.js';

export const SERVICE_VIP_CIDR = '240.240.0.0/16';

export class VipRange {
  readonly cidr: string;
  private readonly base: number;
  /** Usable addresses: the network and broadcast addresses are left out. */
  readonly size: number;

  constructor(cidr: string) {
    const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
    const bits = Number(m?.[5]);
    if (m === null || !(bits >= 8 && bits <= 30))
      throw new WeftError('WEFT_E_INTERNAL', `invalid VIP range ${cidr}`);
    const ip = m.slice(1, 5).reduce((acc, octet) => acc * 256 + Number(octet), 0);
    const span = 2 ** (32 - bits);
    this.cidr = cidr;
    this.base = ip - (ip % span);
    this.size = span - 2;
  }

  /** The i-th usable address (0-based). */
  at(i: number): string {
    const n = this.base + 1 + i;
    return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join('.');
  }

  contains(ip: string): boolean {
    const parts = ip.split('.').map(Number);
    if (parts.length !== 4) return false;
    const n = parts.reduce((acc, o) => acc * 256 + o, 0);
    return n > this.base && n <= this.base + this.size;
  }
}

export const SERVICE_VIP_RANGE = new VipRange(SERVICE_VIP_CIDR);

/** FNV-1a: a stable, well-spread start point for a name. */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** A free address for service `name`; throws when every address is taken. */
export function pickVip(
  name: string,
  used: ReadonlySet<string>,
  range: VipRange = SERVICE_VIP_RANGE,
): string {
  if (used.size >= range.size) {
    throw new WeftError(
      'WEFT_E_CONFIG',
      `no free virtual IP for service "${name}": all ${range.size} addresses of ${range.cidr} are taken; delete services you no longer need`,
    );
  }
  const start = hashName(name) % range.size;
  for (let i = 0; i < range.size; i++) {
    const ip = range.at((start + i) % range.size);
    if (!used.has(ip)) return ip;
  }
  throw new WeftError(
    'WEFT_E_INTERNAL',
    `VIP range ${range.cidr} reported free space but none was found`,
  );
}
