// A concurrency limit that follows the app's latency: Envoy's adaptive concurrency gradient
// controller (envoyproxy.io/docs: configuration/http/http_filters/adaptive_concurrency_filter;
// source/extensions/filters/http/adaptive_concurrency/controller/gradient_controller.cc).
// Now and then the limit is pinned to minConcurrency until minRttRequests requests admitted at
// that low concurrency have answered: their percentile is the unloaded latency (minRTT). Every
// window, the percentile of the latencies sampled in it moves the limit:
//   gradient = clamp((minRTT * (1 + buffer)) / sampleRTT, 0.5, 1)
//   limit    = clamp(limit * gradient + sqrt(limit * gradient), minConcurrency, maxConcurrency)
// so the limit grows while latency stays near the unloaded one and shrinks as a queue builds.
// Two changes, both from Netflix's concurrency-limits (Gradient2Limit): the gradient is capped
// at 1, not Envoy's 2, so growth is the headroom alone (sqrt(limit) a window) instead of a
// doubling: an answer comes one latency after its admission, and with a window shorter than
// that a doubling limit runs far past the app's capacity before the first slow answer says so
// (on loopback, 8-wide app at 50 ms, Envoy's 2 swung the limit between 6 and 35). And it grows
// only in a window whose requests in flight reached half of it ("don't grow the limit if we
// are app limited"), so a quiet spell leaves no limit far above any load it has seen, which the
// first burst would fill with a queue before the limit could come down.
// A window closes only once a request admitted under the current limit has answered: an
// answer comes one latency after its admission, and a limit judged on answers to an older limit
// overshoots (with an app slower than the window, the limit swung between 1x and 4x the app's
// capacity on loopback until this was so).
// No timers: the clock is read when a request comes or answers (a quiet service costs nothing).
// The clock and the random source (the probe's jitter) are injected; the class does no I/O.
import { WeftError } from '../../errors.js';

export interface GradientOptions {
  /** The limit's floor, and the limit while minRTT is measured (Envoy min_concurrency). */
  minConcurrency: number;
  /** The limit's ceiling (Envoy max_concurrency_limit). */
  maxConcurrency: number;
  /** How often the limit moves (Envoy concurrency_update_interval), ms. */
  windowMs: number;
  /** The percentile of a window's latencies (and of minRTT's) that counts, 1-100. */
  percentile: number;
  /** Time between minRTT measurements (Envoy min_rtt_calc_params.interval), ms. */
  minRttIntervalMs: number;
  /** Requests that make one minRTT measurement (Envoy request_count). */
  minRttRequests: number;
  /** A measurement starts up to this share of the interval late, at random (0-100 %). */
  jitterPercent: number;
  /** Latency over minRTT that does not yet shrink the limit (0-100 %, of minRTT). */
  bufferPercent: number;
  /** Milliseconds on a monotonic clock. */
  now: () => number;
  /** [0, 1). */
  random: () => number;
}

/** Windows in a row at minConcurrency that make minRTT be measured again (Envoy's 5). */
const WINDOWS_AT_MIN_BEFORE_PROBE = 5;
/** Latencies kept per window: beyond it the oldest are overwritten (a bounded, recent sample). */
const MAX_SAMPLES = 4_096;

/** The limit after one window: the gradient with its burst headroom, clamped. */
export function nextLimit(
  limit: number,
  minRttMs: number,
  sampleRttMs: number,
  o: Pick<GradientOptions, 'minConcurrency' | 'maxConcurrency' | 'bufferPercent'>,
): number {
  const buffered = minRttMs * (1 + o.bufferPercent / 100);
  const raw = sampleRttMs > 0 ? buffered / sampleRttMs : 1;
  const gradient = Math.min(1, Math.max(0.5, raw));
  const scaled = limit * gradient;
  const next = Math.floor(scaled + Math.sqrt(scaled));
  return Math.min(o.maxConcurrency, Math.max(o.minConcurrency, next));
}

/** The nearest-rank percentile of `values` (sorted in place); values must not be empty. */
export function percentileOf(values: number[], percentile: number): number {
  values.sort((a, b) => a - b);
  const rank = Math.ceil((percentile / 100) * values.length);
  return values[Math.min(values.length, Math.max(1, rank)) - 1]!;
}

/** What an admitted request carries back when it answers: when and in which phase it began. */
export interface Admitted {
  readonly startedAt: number;
  readonly epoch: number;
}

export class GradientLimit {
  /** Requests admitted and not yet released. */
  inFlight = 0;
  /** The unloaded latency (ms); undefined until the first measurement ends. */
  minRttMs: number | undefined;
  /** The last window's latency percentile (ms), for metrics. */
  sampleRttMs: number | undefined;
  private steadyLimit: number;
  private probing = true;
  /** Bumped at each phase change: a sample counts only in the phase its request began in. */
  private epoch = 0;
  private samples: number[] = [];
  private next = 0;
  private windowEnd = 0;
  private nextProbeAt = 0;
  private windowsAtMin = 0;
  /** The most requests in flight at once in the current window. */
  private peakInFlight = 0;

