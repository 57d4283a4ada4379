// `weft agent`: runs the per-host daemon in the foreground (systemd runs it this way).
import type { Command } from 'commander';
import { loadAgentConfig } from '../../agent/config.js';
import { EXIT_CONFIG, exitStatusForRefusal } from '../../agent/exit-status.js';
import { sdStatus } from '../../agent/systemd.js';
import { type RunningMaster, startMaster } from '../../agent/workers/master.js';
import { describeError, isWeftError, type WeftError } from '../../errors.js';
import { createLogger, flushLogs, type Logger } from '../../sys/logger.js';

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description('run the weft agent on this host (in the foreground)')
    .option('-c, --config <file>', 'agent config file (YAML); default: built-in defaults')
    .option(
      '--check',
      'load the config and the code as an upgrade would, print what this build is, and exit',
    )
    .action(async (opts: { config?: string; check?: boolean }) => {
      const config = loadConfigOrExit(opts.config);
      if (opts.check) return checkBuild();
      const log = createLogger(config.logLevel, 'weft-agent');
      // SIGUSR2 (install.sh's upgrade) would end the process by default: until the agent is up
      // it is remembered, then the master execs into the code on disk (see upgrade below).
      let upgrade = (): void => {
        upgrade = () => {};
        log.info('upgrade asked for while starting: done once the agent is up');
        pendingUpgrade = true;
      };
      let pendingUpgrade = false;
      process.on('SIGUSR2', () => upgrade());
      // SIGHUP's default action ends the process: a reload asked for while the agent starts
      // (a `systemctl reload` right after start) must wait for it, not kill it silently.
      let reload = (): void => {
        reload = () => {};
        log.info('reload asked for while starting: done once the agent is up');
        pendingReload = true;
      };
      let pendingReload = false;
      process.on('SIGHUP', () => reload());
      // Imported here, not at the top: only the agent needs the native addon, and a missing
      // build should not break `weft --help` or the other verbs.
      const { nativeSocketOps } = await import('../../native/socket-ops.js');
      const { takeHandover } = await import('../../agent/workers/handover.js');
      const agent = await startMaster(config, {
        socketOps: nativeSocketOps,
        log,
        handover: takeHandover(process.env),
        configFile: opts.config,
      }).catch((err) => {
        // The control plane session may already hold the event loop open: exit, so that
        // systemd sees the failure instead of a process that never becomes ready. A config
        // that cannot work (limits beyond the descriptors the process may open) is EX_CONFIG,
        // not restarted in a loop; anything else (a port in use) may pass: restart.
        console.error(`weft: ${describeError(err)}`);
        log.flush();
        process.exit(isWeftError(err, 'WEFT_E_CONFIG') ? EXIT_CONFIG : 1);
      });
      // SIGHUP re-reads agent.yaml and starts new workers on it (and on the code on disk now);
      // the previous ones finish their connections. A config that does not load changes nothing.
      reload = () => {
        let next: ReturnType<typeof loadAgentConfig>;
        try {
          next = loadAgentConfig(opts.config);
        } catch (err) {
          log.error({ err: describeError(err) }, 'reload refused: keeping the running workers');
          return;
        }
        agent.reload(next).then(
          (ok) => {
            if (ok) log.info('reloaded: new workers serve, the previous ones drain');
          },
          (err: unknown) =>
            log.error({ err: describeError(err) }, 'reload refused: keeping the running workers'),
        );
      };
      if (pendingReload) reload();
      // SIGUSR2: an upgrade. The master checks the code on disk and execs into it with the
      // same pid, handing over its sockets and workers; a refusal leaves everything running.
      upgrade = () => {
        let next: ReturnType<typeof loadAgentConfig>;
        try {
          next = loadAgentConfig(opts.config);
        } catch (err) {
          log.error({ err: describeError(err) }, 'upgrade refused: keeping the running master');
          return;
        }
        void agent.upgrade(next);
      };
      if (pendingUpgrade) upgrade();
      const ended = await Promise.race([waitForSignal(), agent.refused]);
      if (typeof ended !== 'string') await exitRefused(agent, ended, log);
      log.info({ drain_ms: config.drainMs }, 'stopping: draining connections');
      await agent.stop();
      log.info('stopped');
      await flushLogs(log);
      // Exit now rather than when the event loop runs dry: Node's exit-time handle cleanup
      // can spin at 100 % CPU for tens of seconds on a write request an HTTP/2 stream left
      // pending (seen after 8 bulk tunnel streams), which would outlast systemd's stop
      // timeout and turn a clean stop into a SIGKILL.
      process.exit(0);
    });
}

/**
 * This host never joined and the control plane refused it for good: retrying would fail the
 * same way. The reason goes to stderr (the journal, where install.sh reads it) and the exit
 * status is one weft-agent.service names in RestartPreventExitStatus=, so the unit fails once.
 */
async function exitRefused(agent: RunningMaster, err: WeftError, log: Logger): Promise<never> {
  log.error({ err: describeError(err) }, 'cannot join the mesh: giving up');
  await agent.stop(0);
  sdStatus(`join refused: ${err.message}`);
  console.error(`weft: ${describeError(err)}`);
  await flushLogs(log);
  process.exit(exitStatusForRefusal(err));
}

/**
 * `weft agent --check`: what a master runs with the new code before an upgrade's exec. The
 * config loaded (above), the native addon and the master's and workers' modules load; prints
 * this build and the hand-over versions it reads, as one JSON line.
 */
async function checkBuild(): Promise<never> {
  try {
    await import('../../native/socket-ops.js');
    await import('../../agent/workers/master.js');
    const { HANDOVER_VERSION } = await import('../../agent/workers/handover.js');
    const { WORKER_PROTOCOL } = await import('../../agent/workers/worker-messages.js');
    const { BUILD_ID } = await import('../../agent/build-id.js');
    const { WEFT_VERSION } = await import('../../api/weft-version.js');
    console.log(
      JSON.stringify({
        version: WEFT_VERSION,
        build: BUILD_ID,
        handover: [HANDOVER_VERSION],
        workerProtocol: WORKER_PROTOCOL,
      }),
    );
    process.exit(0);
  } catch (err) {
    console.error(`weft: ${describeError(err)}`);
    process.exit(1);
  }
}

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

function loadConfigOrExit(file: string | undefined) {
  try {
    return loadAgentConfig(file);
  } catch (err) {
    if (!isWeftError(err, 'WEFT_E_CONFIG')) throw err;
    // EX_CONFIG: reported once in the journal, not restarted in a loop (see exit-status.ts).
    console.error(`weft: ${describeError(err)}`);
    process.exit(EXIT_CONFIG);
  }
}
