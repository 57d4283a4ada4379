// One agent's sync stream. Hello{version} -> a delta from that version when the hub still has
// the history, else a full snapshot; then every batch the hub publishes. Ack records the
// version the agent holds; Nack records the reason and rewinds the stream to the last version
// the agent acknowledged, so the next push is a delta the agent can apply on what it really
// holds. A stream whose socket is full is not written to until it drains, then it gets one
// merged catch-up: a slow agent costs memory for one message, not for every change. A full
// snapshot waits for a slot of the FullSnapshotGate (a bounded number on the wire at once),
// and is taken from the hub only when the slot is granted, so it is the newest.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { HostFacts, StatsReport, SyncRequest } from '../../api/messages.js';
import { chooseEncoding, type SyncEncoding } from '../../api/sync-encoding.js';
import type { ControlPlaneMetrics } from '../metrics.js';
import type { EncodedResponse } from './encoded-response.js';
import type { FullSnapshotGate } from './full-snapshot-gate.js';
import type { NodeHealth } from './node-health.js';
import type { NodeLiveness } from './node-liveness.js';
import type { SyncBatch, SyncHub, SyncSubscriber } from './sync-hub.js';

export interface SyncSessionDeps {
  hub: SyncHub;
  liveness: NodeLiveness;
  health: NodeHealth;
  metrics: ControlPlaneMetrics;
  fullSnapshots: FullSnapshotGate;
  log: Logger;
  /** Where the agent's stats reports and host facts go (src/controlplane/stats). */
  reports?: AgentReports;
}

export interface AgentReports {
  stats(node: string, report: StatsReport): void;
  hostFacts(node: string, facts: HostFacts): void;
}

export type SyncCall = grpc.ServerDuplexStream<SyncRequest, Buffer>;

export class SyncSession implements SyncSubscriber {
  private readonly call: SyncCall;
  private readonly node: string;
  private readonly deps: SyncSessionDeps;
  private readonly log: Logger;
  /** The version the agent will hold after everything written so far; undefined before Hello. */
  private sentVersion: number | undefined;
  /** The last version the agent acknowledged on this stream (or said it held in Hello). */
  private ackedVersion = 0;
  private blocked = false;
  private behind = false;
  private unsubscribe: (() => void) | undefined;
  /** Set while the stream waits for, or holds, a full-snapshot slot. */
  private cancelFullSlot: (() => void) | undefined;
  private closed = false;
  /** How this stream's large responses go (Hello field 50); undefined: plain. */
  private encoding: SyncEncoding | undefined;

  constructor(call: SyncCall, node: string, deps: SyncSessionDeps) {
    this.call = call;
    this.node = node;
    this.deps = deps;
    this.log = deps.log.child({ node });
    deps.liveness.connected(node);
    call.on('data', (req: SyncRequest) => this.onRequest(req));
    call.on('end', () => this.close());
    call.on('cancelled', () => this.close());
    call.on('error', () => this.close());
    call.on('close', () => this.close());
    this.log.info('sync stream opened');
  }

  private onRequest(req: SyncRequest): void {
    const { liveness, metrics } = this.deps;
    liveness.seen(this.node);
    if (req.hello) {
      this.onHello(req.hello.version, req.hello.acceptEncodings);
    } else if (req.ack) {
      const version = req.ack.version;
      if (version > this.ackedVersion) this.ackedVersion = version;
      liveness.ack(this.node, version);
      metrics.syncAcks.inc();
    } else if (req.nack) {
      this.onNack(req.nack.version, req.nack.reason);
    } else if (req.heartbeat) {
      this.deps.health
        .heartbeat(this.node, req.heartbeat.workloads ?? [])
        .catch((err: unknown) => this.log.warn({ err }, 'heartbeat not applied'));
    } else if (req.stats) {
      this.deps.reports?.stats(this.node, req.stats);
    } else if (req.hostFacts) {
      this.deps.reports?.hostFacts(this.node, req.hostFacts);
    }
  }

