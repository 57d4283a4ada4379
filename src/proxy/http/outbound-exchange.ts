// One outbound HTTP request, from the app's L7Request to an L7Response: balance over the
// service port's endpoints PER REQUEST, then forward: to an endpoint on another host as an
// HTTP/2 stream on the pooled tunnel session, to one on this host through the inbound stack
// (the same policy and metrics as a call from another host). Then, per the service's
// TrafficPolicy (and the route's timeouts): each try bounded by the per-try timeout and the
// request's deadline (the smaller of timeouts.request and the client's grpc-timeout, carried to
// the next hop reduced by the time spent), and a failed try retried when the pure decision
// (resilience/retry-decision.ts) says so, within the budget and circuitBreaker.maxRetries,
// after a backoff, on another endpoint. The response head is held until that decision: the
// client never sees a try that is retried. A request that reached no app moves to another
// endpoint at once, policy or not (a failover, free of the budget and maxRetries). Without a
// policy that is all, and no timer runs unless the client sent a grpc-timeout.
// Each try's answer is counted once for outlier detection (a 5xx as a failure, anything else
// as a success); the circuit breaker's hold on the request is told when its head first goes out.
// A route rule with `hedging` races each try of an idempotent request against hedges: after the
// delay, one more attempt to another endpoint (within the retry budget), the first good answer
// wins and the others are cancelled (their endpoints are not charged for the cancel).
import type { Readable } from 'node:stream';
import { describeError, WeftError } from '../../errors.js';
import type { Logger } from '../../sys/logger.js';
import { formatAddress } from '../address.js';
import type { EndpointState } from '../balance/endpoint-state.js';
import type { CloseReason } from '../close-reason.js';
import type { MeshState } from '../mesh-state.js';
import type { OutboundContext } from '../outbound/identify.js';
import { clientOf, type ServiceTarget } from '../outbound/opaque.js';
import { type EndpointPlan as AnyEndpointPlan, planEndpoint } from '../outbound/plan.js';
import { backoffMs } from '../resilience/backoff.js';
import type { RetryBudget } from '../resilience/budget.js';
import { earliest, formatGrpcTimeout, parseGrpcTimeout, tryLimit } from '../resilience/deadline.js';
import {
  decideHedge,
  type HedgePolicy,
  hedgeDelayMs,
  settles,
} from '../resilience/hedge-decision.js';
import type { Resilience, ServiceResilience, TimeoutKind } from '../resilience/resilience.js';
import {
  type AttemptOutcome,
  decideRetry,
  type RetryDecision,
  type RetryReason,
} from '../resilience/retry-decision.js';
import type { RetryPolicy } from '../resilience/retry-policy.js';
import type { TunnelPool } from '../tunnel/index.js';
import { TunnelStreamError } from '../tunnel/index.js';
import { agentAnswer } from './agent-answer.js';
import { RequestTimers } from './exchange-timers.js';
import { type AgentReason, isGrpc, tunnelRequestHeaders } from './outbound-wire.js';
import { ReplayBody } from './replay-body.js';
import type { InboundHttpHandler, L7Request, L7Response } from './types.js';
import { REASON_HEADER, UNDELIVERED_HEADER } from './wire-headers.js';

export interface ExchangeDeps {
  state: MeshState;
  tunnels: () => TunnelPool | undefined;
  /** The inbound stack: same-host calls go through it. */
  inbound: InboundHttpHandler;
  log: Logger;
  tunnelPort: number;
  /** Without a retry policy: endpoints tried per request when nothing reached the previous one. */
  maxAttempts: number;
  /** Timeouts and retries per destination service (TrafficPolicy), and their metrics. */
  resilience: Resilience;
  now?: () => number;
}

/** A route's timeouts (ms), over the TrafficPolicy's (Gateway API HTTPRoute rules[].timeouts). */
export interface RouteTimeouts {
  /** The whole request, retries included: over timeouts.request. */
  request?: number;
  /** Each try: over retries.perTryTimeout. */
  backendRequest?: number;
}

