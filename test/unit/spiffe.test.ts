// weft's SPIFFE ID parser, table-driven: it accepts exactly the canonical shapes weft issues
// and nothing a policy could read as another identity.
import { describe, expect, it } from 'vitest';
import { nodeSpiffeId, parseSpiffeId, serviceSpiffeId } from '../../src/api/spiffe.js';

describe('parseSpiffeId', () => {
  it.each([
    ['spiffe://weft.local/node/n1', { trustDomain: 'weft.local', kind: 'node', name: 'n1' }],
    ['spiffe://weft.local/svc/web', { trustDomain: 'weft.local', kind: 'svc', name: 'web' }],
    ['spiffe://a-b_c.d/svc/x-1', { trustDomain: 'a-b_c.d', kind: 'svc', name: 'x-1' }],
    ['spiffe://weft.local/admin/ops', { trustDomain: 'weft.local', kind: 'admin', name: 'ops' }],
    [
      'spiffe://weft.local/controlplane',
      { trustDomain: 'weft.local', kind: 'controlplane', name: '' },
    ],
  ])('%s parses', (uri, id) => {
    expect(parseSpiffeId(uri)).toEqual(id);
  });

  it.each([
    'spiffe://weft.local/',
    'spiffe://weft.local',
    'spiffe://weft.local/svc',
    'spiffe://weft.local/svc/',
    'spiffe://weft.local/svc/web/',
    'spiffe://weft.local/svc/web/../../node/n1',
    'spiffe://weft.local/svc/..',
    'spiffe://weft.local/svc/.',
    'spiffe://weft.local/./svc/web',
    'spiffe://weft.local//svc/web',
    'spiffe://weft.local/svc//web',
    'spiffe://weft.local/svc/w%65b',
    'spiffe://weft.local/svc/%2e%2e',
    'spiffe://weft%2elocal/svc/web',
    'spiffe://weft.local/SVC/web',
    'spiffe://weft.local/svc/Web',
    'spiffe://WEFT.local/svc/web',
    'SPIFFE://weft.local/svc/web',
    'spiffe://weft.local/svc/web?x=1',
    'spiffe://weft.local/svc/web#x',
    'spiffe://user@weft.local/svc/web',
    'spiffe://weft.local:443/svc/web',
    'spiffe://weft.local/svc/web\n',
    'spiffe://weft.local/svc/web ',
    ' spiffe://weft.local/svc/web',
    'spiffe://weft.local/svc/-web',
    'spiffe://weft.local/svc/web-',
    'spiffe://weft.local/svc/we_b',
    'spiffe://weft.local/node/n1.example',
    `spiffe://weft.local/svc/${'a'.repeat(64)}`,
    'spiffe://weft.local/controlplane/',
    'spiffe://weft.local/controlplane/x',
    'spiffe://weft.local/workload/web',
    'spiffe:///svc/web',
    'https://weft.local/svc/web',
  ])('%j is not a weft SPIFFE ID', (uri) => {
    expect(parseSpiffeId(uri)).toBeUndefined();
  });

  it('parses what the builders make, back to the same parts', () => {
    expect(parseSpiffeId(nodeSpiffeId('weft.local', 'n1'))?.name).toBe('n1');
    expect(parseSpiffeId(serviceSpiffeId('weft.local', 'web'))?.kind).toBe('svc');
    expect(() => serviceSpiffeId('weft.local', '../node/n1')).toThrow(/must be a DNS label/);
  });
});
