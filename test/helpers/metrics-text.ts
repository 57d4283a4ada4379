// Reading Prometheus text as a user would: scrape /metrics over HTTP (or curl in a lab host)
// and sum the series whose line matches a pattern.
import type { Lab } from '../../src/lab/index.js';

/** The sum of the series whose line matches `pattern` (0 when there is none). */
export function sumSeries(text: string, pattern: RegExp): number {
  return text
    .split('\n')
    .filter((l) => pattern.test(l))
    .reduce((total, l) => total + Number(l.split(' ').pop()), 0);
}

/** An agent's /metrics (15020) in a lab host, as its own host would scrape it. */
export async function labMetrics(lab: Lab, host: string): Promise<string> {
  return (await lab.exec(host, ['curl', '-s', 'http://127.0.0.1:15020/metrics'])).stdout;
}

/** labMetrics, summed over the series that match `pattern`. */
export async function labMetric(lab: Lab, host: string, pattern: RegExp): Promise<number> {
  return sumSeries(await labMetrics(lab, host), pattern);
}