/** What the route stage decided that the exchange needs. */
export interface ExchangeRoute {
  /** The route's name, the retry and timeout metrics' label ("default" when none matched). */
  name: string;
  timeouts?: RouteTimeouts;
  /** The rule's hedging (weft's extension of a route rule); none: no hedge, no timer. */
  hedging?: HedgePolicy;
}

/** The circuit breaker's hold on a request (resilience/breaker.ts BreakerSlot). */
export interface BreakerHold {
  /** The request's head went out (idempotent): it is no longer pending. */
  sent(): void;
}

/** What the stages before the exchange hand it; each one optional. */
export interface ExchangeOptions {
  /** The route stage's decision; none: the route "default" and the TrafficPolicy's timeouts. */
  route?: ExchangeRoute;
  /** The circuit breaker stage's hold on the request, told when its head goes out. */
  breaker?: BreakerHold;
}

export interface Exchanged {
  response: L7Response;
  /** Where it went: "ip:port" or "tunnel <node> -> ip:port"; undefined when nowhere. */
  endpoint: string | undefined;
  /** Call when the response has been delivered (or abandoned): in-flight accounting, timers. */
  done: () => void;
}

export function exchange(
  ctx: OutboundContext,
  target: ServiceTarget,
  request: L7Request,
  /** Undefined: the request has no body (END_STREAM with its headers). */
  body: L7Request['body'] | undefined,
  deps: ExchangeDeps,
  opts: ExchangeOptions = {},
): Promise<Exchanged> {
  return new OutboundExchange(ctx, target, request, body, deps, opts).run();
}

/** Where a try goes: this host, or through the tunnel. */
type EndpointPlan = Exclude<AnyEndpointPlan, { kind: 'no_identity' }>;

/** How one try ended. */
type TryResult =
  | {
      kind: 'response';
      response: L7Response;
      chosen: EndpointState;
      endpoint: string;
      /** The peer's agent could not reach its app: nothing was delivered. */
      undelivered: boolean;
    }
  | {
      kind: 'failed';
      outcome: 'connect-failure' | 'refused-stream' | 'reset';
      error: string;
      /** The try took no byte of the body: the same body can go to the next one. */
      untouched: boolean;
    }
  | { kind: 'timeout'; which: TimeoutKind; error: string };

/** One attempt of a hedged try: its own cancel, where it went, when it started. */
interface Attempt {
  cancel: AbortController;
  chosen: EndpointState;
  startedAt: number;
}

class OutboundExchange {
  private readonly grpc: boolean;
  private readonly routeName: string;
  private readonly service: ServiceResilience | undefined;
  private readonly retry: RetryPolicy | undefined;
  private readonly perTryMs: number | undefined;
  private readonly connectMs: number | undefined;
  /** The request's deadline on performance.now()'s clock; undefined: none. */
  private readonly deadlineAt: number | undefined;
  /** The client sent grpc-timeout: each try carries what is left of the deadline. */
  private readonly carryDeadline: boolean;
  private readonly timers: RequestTimers | undefined;
  /** The body the next try reads; undefined: the request has none. */
  private body: L7Request['body'] | undefined;
  private readonly replay: ReplayBody | undefined;
  private readonly tried = new Set<EndpointState>();
  private last: EndpointState | undefined;
  private tries = 0;
  /** Tries that were failovers (the request reached no app); not counted against `attempts`. */
  private failovers = 0;
  private retrying = false;
  private lastError: string;
  private lastTimeout: TimeoutKind | undefined;
  private readonly now: () => number;
  private readonly breaker: BreakerHold | undefined;
  /** Set for a request its route rule hedges (idempotent); its budget. */
  private readonly hedge: HedgePolicy | undefined;
  private readonly hedgeBudget: RetryBudget | undefined;

