// `weft agent`: runs the per-host daemon in the foreground (systemd runs it this way).
import type { Command } from 'commander';
import { startAgent } from '../../agent/agent.js';
import { loadAgentConfig } from '../../agent/config.js';
import { describeError, isWeftError } from '../../errors.js';
import { createLogger, flushLogs } from '../../sys/logger.js';

export function registerAgent(program: Command): void {
  program
    .command('agent')
    .description('run the weft agent on this host (in the foreground)')
    .option('-c, --config <file>', 'agent config file (YAML); default: built-in defaults')
    .action(async (opts: { config?: string }) => {
      const config = loadConfigOrExit(opts.config);
      const log = createLogger(config.logLevel, 'weft-agent');
      // Imported here, not at the top: only the agent needs the native addon, and a missing
      // build should not break `weft --help` or the other verbs.
      const { nativeSocketOps } = await import('../../native/socket-ops.js');
      const agent = await startAgent(config, { socketOps: nativeSocketOps, log }).catch((err) => {
        // The control plane session may already hold the event loop open: exit, so that
        // systemd sees the failure instead of a process that never becomes ready.
        console.error(`weft: ${describeError(err)}`);
        log.flush();
        process.exit(1);
      });
      // SIGHUP re-reads the config's workloads (registrations and their certificates).
      process.on('SIGHUP', () => {
        try {
          agent.reload(loadAgentConfig(opts.config));
          log.info('workloads reloaded');
        } catch (err) {
          log.error({ err: describeError(err) }, 'reload failed: keeping the previous workloads');
        }
      });
      await waitForSignal();
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

/** EX_CONFIG (sysexits.h): weft-agent.service names it in RestartPreventExitStatus=, so a bad
 * config is reported once in the journal instead of being restarted in a loop. */
const EXIT_CONFIG = 78;

function loadConfigOrExit(file: string | undefined) {
  try {
    return loadAgentConfig(file);
  } catch (err) {
    if (!isWeftError(err, 'WEFT_E_CONFIG')) throw err;
    console.error(`weft: ${describeError(err)}`);
    process.exit(EXIT_CONFIG);
  }
}
