// `weft tap` through the control plane (Admin rpc Tap, admin certificate required): the broker
// starts the tap on the chosen agents with a TapStart on their sync streams, relays their
// TapBatch records to the admin's stream, and stops the tap on every agent (TapStop) as soon
// as the admin's call ends, however it ends. An agent whose stream reconnects mid-tap gets the
// TapStart again; a batch for a tap that is gone gets a TapStop back. With replicas sharing a
// store, the broker also asks every peer replica (tap-peers.ts) to run the same tap on its own
// agents (local_only) and relays their records: a tap through any replica reaches every agent.
import { randomUUID } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import type { TapBatch, TapRequest } from '../../api/messages.js';
import type { Workload } from '../../api/resources/index.js';
import { parseTapFilter, type TapFilter, tapFilterMessage } from '../../telemetry/tap-filter.js';
import { type HandlerContext, statusFor } from '../grpc/handler.js';
import { requireAdmin } from '../grpc/peer-identity.js';
import type { SyncStreams } from '../grpc/sync-handler.js';
import { Refusal } from '../refusal.js';
import { kindPrefix } from '../store/keys.js';
import type { Store } from '../store/store.js';
import { type PeerTap, stopPeerTaps, type TapPeers } from './tap-peers.js';
import { planTap } from './tap-plan.js';
import { tapTargets } from './tap-targets.js';

/** Batches queued for a slow admin client, at most (bytes): beyond, records are dropped, counted. */
const CLIENT_BUFFER_LIMIT = 1 << 20;

type TapCall = grpc.ServerWritableStream<TapRequest, TapBatch>;

interface ActiveTap {
  readonly call: TapCall;
  readonly admin: string;
  readonly filter: TapFilter;
  readonly nodes: ReadonlySet<string>;
  /** Records dropped here because the admin's client did not keep up, per node. */
  readonly unsent: Map<string, number>;
}

export interface TapBrokerDeps extends HandlerContext {
  trustDomain: string;
  store: Store;
  streams: SyncStreams;
  /** The peer replicas to ask (replicas sharing an etcd store); none with the file store. */
  peers?: TapPeers;
}

export class TapBroker {
  private readonly taps = new Map<string, ActiveTap>();

  constructor(private readonly deps: TapBrokerDeps) {}

  /** The Admin service's Tap handler. */
  readonly handler = (call: TapCall): void => {
    this.open(call).catch((err: unknown) => call.emit('error', statusFor(err, 'Tap', this.deps)));
  };

  /** Taps open now (for tests and metrics). */
  get size(): number {
    return this.taps.size;
  }

  private async open(call: TapCall): Promise<void> {
    const admin = requireAdmin(call, this.deps.trustDomain);
    const filter = parseTapFilter(call.request.filter);
    const { entries } = await this.deps.store.list<Workload>(kindPrefix('Workload'));
    const targets = tapTargets(
      { node: call.request.node ?? '', ...(filter.service ? { service: filter.service } : {}) },
      this.deps.streams.tapNodes(),
      entries.map(({ value }) => ({ node: value.spec.node, service: value.spec.service })),
    );
    // A peer asking for its admin runs the tap here only: it asks the other replicas itself.
    const peers: PeerTap[] =
      call.request.localOnly || this.deps.peers === undefined
        ? []
        : await this.deps.peers.open(
            { filter: call.request.filter, node: call.request.node ?? '', localOnly: true },
            admin,
          );
    const plan = planTap(
      targets,
      peers.map((p) => p.answer),
    );
    if (plan.kind === 'refuse' || call.cancelled) {
      stopPeerTaps(peers);
      if (plan.kind === 'refuse')
        throw new Refusal(plan.reason, plan.message, grpc.status.FAILED_PRECONDITION);
      return;
    }
    const id = randomUUID();
    const tap: ActiveTap = {
      call,
      admin,
      filter,
      nodes: new Set(plan.nodes),
      unsent: new Map(),
    };
    this.taps.set(id, tap);
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      this.taps.delete(id);
      stopPeerTaps(peers);
      for (const node of tap.nodes) this.deps.streams.control(node, { tapStop: { id } });
      this.deps.log.info({ tap: id, admin }, 'tap ended');
    };
    call.on('cancelled', end);
    call.on('close', end);
    call.on('error', end);
    call.on('finish', end);
    for (const node of tap.nodes) this.start(id, tap, node);
    for (const peer of peers) {
      if (peer.answer.kind !== 'started') continue;
      const replica = peer.answer.replica;
      peer.call.on('data', (batch: TapBatch) => this.relay(tap, batch.node, batch));
      peer.call.on('error', (err: grpc.ServiceError) => {
        if (ended || err.code === grpc.status.CANCELLED) return;
        // Its agents are no longer tapped (the replica stopped): said, not silently lost.
        this.relay(
          tap,
          `replica ${replica}`,
          emptyBatch(`its part of the tap ended: ${err.details}`),
        );
      });
      peer.call.on('end', () => {
        if (!ended)
          this.relay(
            tap,
            `replica ${replica}`,
            emptyBatch('its part of the tap ended (it stopped)'),
          );
      });
    }
    for (const down of plan.unreachable)
      this.relay(
        tap,
        `replica ${down.replica}`,
        emptyBatch(`could not ask it to tap its agents: ${down.message}`),
      );
    // Headers now: a replica that asked for this tap (local_only) learns that it started.
    call.sendMetadata(new grpc.Metadata());
    this.deps.log.info(
      {
        tap: id,
        admin,
        ...(call.request.localOnly ? { for: call.metadata.get('weft-tap-for')[0] } : {}),
        nodes: plan.nodes,
        peers: plan.peers,
        filter: tapFilterMessage(filter),
      },
      'tap started',
    );
  }

  private start(id: string, tap: ActiveTap, node: string): void {
    const message = { tapStart: { id, filter: tapFilterMessage(tap.filter) } };
    this.deps.streams.control(node, message);
  }

  /** A TapBatch from `node`'s sync stream. */
  batch(node: string, batch: TapBatch): void {
    const tap = this.taps.get(batch.tapId);
    if (tap === undefined || !tap.nodes.has(node)) {
      // The admin left (or this replica never ran that tap): the agent must stop it.
      this.deps.streams.control(node, { tapStop: { id: batch.tapId } });
      return;
    }
    this.relay(tap, node, batch);
  }

  /** Writes a node's batch to the admin's stream, or counts it dropped when the admin lags. */
  private relay(tap: ActiveTap, node: string, batch: TapBatch): void {
    const unsent = tap.unsent.get(node) ?? 0;
    if (tap.call.writableLength > CLIENT_BUFFER_LIMIT) {
      tap.unsent.set(node, unsent + batch.records.length);
      return;
    }
    tap.call.write({
      tapId: '',
      node,
      records: batch.records,
      dropped: batch.dropped + unsent,
      error: batch.error,
    });
  }

  /** A node's sync stream said it runs taps: taps that target it start on it (again). */
  streamOpened(node: string): void {
    for (const [id, tap] of this.taps) if (tap.nodes.has(node)) this.start(id, tap, node);
  }

  /** Ends every tap (shutdown). */
  endAll(): void {
    for (const tap of [...this.taps.values()]) tap.call.end();
  }
}

function emptyBatch(error: string): TapBatch {
  return { tapId: '', node: '', records: [], dropped: 0, error };
}