  constructor(
    private readonly ctx: OutboundContext,
    private readonly target: ServiceTarget,
    private readonly request: L7Request,
    body: L7Request['body'] | undefined,
    private readonly deps: ExchangeDeps,
    { route, breaker }: ExchangeOptions,
  ) {
    this.now = deps.now ?? Date.now;
    this.breaker = breaker;
    this.grpc = isGrpc(request.headers['content-type']);
    this.routeName = route?.name ?? 'default';
    this.lastError = `no usable endpoint of ${target.service}:${target.port.port}`;
    const service = deps.resilience.forService(
      target.service,
      deps.state.trafficPolicy(target.service),
    );
    this.service = service;
    const policy = service?.policy;
    this.retry = policy?.retry !== undefined && policy.retry.retries > 0 ? policy.retry : undefined;
    this.perTryMs = route?.timeouts?.backendRequest ?? policy?.retry?.perTryMs;
    this.connectMs = policy?.connectMs;
    const clientMs = this.grpc ? parseGrpcTimeout(request.headers['grpc-timeout']) : undefined;
    this.carryDeadline = clientMs !== undefined;
    const requestMs = earliest(route?.timeouts?.request ?? policy?.requestMs, clientMs);
    const idleMs = policy?.idleMs;
    const hedging = route?.hedging;
    this.hedge =
      hedging !== undefined && decideHedge(hedging, request.method, this.grpc).kind === 'hedge'
        ? hedging
        : undefined;
    this.deadlineAt = requestMs === undefined ? undefined : performance.now() + requestMs;
    this.timers =
      requestMs === undefined && idleMs === undefined
        ? undefined
        : new RequestTimers(this.deadlineAt, idleMs, (kind, detail) => this.expired(kind, detail));
    // Kept for a retry or a hedge only when there may be one; a body read as it comes otherwise.
    const resend = this.retry !== undefined || this.hedge !== undefined;
    this.replay =
      body !== undefined && (resend || idleMs !== undefined)
        ? new ReplayBody(body, this.timers?.touch, resend ? undefined : 0)
        : undefined;
    this.body = this.replay?.stream ?? body;
    this.service?.budget?.deposit();
    if (this.hedge !== undefined) {
      this.hedgeBudget = deps.resilience.hedgeBudget(target.service, service);
      if (this.hedgeBudget !== service?.budget) this.hedgeBudget.deposit();
    }
  }

  async run(): Promise<Exchanged> {
    for (;;) {
      const chosen = this.choose();
      if (chosen === undefined) {
        this.releaseRetry();
        this.timers?.clear();
        // Every endpoint was tried: a connect that timed out last says so (504, not 503).
        return this.answer(this.lastTimeout ?? 'no_healthy_endpoint', this.lastError);
      }
      this.tried.add(chosen);
      this.last = chosen;
      const ep = chosen.endpoint;
      const plan = planEndpoint({
        endpointNode: ep.node,
        thisNode: this.deps.state.node,
        sourceSpiffeId: this.ctx.source?.tunnel.spiffeId,
        tunnels: this.deps.tunnels() !== undefined,
      });
      if (plan.kind === 'no_identity') {
        this.releaseRetry();
        this.timers?.clear();
        return this.answer('no_identity', plan.reason);
      }
      const limit = tryLimit(performance.now(), this.deadlineAt, this.perTryMs);
      if (limit !== undefined && limit.ms <= 0) return this.final(this.timedOut('request_timeout'));
      const result =
        this.hedge === undefined
          ? await this.guardedTry(chosen, plan, limit)
          : await this.hedgedTry(chosen, plan, limit);
      this.tries += 1;
      if (result.kind !== 'response') this.lastError = result.error;
      this.lastTimeout = result.kind === 'timeout' ? result.which : undefined;
      const decision = this.decide(result);
      if (decision.kind === 'final' || this.request.signal.aborted) return this.final(result);
      const again =
        decision.kind === 'failover'
          ? await this.failOver(decision.reason, result)
          : await this.mayRetry(decision.reason, result);
      if (!again) return this.final(result);
      discard(result);
    }
  }

