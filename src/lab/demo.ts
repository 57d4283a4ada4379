// The demo lab that `weft lab up` builds without a spec: a control-plane host and three nodes,
// each node with capture installed and an agent running as user `weft`; node2 and node3 run
// an HTTP service `echo` on port 8080 that answers with its host's name.
import { fileURLToPath } from 'node:url';
import { type LabSpec, validateLabSpec } from './spec.js';

/** The `weft` launcher of this checkout (the lab runs the same build as the caller). */
const WEFT_BIN = fileURLToPath(new URL('../../bin/weft', import.meta.url));
const ECHO_SERVER = fileURLToPath(new URL('../../scripts/demo/echo-server.mjs', import.meta.url));

export function demoLabSpec(): LabSpec {
  const weft = (...args: string[]) => [process.execPath, WEFT_BIN, ...args];
  const echo = { name: 'echo', command: [process.execPath, ECHO_SERVER, '8080'], user: 'weftapp' };
  const node = (name: string, services: (typeof echo)[] = []) => ({
    name,
    setup: [weft('redirect', 'install')],
    processes: [{ name: 'agent', command: weft('agent'), user: 'weft' }, ...services],
  });
  return validateLabSpec(
    {
      name: 'demo',
      hosts: [{ name: 'cp' }, node('node1'), node('node2', [echo]), node('node3', [echo])],
    },
    'demo lab spec',
  );
}
