// Prints this host's facts as one JSON line (systeminformation), run by the agent as a short-lived
// child process (host-facts.ts): systeminformation and what its reads allocate (about 12 MB of
// RSS) then never live in the agent, whose memory is watched.
import { availableParallelism } from 'node:os';
import * as si from 'systeminformation';

const [info, mem] = await Promise.all([si.osInfo(), si.mem()]);
process.stdout.write(
  `${JSON.stringify({
    os: [info.distro, info.release, info.codename ? `(${info.codename})` : '']
      .filter((p) => p !== '')
      .join(' '),
    kernel: info.kernel,
    arch: info.arch,
    cpus: availableParallelism(),
    memoryBytes: mem.total,
  })}\n`,
);