  /** The next endpoint: one not tried yet; a retry falls back to any but the last one. */
  private choose(): EndpointState | undefined {
    const pool = this.deps.state.pool(this.target.service, this.target.port.port);
    if (pool === undefined) return undefined;
    const dst = this.ctx.conn.target;
    if (this.target.via === 'endpoint') {
      // A request to one endpoint's own address goes there or nowhere.
      const exact = (s: EndpointState) =>
        s.endpoint.address === dst.address && s.endpoint.port === dst.port;
      return pool.find(exact, this.retry !== undefined && this.tries > 0 ? undefined : this.tried);
    }
    const client = clientOf(this.ctx.conn.client);
    // Per request: p2cEwma unless the TrafficPolicy says otherwise; ringHash needs its key.
    const pick = {
      request: true,
      hashKey: pool.hashKey({
        headers: this.request.headers,
        authority: this.request.authority,
        ...(client ? { sourceIp: client.address } : {}),
      }),
    };
    const fresh = pool.pick(this.tried, pick);
    if (fresh !== undefined || this.retry === undefined || this.tries === 0) return fresh;
    // Every endpoint was tried: a retry still avoids the one that just failed, if it can.
    const last = this.last;
    return (last ? pool.pick(new Set([last]), pick) : undefined) ?? pool.pick(undefined, pick);
  }

  private decide(result: TryResult): RetryDecision {
    if (result.kind === 'timeout' && result.which !== 'per_try_timeout') {
      // The request's own deadline or idle time: nothing is left to retry in.
      return result.which === 'connect_timeout'
        ? this.decideOn({ kind: 'connect-failure' }, this.resendable(result))
        : { kind: 'final', why: 'not_retryable' };
    }
    return this.decideOn(outcomeOf(result), this.resendable(result));
  }

  private decideOn(outcome: AttemptOutcome, resendable: boolean): RetryDecision {
    return decideRetry({
      outcome,
      policy: this.retry,
      tries: this.tries,
      failovers: this.failovers,
      resendable,
      failoverTries: this.deps.maxAttempts,
    });
  }

  /** Whether the request can go out again as it was (the body question; see ReplayBody). */
  private resendable(result: TryResult): boolean {
    if (this.body === undefined) return true;
    if (result.kind === 'failed' && result.untouched) return true;
    // A try that may have taken bytes: only a kept body can be sent again (decided below,
    // once the client has sent all of it).
    return this.replay !== undefined && this.retry !== undefined;
  }

  /**
   * The gates a retry the policy allows must pass (maxRetries, the budget, the deadline), its
   * backoff, and the body it will send; false: the last try's result stands.
   */
  private async mayRetry(reason: RetryReason, result: TryResult): Promise<boolean> {
    const retry = this.retry;
    const service = this.service;
    if (retry === undefined || service === undefined) return false; // only a policy retries
    const route = this.routeName;
    const max = service.policy.maxRetries;
    if (!this.retrying && max !== undefined && service.retrying.count >= max) {
      this.deps.resilience.denied(service.service, route, 'max_retries');
      return false;
    }
    if (!service.budget!.withdraw()) {
      this.deps.resilience.denied(service.service, route, 'budget');
      return false;
    }
    if (!this.retrying) {
      this.retrying = true;
      service.retrying.count += 1;
    }
    // The pause, cut short by the client going away; never past the deadline.
    let pause = backoffMs(
      this.tries,
      retry.backoffBaseMs,
      retry.backoffMaxMs,
      this.deps.resilience.random,
    );
    if (this.deadlineAt !== undefined) pause = Math.min(pause, this.deadlineAt - performance.now());
    if (pause > 0) await sleep(pause, this.request.signal);
    if (this.request.signal.aborted) return false;
    if (!(await this.rewind(result))) return false;
    this.deps.resilience.retried(service.service, route, reason);
    return true;
  }

  /**
   * A request that reached no app goes to another endpoint at once, whatever the policy:
   * no budget, no maxRetries slot, no backoff (retry-decision.ts says why). Counted with the
   * retries, under what the failed try did.
   */
  private async failOver(reason: RetryReason, result: TryResult): Promise<boolean> {
    this.failovers += 1;
    if (!(await this.rewind(result))) return false;
    this.deps.resilience.retried(this.target.service, this.routeName, reason);
    return true;
  }

  /**
   * The body the next try sends: a try that may have taken some of it sends again what was
   * kept, once the client has sent all of it; false when it was over 64 KiB.
   */
  private async rewind(result: TryResult): Promise<boolean> {
    if ((result.kind === 'failed' && result.untouched) || this.body === undefined) return true;
    const whole = await this.replay!.complete(this.request.signal);
    if (!whole) {
      this.deps.log.debug(
        { dst_service: this.target.service, path: this.request.path },
        'not sent again: the request body is over 64 KiB',
      );
      return false;
    }
    this.body = this.replay!.replay();
    return true;
  }

