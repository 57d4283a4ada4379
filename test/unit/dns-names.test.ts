// How query names are matched against the mesh domain: case, trailing dots, and names that
// only look like they are under it.
import { describe, expect, it } from 'vitest';
import { meshNameOf, normalizeName, validateDomain } from '../../src/dns/names.js';

describe('normalizeName', () => {
  it.each([
    ['echo.mesh', 'echo.mesh'],
    ['Echo.MESH.', 'echo.mesh'],
    ['echo.mesh..', 'echo.mesh'],
    ['', ''],
    ['.', ''],
    ['ÉCHO.mesh', 'Écho.mesh'], // only ASCII folds (RFC 4343)
  ])('%j -> %j', (input, expected) => {
    expect(normalizeName(input)).toBe(expected);
  });
});

describe('meshNameOf under "mesh"', () => {
  it.each([
    ['echo.mesh', { kind: 'service', service: 'echo' }],
    ['ECHO.Mesh.', { kind: 'service', service: 'echo' }],
    ['api.orders.mesh', { kind: 'service', service: 'api.orders' }],
    ['mesh', { kind: 'apex' }],
    ['MESH.', { kind: 'apex' }],
    ['example.com', undefined],
    ['notmesh', undefined],
    ['echo.notmesh', undefined],
    ['echo.mesh.example.com', undefined],
    ['.mesh', undefined],
    ['', undefined],
  ])('%j -> %j', (name, expected) => {
    expect(meshNameOf(name, 'mesh')).toEqual(expected);
  });

  it('works for a multi-label domain', () => {
    expect(meshNameOf('Echo.Corp.Internal', 'corp.internal')).toEqual({
      kind: 'service',
      service: 'echo',
    });
    expect(meshNameOf('echo.internal', 'corp.internal')).toBeUndefined();
  });
});

describe('validateDomain', () => {
  it.each([
    ['mesh', 'mesh'],
    ['Mesh.', 'mesh'],
    [' corp.internal ', 'corp.internal'],
  ])('accepts %j as %j', (input, expected) => {
    expect(validateDomain(input)).toBe(expected);
  });

  it.each(['', '.', 'a..b', '-mesh', 'me sh', 'x'.repeat(64)])(
    'refuses %j naming the field',
    (bad) => {
      expect(() => validateDomain(bad, 'dns domain')).toThrow(/^dns domain: /);
    },
  );
});
