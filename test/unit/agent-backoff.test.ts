// Reconnect backoff: full jitter under an exponentially growing, capped ceiling.
import { describe, expect, it } from 'vitest';
import { Backoff, defaultBackoff } from '../../src/controlplane-client/backoff.js';

describe('Backoff', () => {
  it('keeps every delay within [0, min(cap, base * 2^attempt))', () => {
    const b = new Backoff({ baseMs: 250, capMs: 30_000 });
    for (let attempt = 0; attempt < 40; attempt++) {
      const ceiling = Math.min(30_000, 250 * 2 ** attempt);
      expect(b.ceilingMs()).toBe(ceiling);
      const delay = b.next();
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(ceiling);
    }
  });

  it.each([
    [0, 0],
    [0.5, 125],
    [0.999, 249],
  ])('with random() = %s the first delay is %s ms', (r, expected) => {
    expect(new Backoff({ baseMs: 250, capMs: 30_000, random: () => r }).next()).toBe(expected);
  });

  it('reaches the cap and stays there', () => {
    const b = new Backoff({ baseMs: 250, capMs: 30_000, random: () => 0.999999 });
    const delays = Array.from({ length: 12 }, () => b.next());
    expect(delays.slice(0, 4)).toEqual([249, 499, 999, 1999]);
    expect(delays.at(-1)).toBe(29_999);
  });

  it('starts from the base again after reset', () => {
    const b = new Backoff({ baseMs: 100, capMs: 1_000, random: () => 0.5 });
    b.next();
    b.next();
    b.next();
    b.reset();
    expect(b.next()).toBe(50);
  });

  it("the agent's default brings it back within 10 s of the control plane's return, jittered", () => {
    // A control plane away for an hour: the delay after it returns is still under the cap.
    const high = new Backoff({ ...defaultBackoff, random: () => 0.999999 });
    const delays = Array.from({ length: 200 }, () => high.next());
    expect(Math.max(...delays)).toBe(9_999);
    // Full jitter: agents that lost it at the same moment come back spread over the range.
    const spread = new Set<number>();
    for (const r of [0.1, 0.4, 0.7]) {
      const b = new Backoff({ ...defaultBackoff, random: () => r });
      for (let i = 0; i < 10; i++) b.next();
      spread.add(b.next());
    }
    expect([...spread].sort((a, b) => a - b)).toEqual([1_000, 4_000, 7_000]);
  });

  it('refuses options that make no sense, naming the field', () => {
    expect(() => new Backoff({ baseMs: 0, capMs: 10 })).toThrow(/baseMs/);
    expect(() => new Backoff({ baseMs: 100, capMs: 10 })).toThrow(/capMs/);
  });
});
