// grpc-timeout as the gRPC spec writes it (at most 8 digits and a unit H M S m u n), and the
// limit of each try given the request's deadline and the per-try timeout.
import { describe, expect, it } from 'vitest';
import {
  earliest,
  formatGrpcTimeout,
  parseGrpcTimeout,
  tryLimit,
} from '../../src/proxy/resilience/deadline.js';

describe('parseGrpcTimeout', () => {
  it.each([
    ['1H', 3_600_000],
    ['2M', 120_000],
    ['5S', 5_000],
    ['250m', 250],
    ['1500u', 1.5],
    ['2000000n', 2],
    ['99999999m', 99_999_999],
    ['0m', 0],
    [['300m', '1S'], 300],
  ] as const)('%j is %d ms', (text, ms) => {
    expect(parseGrpcTimeout(text as string | string[])).toBe(ms);
  });

  it.each([
    ['no unit', '100'],
    ['nine digits', '123456789m'],
    ['an unknown unit', '5s'],
    ['a sign', '-5S'],
    ['a fraction', '1.5S'],
    ['spaces', ' 5S'],
    ['empty', ''],
    ['absent', undefined],
  ])('refuses %s', (_what, text) => {
    expect(parseGrpcTimeout(text)).toBeUndefined();
  });
});

describe('formatGrpcTimeout', () => {
  it.each([
    // The finest unit whose value fits in 8 digits, rounded up (never a longer deadline than
    // the caller's, and never 0 while time is left).
    [5_000, '5000000u'],
    [0.0004, '400n'],
    [99.999_999, '99999999n'],
    [100, '100000u'],
    [120_000, '120000m'],
    [99_999_999, '99999999m'],
    [100_000_000, '100000S'],
    [1.2345678, '1234568n'],
    [0, '0n'],
    [-20, '0n'],
  ])('%d ms is %s', (ms, text) => {
    expect(formatGrpcTimeout(ms)).toBe(text);
  });

  it('round-trips within its unit', () => {
    for (const ms of [1, 17, 299.5, 4_999, 86_400_000]) {
      const back = parseGrpcTimeout(formatGrpcTimeout(ms))!;
      expect(back).toBeGreaterThanOrEqual(ms);
      expect(back - ms).toBeLessThan(ms / 1e6 + 1e-6);
    }
  });
});

describe('earliest', () => {
  it.each([
    [undefined, undefined, undefined],
    [100, undefined, 100],
    [undefined, 50, 50],
    [100, 50, 50],
    [50, 100, 50],
  ])('of %s and %s is %s', (a, b, out) => {
    expect(earliest(a, b)).toBe(out);
  });
});

describe('tryLimit', () => {
  it.each([
    { name: 'no deadline, no per-try', now: 0, at: undefined, perTry: undefined, out: undefined },
    {
      name: 'per-try only',
      now: 0,
      at: undefined,
      perTry: 200,
      out: { ms: 200, kind: 'per_try_timeout' },
    },
    {
      name: 'deadline only: what is left of it',
      now: 300,
      at: 1_000,
      perTry: undefined,
      out: { ms: 700, kind: 'request_timeout' },
    },
    {
      name: 'per-try shorter than what is left',
      now: 300,
      at: 1_000,
      perTry: 200,
      out: { ms: 200, kind: 'per_try_timeout' },
    },
    {
      name: 'what is left shorter than per-try: the request timeout names it',
      now: 900,
      at: 1_000,
      perTry: 200,
      out: { ms: 100, kind: 'request_timeout' },
    },
    {
      name: 'deadline passed',
      now: 1_200,
      at: 1_000,
      perTry: 200,
      out: { ms: -200, kind: 'request_timeout' },
    },
  ])('$name', ({ now, at, perTry, out }) => {
    expect(tryLimit(now, at, perTry)).toEqual(out);
  });
});