  /**
   * One try, raced against its limit and the connect timeout when they are set. `parent`
   * cancels it (the request's signal, or a hedged attempt's own), `body` is what it sends.
   */
  private guardedTry(
    chosen: EndpointState,
    plan: EndpointPlan,
    limit: ReturnType<typeof tryLimit>,
    parent: AbortSignal = this.request.signal,
    body: L7Request['body'] | undefined = this.body,
  ): Promise<TryResult> {
    const connectMs = plan.kind === 'local' ? undefined : this.connectMs;
    // Nothing to time (no policy, no deadline): the try's own promise, not one wrapped in
    // another async frame.
    if (limit === undefined && connectMs === undefined && this.timers === undefined) {
      return this.tryOnce(chosen, plan, parent, undefined, body);
    }
    return this.timedTry(chosen, plan, limit, parent, body, connectMs);
  }

  /** A try bounded by its timers: the per-try limit, the connect timeout, the request's. */
  private async timedTry(
    chosen: EndpointState,
    plan: EndpointPlan,
    limit: ReturnType<typeof tryLimit>,
    parent: AbortSignal,
    body: L7Request['body'] | undefined,
    connectMs: number | undefined,
  ): Promise<TryResult> {
    const abort = new AbortController();
    const onParent = (): void => abort.abort();
    parent.addEventListener('abort', onParent, { once: true });
    let fire!: (kind: TimeoutKind) => void;
    const expired = new Promise<TryResult>((resolve) => {
      fire = (which) => {
        abort.abort();
        resolve({
          kind: 'timeout',
          which,
          error: `${which.replace('_', ' ')} of ${this.target.service}`,
        });
      };
    });
    const tryTimer =
      limit === undefined ? undefined : setTimeout(() => fire(limit.kind), Math.max(limit.ms, 0));
    let connectTimer =
      connectMs === undefined ? undefined : setTimeout(() => fire('connect_timeout'), connectMs);
    this.timers?.watch(fire);
    const attempt = this.tryOnce(
      chosen,
      plan,
      abort.signal,
      () => {
        clearTimeout(connectTimer);
        connectTimer = undefined;
      },
      body,
    );
    const result = await Promise.race([attempt, expired]);
    clearTimeout(tryTimer);
    clearTimeout(connectTimer);
    this.timers?.watch(undefined);
    parent.removeEventListener('abort', onParent);
    if (result.kind === 'timeout') {
      // The try is cancelled (its stream reset); a late answer is dropped.
      attempt.then(discard, () => {});
      if (result.which === 'connect_timeout' && chosen.failed(this.now()))
        this.ejected(chosen, result.error);
      this.deps.resilience.timedOut(this.target.service, this.routeName, result.which);
    }
    return result;
  }

