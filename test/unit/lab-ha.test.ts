// The HA lab's etcd cluster as the lab starts it: each member's command line (its own URLs on
// its lab address, the three peers, one cluster token) and the endpoints replicas are given.
import { describe, expect, it } from 'vitest';
import { etcdEndpoints, etcdMemberArgv } from '../../src/lab/ha-control-plane.js';

const members = [
  { name: 'etcd1', address: '10.77.0.2' },
  { name: 'etcd2', address: '10.77.0.3' },
  { name: 'etcd3', address: '10.77.0.4' },
];

describe('the HA lab etcd cluster', () => {
  it('starts a member on its own address, knowing every peer', () => {
    expect(etcdMemberArgv(members[1]!, members, '/var/lib/lab/etcd2/data', 'weft-ha1')).toEqual([
      'etcd',
      '--name=etcd2',
      '--data-dir=/var/lib/lab/etcd2/data',
      '--listen-client-urls=http://10.77.0.3:2379,http://127.0.0.1:2379',
      '--advertise-client-urls=http://10.77.0.3:2379',
      '--listen-peer-urls=http://10.77.0.3:2380',
      '--initial-advertise-peer-urls=http://10.77.0.3:2380',
      '--initial-cluster=etcd1=http://10.77.0.2:2380,etcd2=http://10.77.0.3:2380,etcd3=http://10.77.0.4:2380',
      '--initial-cluster-token=weft-ha1',
      '--initial-cluster-state=new',
      '--logger=zap',
      '--log-level=warn',
    ]);
  });

  it('gives the replicas every member client URL', () => {
    expect(etcdEndpoints(members)).toEqual([
      'http://10.77.0.2:2379',
      'http://10.77.0.3:2379',
      'http://10.77.0.4:2379',
    ]);
  });
});