  private onHello(version: number, acceptEncodings: readonly string[] | undefined): void {
    if (this.sentVersion !== undefined) return; // one Hello per stream; later ones are ignored
    this.encoding = chooseEncoding(acceptEncodings);
    this.ackedVersion = version;
    this.sentVersion = version;
    this.unsubscribe = this.deps.hub.subscribe(this);
    this.catchUp();
  }

  private onNack(version: number, reason: string): void {
    this.deps.liveness.nack(this.node, version, reason);
    this.deps.metrics.syncNacks.inc();
    this.log.warn(
      { version, reason, keptVersion: this.ackedVersion },
      'agent rejected a sync version',
    );
    // The agent stays on what it acknowledged last: later pushes must build on that.
    if (this.sentVersion !== undefined && this.sentVersion > this.ackedVersion)
      this.sentVersion = this.ackedVersion;
  }

  offer(batch: SyncBatch): void {
    if (this.sentVersion === undefined || this.closed) return;
    if (this.blocked) {
      this.behind = true;
      return;
    }
    if (this.sentVersion >= batch.version) return;
    if (this.sentVersion === batch.base && batch.encoded !== undefined) {
      this.write(batch.encoded);
      this.deps.metrics.syncLatency.observe((Date.now() - batch.committedAt) / 1000);
    } else {
      this.catchUp();
    }
  }

  reset(): void {
    if (this.sentVersion === undefined) return;
    this.sentVersion = 0; // whatever the agent holds, a full snapshot replaces it
    this.catchUp();
  }

  private catchUp(): void {
    if (this.sentVersion === undefined || this.closed) return;
    if (this.cancelFullSlot) {
      // A full snapshot is waiting or on the wire: catch up after it.
      this.behind = true;
      return;
    }
    const response = this.deps.hub.responseFrom(this.sentVersion);
    if (!response.full) {
      this.write(response);
      return;
    }
    // Wait for a slot, counted as blocked: offers meanwhile only mark the stream behind, and
    // the snapshot it gets when its turn comes is the newest.
    this.blocked = true;
    this.cancelFullSlot = this.deps.fullSnapshots.acquire(
      (slot) => {
        if (this.closed || this.sentVersion === undefined) return slot.release();
        this.blocked = false;
        this.behind = false;
        const newest = this.deps.hub.responseFrom(this.sentVersion);
        this.write(newest, () => {
          this.cancelFullSlot = undefined;
          slot.release();
          if (this.behind && !this.blocked) {
            this.behind = false;
            this.catchUp();
          }
        });
      },
      () => {
        this.log.warn(
          'agent did not take its full snapshot in time: ending its stream (it will reconnect)',
        );
        // UNAVAILABLE: the agent reconnects with backoff.
        this.call.emit('error', {
          code: grpc.status.UNAVAILABLE,
          details: 'full snapshot not taken in time; reconnect',
        });
        this.close();
      },
    );
  }

  /**
   * `onWritten` runs once gRPC has handed the message to the connection. It does not run when
   * the write fails: gRPC then ends the call, and close() releases what the stream held.
   */
  private write(response: EncodedResponse, onWritten?: () => void): void {
    this.sentVersion = response.version;
    const bytes = response.bytes(this.encoding);
    this.deps.metrics.syncPushes.inc({ type: response.full ? 'full' : 'delta' });
    this.deps.metrics.syncPushBytes.inc(bytes.length);
    if (this.call.write(bytes, onWritten)) return;
    this.blocked = true;
    this.call.once('drain', () => {
      this.blocked = false;
      if (this.behind) {
        this.behind = false;
        if (this.sentVersion !== this.deps.hub.version) this.catchUp();
      }
    });
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    this.cancelFullSlot?.();
    this.deps.liveness.disconnected(this.node);
    this.log.info('sync stream closed');
  }

  /** Ends the stream from the server side (shutdown). */
  end(): void {
    if (this.closed) return;
    this.close();
    this.call.end();
  }
}