  /** One try at one endpoint: this host's inbound stack, or a stream through the tunnel. */
  private async tryOnce(
    chosen: EndpointState,
    plan: EndpointPlan,
    signal: AbortSignal,
    onSent: (() => void) | undefined,
    body: L7Request['body'] | undefined,
  ): Promise<TryResult> {
    const ep = chosen.endpoint;
    const client = clientOf(this.ctx.conn.client);
    // Latency for the balancer: from the request going out to its response head, in
    // fractions of a millisecond (a mesh hop takes one or two).
    let sent = performance.now();
    chosen.active += 1;
    if (plan.kind === 'local') {
      // Same host: the inbound stack authorizes and delivers; it answers every failure itself.
      this.breaker?.sent();
      const response = await this.deps.inbound({
        peer: {
          spiffeId: this.ctx.source?.tunnel.spiffeId,
          address: client?.address ?? ep.address,
          port: client?.port ?? 0,
        },
        target: { address: ep.address, port: ep.port },
        client,
        request: {
          ...this.request,
          headers: this.headersForTry(this.request.headers),
          body: body ?? this.request.body,
          signal,
        },
      });
      const undelivered = isUndelivered(response);
      if (undelivered) {
        // The app is not there: an endpoint failure, and nothing was delivered.
        this.lastError = response.reason ?? 'the app could not be reached';
        this.endpointFailed(chosen, this.lastError);
      } else this.answered(chosen, response, sent, signal);
      return { kind: 'response', response, chosen, endpoint: formatAddress(ep), undelivered };
    }
    try {
      const response = await this.deps.tunnels()!.request({
        source: this.ctx.source!.tunnel,
        peer: {
          address: ep.address,
          port: this.deps.tunnelPort,
          ...(plan.expectedSpiffeId ? { expectedSpiffeId: plan.expectedSpiffeId } : {}),
        },
        headers: this.headersForTry(tunnelRequestHeaders(this.request, ep, client)),
        body,
        signal,
        onSent: () => {
          sent = performance.now();
          this.breaker?.sent();
          onSent?.();
        },
      });
      const undelivered = isUndelivered(response);
      if (undelivered) {
        // The peer's agent could not reach its app: the endpoint failed, nothing was delivered.
        this.lastError = String(response.headers[REASON_HEADER] ?? 'the app could not be reached');
        this.endpointFailed(chosen, this.lastError);
      } else this.answered(chosen, response, sent, signal);
      return {
        kind: 'response',
        response,
        chosen,
        endpoint: `tunnel ${ep.node} -> ${formatAddress(ep)}`,
        undelivered,
      };
    } catch (err) {
      chosen.active -= 1;
      const error = describeError(err);
      if (err instanceof TunnelStreamError && err.retryable) {
        // Nothing reached the peer's app (no session, a refused stream). After the try was cut
        // (a connect timeout already counted it) or the client left, it says nothing new.
        if (!signal.aborted) this.endpointFailed(chosen, error);
        const refused = err.reason !== 'no session' && err.reason !== 'session closed';
        return {
          kind: 'failed',
          outcome: refused ? 'refused-stream' : 'connect-failure',
          error,
          untouched: true,
        };
      }
      // The stream was open: the request may have reached the app.
      return {
        kind: 'failed',
        outcome: 'reset',
        error: `${this.target.service}: ${error}`,
        untouched: false,
      };
    }
  }

  /**
   * A try of a hedged request: the first attempt, then after the rule's delay (while no good
   * answer has come) a hedge to an endpoint not tried yet, up to maxHedges, each within the
   * budget. The first attempt that settles (hedge-decision.ts) wins: the others are cancelled
   * and their late answers dropped. A failure waits for the attempts still out; the last one
   * out ends the race with its outcome, for the retry decision. (An idle expiry before the head
   * cancels the attempt that started last: RequestTimers watches one try.)
   */
  private hedgedTry(
    chosen: EndpointState,
    plan: EndpointPlan,
    limit: ReturnType<typeof tryLimit>,
  ): Promise<TryResult> {
    const policy = this.hedge!;
    const parent = this.request.signal;
    return new Promise<TryResult>((resolve) => {
      const out = new Set<Attempt>();
      const hedges: Attempt[] = [];
      let failure: { attempt: Attempt; result: TryResult } | undefined;
      let timer: NodeJS.Timeout | undefined;
      let over = false;
      const cancelAll = (): void => {
        for (const a of out) a.cancel.abort();
      };
      parent.addEventListener('abort', cancelAll, { once: true });
      const finish = (attempt: Attempt, result: TryResult): void => {
        over = true;
        clearTimeout(timer);
        parent.removeEventListener('abort', cancelAll);
        // A cancelled attempt took at least this long: left out, the slow answers a hedge
        // beats would vanish from the p95, which would fall, and hedge ever more requests.
        const now = performance.now();
        for (const a of out) policy.latency?.observe(now - a.startedAt);
        cancelAll();
        this.last = attempt.chosen;
        for (const h of hedges)
          this.deps.resilience.hedged(
            this.target.service,
            this.routeName,
            h === attempt ? 'won' : 'lost',
          );
        resolve(result);
      };
      const launch = (
        to: EndpointState,
        toPlan: EndpointPlan,
        toLimit: ReturnType<typeof tryLimit>,
        body: L7Request['body'] | undefined,
        hedge: boolean,
      ): void => {
        const attempt: Attempt = {
          cancel: new AbortController(),
          chosen: to,
          startedAt: performance.now(),
        };
        out.add(attempt);
        if (hedge) hedges.push(attempt);
        const settled = (result: TryResult): void => {
          out.delete(attempt);
          if (over) {
            discard(result);
            return;
          }
          if (result.kind === 'response' && !result.undelivered)
            policy.latency?.observe(performance.now() - attempt.startedAt);
          if (settles(outcomeOf(result)) || out.size === 0) {
            if (failure !== undefined) discard(failure.result);
            finish(attempt, result);
            return;
          }
          // A failure while others are out: theirs may still be good.
          if (failure !== undefined) discard(failure.result);
          failure = { attempt, result };
        };
        // A try answers every failure as a result; a throw would be a bug, not a hang.
        this.guardedTry(to, toPlan, toLimit, attempt.cancel.signal, body).then(settled, (err) =>
          settled({
            kind: 'failed',
            outcome: 'reset',
            error: describeError(err),
            untouched: false,
          }),
        );
      };
      const arm = (): void => {
        if (hedges.length >= policy.maxHedges) return;
        const delay = hedgeDelayMs(policy);
        if (delay !== undefined) timer = setTimeout(fire, delay);
      };
      const fire = (): void => {
        if (over || parent.aborted) return;
        const next = this.hedgeTarget(out);
        if (next === undefined) return;
        launch(next.chosen, next.plan, next.limit, next.body, true);
        arm();
      };
      launch(chosen, plan, limit, this.body, false);
      arm();
    });
  }

