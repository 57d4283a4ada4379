// Sends the agent's stats report to the control plane every telemetry.stats.intervalMs: reads
// the data path's counts (stats-readout.ts), decides the report (stats-report.ts: deltas since
// the last report that reached a stream, bounded in size) and hands it to the session. Off the
// request path: a timer, once per interval. Also notices when the host's facts change.
import type { Registry } from 'prom-client';
import type { ControlPlaneSession } from '../controlplane-client/session.js';
import type { Logger } from '../sys/logger.js';
import type { RecentDenials } from '../telemetry/recent-denials.js';
import type { RecentErrors } from '../telemetry/recent-errors.js';
import { type Readout, readStats } from '../telemetry/stats-readout.js';
import { buildReport, type ReportLimits } from '../telemetry/stats-report.js';
import type { HostFactsSource } from './host-facts.js';

export interface StatsReporterOptions {
  registry: Registry;
  /** Where the counts come from; default readStats(registry) (the agent's master: its
   * workers' readouts, merged). */
  read?: () => Promise<Readout>;
  session: Pick<ControlPlaneSession, 'sendStats' | 'sendHostFacts'>;
  intervalMs: number;
  log: Logger;
  facts?: HostFactsSource;
  /** Authorization denials since the last report, carried with it. */
  denials?: RecentDenials;
  /** Failed requests since the last report, carried with it. */
  errors?: RecentErrors;
  limits?: ReportLimits;
  now?: () => number;
}

export function startStatsReporter(options: StatsReporterOptions): { stop(): void } {
  const { registry, session, log, facts } = options;
  const now = options.now ?? Date.now;
  let previous: Readout | undefined;
  let startUnixMs = now();
  let running = false;

  const tick = async () => {
    const readout = await (options.read ? options.read() : readStats(registry));
    const endUnixMs = now();
    const report = buildReport(previous, readout, { startUnixMs, endUnixMs }, options.limits);
    const denied = options.denials?.take();
    if (denied !== undefined) {
      report.denials = denied.events;
      report.denialsOmitted = denied.omitted;
    }
    const errored = options.errors?.take();
    if (errored !== undefined) {
      report.errors = errored.events;
      report.errorsOmitted = errored.omitted;
    }
    // Not sent (no stream now): the next report covers this interval, its denials and errors too.
    if (session.sendStats(report)) {
      previous = readout;
      startUnixMs = endUnixMs;
      if (report.foldedSeries > 0)
        log.debug({ folded: report.foldedSeries }, 'stats report: series folded into (other)');
    } else {
      if (denied !== undefined) options.denials?.giveBack(denied);
      if (errored !== undefined) options.errors?.giveBack(errored);
    }
    const changed = await facts?.changed();
    if (changed) session.sendHostFacts(changed);
  };
  const timer = setInterval(() => {
    if (running) return;
    running = true;
    tick()
      .catch((err: unknown) => log.warn({ err }, 'stats report not built'))
      .finally(() => {
        running = false;
      });
  }, options.intervalMs);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