  constructor(readonly o: GradientOptions) {
    validate(o);
    // Envoy starts by measuring minRTT, at the floor.
    this.steadyLimit = o.minConcurrency;
  }

  /** The limit in force now (the floor while minRTT is measured); moves it on when its window ended. */
  current(): number {
    this.tick(this.o.now());
    return this.probing ? this.o.minConcurrency : this.steadyLimit;
  }

  get measuring(): boolean {
    return this.probing;
  }

  /** Count one request in (the caller decided to admit it, see admits()). */
  start(): Admitted {
    this.inFlight += 1;
    if (this.inFlight > this.peakInFlight) this.peakInFlight = this.inFlight;
    return { startedAt: this.o.now(), epoch: this.epoch };
  }

  /** The request's response head arrived: its latency is a sample. */
  answered(a: Admitted): void {
    const now = this.o.now();
    this.tick(now);
    if (a.epoch !== this.epoch) return;
    this.push(now - a.startedAt);
    if (this.probing && this.next >= this.o.minRttRequests) this.endProbe(now);
  }

  /** The request is over (answered or not): its slot is free. */
  release(): void {
    this.inFlight -= 1;
  }

  private push(ms: number): void {
    if (this.samples.length < MAX_SAMPLES) this.samples.push(ms);
    else this.samples[this.next % MAX_SAMPLES] = ms;
    this.next += 1;
  }

  private tick(now: number): void {
    if (this.probing) return;
    if (now >= this.nextProbeAt) {
      this.startProbe();
      return;
    }
    // Nothing admitted under this limit has answered yet: the window goes on.
    if (now < this.windowEnd || this.samples.length === 0) return;
    this.windowEnd = now + this.o.windowMs;
    const peak = this.peakInFlight;
    this.peakInFlight = this.inFlight;
    const o = this.o;
    this.sampleRttMs = percentileOf(this.samples, o.percentile);
    this.clearSamples();
    const next = nextLimit(this.steadyLimit, this.minRttMs!, this.sampleRttMs, o);
    // App limited: the load never came near the limit, so a low latency says nothing of more.
    if (next !== this.steadyLimit && (next < this.steadyLimit || peak * 2 >= this.steadyLimit)) {
      this.steadyLimit = next;
      // From now on only requests admitted under the new limit speak of it.
      this.epoch += 1;
    }
    // Held at the floor by latency (not by a quiet app): the unloaded latency may have grown
    // (Envoy measures it again).
    const slow = this.sampleRttMs > this.minRttMs! * (1 + o.bufferPercent / 100);
    this.windowsAtMin = slow && this.steadyLimit === o.minConcurrency ? this.windowsAtMin + 1 : 0;
    if (this.windowsAtMin >= WINDOWS_AT_MIN_BEFORE_PROBE) this.startProbe();
  }

  private startProbe(): void {
    this.probing = true;
    this.epoch += 1;
    this.windowsAtMin = 0;
    this.clearSamples();
  }

  private endProbe(now: number): void {
    const o = this.o;
    this.minRttMs = percentileOf(this.samples, o.percentile);
    this.clearSamples();
    this.probing = false;
    this.epoch += 1;
    this.windowEnd = now + o.windowMs;
    const jitter = this.o.random() * o.minRttIntervalMs * (o.jitterPercent / 100);
    this.nextProbeAt = now + o.minRttIntervalMs + jitter;
  }

  private clearSamples(): void {
    this.samples = [];
    this.next = 0;
  }
}

function validate(o: GradientOptions): void {
  const bad = (field: string, what: string): never => {
    throw new WeftError('WEFT_E_CONFIG', `adaptive concurrency: ${field} ${what}`);
  };
  const whole = (field: keyof GradientOptions, min: number) => {
    const v = o[field] as number;
    if (!Number.isInteger(v) || v < min) bad(field, `must be a whole number >= ${min} (got ${v})`);
  };
  whole('minConcurrency', 1);
  whole('maxConcurrency', 1);
  whole('minRttRequests', 1);
  if (o.maxConcurrency < o.minConcurrency) bad('maxConcurrency', 'must be >= minConcurrency');
  if (!(o.windowMs > 0)) bad('windowMs', 'must be > 0');
  if (!(o.minRttIntervalMs > 0)) bad('minRttIntervalMs', 'must be > 0');
  if (!(o.percentile > 0 && o.percentile <= 100)) bad('percentile', 'must be in (0, 100]');
  if (!(o.jitterPercent >= 0 && o.jitterPercent <= 100)) bad('jitterPercent', 'must be 0-100');
  if (!(o.bufferPercent >= 0 && o.bufferPercent <= 100)) bad('bufferPercent', 'must be 0-100');
}
