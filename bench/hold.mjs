// Keeps the benchmark's lab up for probing by hand while developing:
//   node bench/hold.mjs [NAME]      (as root; Ctrl-C or SIGTERM tears it down)
// Then e.g. `ip netns exec NAME-client ...`. SIGUSR2 restarts both agents under
// `node --cpu-prof` (profiles go to /tmp/weft-bench-NAME/prof); a second SIGUSR2 stops them,
// which writes the profiles, and starts plain agents again.
import { chownSync, mkdirSync } from 'node:fs';
import { lookupUser } from '../dist/lab/index.js';
import { BenchLab } from './lib/bench-lab.mjs';

const name = process.argv[2] ?? 'bnhold';
const log = (m) => console.log(`[hold ${new Date().toISOString()}] ${m}`);
const bench = await BenchLab.up(name, log);
const hosts = ['client', 'server'];
log(`up: server ${bench.serverAddr}; pids ${JSON.stringify(bench.pids)}`);
log(`urls ${JSON.stringify(bench.httpUrls())}`);
log(
  `h2c urls ${JSON.stringify(bench.h2Urls())}; gRPC targets ${JSON.stringify(bench.grpcTargets())}`,
);

let profiling = false;
let busy = false;
async function toggleProfiling() {
  const dir = `${bench.dir}/prof`;
  mkdirSync(dir, { recursive: true });
  const weft = lookupUser('weft');
  chownSync(dir, weft.uid, weft.gid);
  for (const host of hosts) await bench.lab.stopProcess(host, 'agent', 30_000);
  profiling = !profiling;
  for (const host of hosts) {
    if (profiling) {
      await bench.startAgentUnder(
        host,
        process.env.HOLD_NODE_FLAGS?.split(' ').filter(Boolean) ?? [
          '--cpu-prof',
          `--cpu-prof-dir=${dir}`,
          `--cpu-prof-name=${host}.cpuprofile`,
        ],
      );
    } else {
      await bench.mesh.startAgent(host);
      await bench.pinAgent(host);
    }
  }
  await bench.waitReady();
  log(profiling ? `agents profiling into ${dir}` : `profiles written to ${dir}; plain agents`);
  log(`pids ${JSON.stringify(bench.pids)}`);
}

process.on('SIGUSR2', () => {
  if (busy) return;
  busy = true;
  toggleProfiling()
    .catch((err) => log(`profiling toggle failed: ${err.message}`))
    .finally(() => {
      busy = false;
    });
});
const stop = async () => {
  log('tearing down');
  await bench.lab.down();
  process.exit(0);
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
setInterval(() => {}, 1 << 30);
