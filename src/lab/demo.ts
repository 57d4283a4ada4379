// The demo that `weft lab up` builds without a spec: a control plane on `cp` and three nodes
// that joined it, each with a token naming it and the services it serves (MeshLab derives them
// from the workloads: node2 echo, node3 echo and banner). node2 and node3 serve `echo` (HTTP, answers with its host's name), node3
// also `banner` (an opaque, server-speaks-first TCP service), and node1 runs a client that
// calls http://echo.mesh/ every two seconds. With `ha`, the control plane is three replicas
// (cp1-3) on a three-member etcd cluster (etcd1-3) instead of one on `cp`.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Lab } from './lab.js';
import { MeshLab, type MeshLabWorkload } from './mesh-lab.js';

const DEMO = fileURLToPath(new URL('../../scripts/demo/', import.meta.url));

const echo: MeshLabWorkload = {
  service: 'echo',
  port: 8080,
  command: [process.execPath, join(DEMO, 'echo-server.mjs'), '8080'],
};
const banner: MeshLabWorkload = {
  service: 'banner',
  port: 7000,
  command: [process.execPath, join(DEMO, 'banner-server.mjs'), '7000'],
};

export async function upDemo(options: { ha?: boolean } = {}): Promise<Lab> {
  const mesh = await MeshLab.up({
    name: 'demo',
    ha: options.ha === true,
    nodes: [
      { name: 'node1' },
      { name: 'node2', workloads: [echo] },
      { name: 'node3', workloads: [echo, banner] },
    ],
    resourceFiles: [join(DEMO, 'resources.yaml')],
  });
  await mesh.lab.startProcess('node1', {
    name: 'client',
    command: [
      'sh',
      '-c',
      'while sleep 2; do curl -s --max-time 2 http://echo.mesh/ || echo "curl failed: $?"; done',
    ],
    user: 'weftapp',
  });
  return mesh.lab;
}