  /**
   * Where a hedge goes and what it sends, once its gates pass (another endpoint, a kept whole
   * body, time left, circuitBreaker.maxRetries and the budget); undefined: no hedge now.
   */
  private hedgeTarget(out: ReadonlySet<Attempt>):
    | {
        chosen: EndpointState;
        plan: EndpointPlan;
        limit: ReturnType<typeof tryLimit>;
        body: L7Request['body'] | undefined;
      }
    | undefined {
    // The body goes out again only when the client has sent all of it and it was kept.
    if (this.body !== undefined && !this.replay!.whole()) return undefined;
    const next = this.choose();
    if (next === undefined) return undefined;
    for (const a of out) if (a.chosen === next) return undefined;
    const plan = planEndpoint({
      endpointNode: next.endpoint.node,
      thisNode: this.deps.state.node,
      sourceSpiffeId: this.ctx.source?.tunnel.spiffeId,
      tunnels: this.deps.tunnels() !== undefined,
    });
    if (plan.kind === 'no_identity') return undefined;
    const limit = tryLimit(performance.now(), this.deadlineAt, this.perTryMs);
    if (limit !== undefined && limit.ms <= 0) return undefined;
    const service = this.service;
    const max = service?.policy.maxRetries;
    if (!this.retrying && max !== undefined && service!.retrying.count >= max) {
      this.deps.resilience.hedged(this.target.service, this.routeName, 'denied');
      return undefined;
    }
    if (!this.hedgeBudget!.withdraw()) {
      this.deps.resilience.hedged(this.target.service, this.routeName, 'denied');
      return undefined;
    }
    if (service !== undefined && !this.retrying) {
      this.retrying = true;
      service.retrying.count += 1;
    }
    this.tried.add(next);
    return {
      chosen: next,
      plan,
      limit,
      body: this.body === undefined ? undefined : this.replay!.replay(),
    };
  }

  /** The request's fields for a try: grpc-timeout reduced by the time spent so far. */
  private headersForTry<T extends object>(headers: T): T {
    if (!this.carryDeadline) return headers;
    const left = this.deadlineAt! - performance.now();
    return { ...headers, 'grpc-timeout': formatGrpcTimeout(left) };
  }

  /** The last try's result as the client's answer. */
  private final(result: TryResult): Exchanged {
    if (result.kind === 'response') {
      const { chosen, response } = result;
      const timers = this.timers;
      timers?.afterHead(response.body);
      return {
        response,
        endpoint: result.endpoint,
        done: () => {
          chosen.active -= 1;
          timers?.clear();
          this.releaseRetry();
        },
      };
    }
    this.timers?.clear();
    this.releaseRetry();
    if (result.kind === 'timeout') return this.answer(result.which, result.error);
    if (result.outcome === 'reset') return this.answer('upstream_failed', result.error);
    return this.answer('no_healthy_endpoint', this.lastError);
  }

