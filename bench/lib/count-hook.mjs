// Loaded into an agent with `--import` (bench/probe.mjs: `restart --import=<this file>`): counts
// what requests make, by kind (async resources by type: PROMISE, Timeout, Immediate,
// HTTP2STREAM, ...; EventEmitter listeners added and removed; EventTarget listeners added) and
// writes the totals to /tmp/weft-counts/<lab>-<host>-<pid>.json every second. The probe's
// `counts` command sums a host's processes and divides the change since its last call by the
// HTTP/2 streams made (one per L7 request on both agents). Exact where CPU figures on a shared machine are not; it slows the agent down.
import { createHook } from 'node:async_hooks';
import { EventEmitter } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';

const counts = { listenerAdd: 0, listenerRemove: 0, eventTargetAdd: 0 };
createHook({
  init(_id, type) {
    counts[type] = (counts[type] ?? 0) + 1;
  },
}).enable();
// on and addListener are one function; once() goes through it, so each once counts once.
const P = EventEmitter.prototype;
const add = P.addListener;
P.on = P.addListener = function (...args) {
  counts.listenerAdd += 1;
  return add.apply(this, args);
};
const prepend = P.prependListener;
P.prependListener = function (...args) {
  counts.listenerAdd += 1;
  return prepend.apply(this, args);
};
const remove = P.removeListener;
P.off = P.removeListener = function (...args) {
  counts.listenerRemove += 1;
  return remove.apply(this, args);
};
const addEvent = EventTarget.prototype.addEventListener;
EventTarget.prototype.addEventListener = function (...args) {
  counts.eventTargetAdd += 1;
  return addEvent.apply(this, args);
};

// The lab and host from the agent's config path (<lab>/<host>.agent.yaml): a worker process has
// no config in its argv, so it takes its master's. One file per process (master and workers
// each count their own), named by lab so that two probes' labs never share one.
const configOf = (argv) => argv.find((a) => a.endsWith('.agent.yaml'));
let config = configOf(process.argv);
if (config === undefined) {
  try {
    config = configOf(readFileSync(`/proc/${process.ppid}/cmdline`, 'utf8').split('\0'));
  } catch {}
}
const [lab, host] = config?.split('/').slice(-2) ?? ['', String(process.pid)];
const name = `${lab}-${host.split('.')[0]}-${process.pid}`;
const dir = '/tmp/weft-counts';
setInterval(() => {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o777 });
    writeFileSync(`${dir}/${name}.json`, JSON.stringify(counts));
  } catch {}
}, 1000).unref();