  private timedOut(which: TimeoutKind): TryResult {
    this.deps.resilience.timedOut(this.target.service, this.routeName, which);
    return {
      kind: 'timeout',
      which,
      error: `${which.replace('_', ' ')} of ${this.target.service}`,
    };
  }

  /** A request-level timer fired (the deadline or idle time) after the response head. */
  private expired(kind: TimeoutKind, body: Readable | undefined): void {
    this.deps.resilience.timedOut(this.target.service, this.routeName, kind);
    body?.destroy(new WeftError('WEFT_E_UNAVAILABLE', `${kind.replace('_', ' ')}: response cut`));
  }

  private releaseRetry(): void {
    if (!this.retrying) return;
    this.retrying = false;
    this.service!.retrying.count -= 1;
  }

  /**
   * An endpoint answered (not an undelivered answer: that is a failure of its own): outlier
   * detection counts a 5xx as its failure (Envoy's consecutive 5xx; a gRPC status travels in
   * trailers and is not judged), anything else as a success (a half-open endpoint's probe
   * reports here, on either path); the balancer gets its latency. The one place a try's answer
   * is counted: the retry decision reads the same answer and counts nothing. A try already cut
   * (its timeout, counted where it fired) or abandoned by the client says nothing of the
   * endpoint, not even the 502 the inbound stack answers a request whose caller left. Nor does
   * a shed (the receiving agent's 503 `overloaded`): it is load, not a broken endpoint, and its
   * latency is the agent's, not the app's (a fast shed would draw more traffic to it).
   */
  private answered(
    chosen: EndpointState,
    response: L7Response,
    sentAt: number,
    signal: AbortSignal,
  ): void {
    if (signal.aborted || isShed(response)) return;
    if (response.status >= 500) this.endpointFailed(chosen, `answered ${response.status}`);
    else chosen.succeeded();
    chosen.observe(performance.now() - sentAt, this.now());
  }

  /** Passive failure accrual: enough failures in a row eject the endpoint for a while. */
  private endpointFailed(chosen: EndpointState, err: string): void {
    if (chosen.failed(this.now())) this.ejected(chosen, err);
  }

  private ejected(chosen: EndpointState, err: string): void {
    this.deps.log.warn(
      { service: this.target.service, endpoint: chosen.endpoint.workload, err },
      'endpoint ejected',
    );
  }

  private answer(reason: AgentReason, detail: string): Exchanged {
    return {
      response: agentAnswer({ reason, detail, grpc: this.grpc }),
      endpoint: undefined,
      done: () => {},
    };
  }
}

/** What the retry decision sees of a try. */
function outcomeOf(result: TryResult): AttemptOutcome {
  if (result.kind === 'failed') return { kind: result.outcome };
  if (result.kind === 'timeout') return { kind: 'per-try-timeout' };
  if (result.undelivered) return { kind: 'connect-failure' };
  const { status, headers } = result.response;
  const raw = headers['grpc-status'];
  const grpc = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : undefined;
  if (isShed(result.response))
    return { kind: 'response', status, grpcStatus: grpc, overloaded: true };
  return { kind: 'response', status, grpcStatus: grpc };
}

/** A try that is not the answer: its response is dropped and its endpoint released. */
function discard(result: TryResult): void {
  if (result.kind !== 'response') return;
  result.chosen.active -= 1;
  result.response.body.on('error', () => {});
  result.response.body.destroy();
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** The receiving agent shed it (adaptive concurrency): its app never saw it. */
function isShed(response: L7Response): boolean {
  const reason: CloseReason = 'overloaded';
  return response.headers[REASON_HEADER] === reason;
}

/** An answer from an agent that reached no app (see UNDELIVERED_HEADER). */
function isUndelivered(response: L7Response): boolean {
  return response.headers[UNDELIVERED_HEADER] === 'connect_failed';
}
