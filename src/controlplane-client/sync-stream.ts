// One Sync stream from open to end: Hello with the version the agent holds, then for each
// SyncResponse an Ack or a Nack (in order: a version is acknowledged only after it is on
// disk), and a Heartbeat every interval. Reconnecting is the caller's job.
import type { SyncRequest, SyncResponse, WorkloadHealth } from '../api/messages.js';
import { loadProto, type SyncClient } from '../api/proto.js';
import { acceptedEncodings, inflateResponse } from '../api/sync-encoding.js';
import { describeError } from '../errors.js';
import type { SyncDelta } from './snapshot.js';

export type Verdict = { accepted: true } | { accepted: false; reason: string; resync: boolean };

export interface StreamHandlers {
  /** The version held now (0: none), sent in Hello. */
  heldVersion(): number;
  /** Local workload health for the Heartbeat. */
  heartbeat(): WorkloadHealth[];
  /** Validates, applies and persists one response. */
  apply(delta: SyncDelta): Promise<Verdict>;
  /** A control message (a tap start or stop): no version, no Ack; `send` answers on this stream. */
  control?(message: SyncResponse, send: (message: SyncRequest) => void): void;
}

/** Whether a response is a control message rather than a version (proto fields from 20). */
export function isControl(msg: SyncResponse): boolean {
  return Boolean(msg.tapStart || msg.tapStop);
}

export interface StreamEnd {
  /** SyncResponses received: > 0 means the stream was healthy for a while. */
  received: number;
  /** Why the stream failed (a grpc-js ServiceError, mostly). */
  error?: Error;
  /** The agent ended it to start over with a fresh Hello; why. */
  resync?: string;
}

export interface SyncStream {
  done: Promise<StreamEnd>;
  /** Sends a Heartbeat now (e.g. a workload's health changed). */
  heartbeatNow(): void;
  /** Sends a message of the agent's own (stats, host facts); false when the stream is over. */
  send(msg: SyncRequest): boolean;
  cancel(): void;
}

export function openSyncStream(
  client: SyncClient,
  options: { agentVersion: string; heartbeatIntervalMs: number },
  handlers: StreamHandlers,
): SyncStream {
  const call = client.stream();
  let received = 0;
  let ended = false;
  let resyncing = false;
  let queue = Promise.resolve();
  const write = (msg: SyncRequest): boolean => {
    if (ended || resyncing) return false;
    call.write(msg);
    return true;
  };
  const heartbeatNow = () => {
    write({ heartbeat: { workloads: handlers.heartbeat() } });
  };

  const done = new Promise<StreamEnd>((resolve) => {
    const finish = (end: Omit<StreamEnd, 'received'>) => {
      if (ended) return;
      ended = true;
      clearInterval(timer);
      clearTimeout(graceTimer);
      call.cancel();
      // Let a response being persisted finish first, so the held version is final.
      void queue.then(() => resolve({ received, ...end }));
    };
    const resync = (reason: string) => {
      // The Nack was just written: half-close and give it a moment to reach the control plane
      // (it shows in ListNodes) before the stream is torn down; later responses are ignored.
      resyncing = true;
      call.end();
      graceTimer = setTimeout(() => finish({ resync: reason }), 300);
    };
    call.on('data', (msg: SyncResponse) => {
      if (resyncing) return;
      if (isControl(msg)) {
        handlers.control?.(msg, write);
        return;
      }
      received += 1;
      // Responses are handled strictly one after another: each applies on top of the last.
      queue = queue.then(() => handle(msg, handlers, write, resync));
    });
    call.on('error', (error) => finish({ error }));
    call.on('end', () => finish({ error: new Error('the control plane ended the sync stream') }));
  });
  let graceTimer: NodeJS.Timeout | undefined;

  write({
    hello: {
      version: handlers.heldVersion(),
      agentVersion: options.agentVersion,
      // Large responses may then come compressed (a control plane of an earlier release
      // ignores the field and sends them plain, which this agent reads as well).
      acceptEncodings: acceptedEncodings(),
    },
  });
  // Control messages are understood here: the control plane may send them on this stream.
  if (handlers.control) write({ tapReady: {} });
  heartbeatNow();
  const timer = setInterval(heartbeatNow, options.heartbeatIntervalMs);
  timer.unref();
  return { done, heartbeatNow, send: write, cancel: () => call.cancel() };
}

async function handle(
  msg: SyncResponse,
  handlers: StreamHandlers,
  write: (msg: SyncRequest) => boolean,
  resync: (reason: string) => void,
): Promise<void> {
  let delta: SyncDelta;
  try {
    delta = toDelta(msg);
  } catch (err) {
    // Nothing applied: the agent keeps its version and says why (`weft get nodes`).
    write({ nack: { version: msg.version, reason: describeError(err) } });
    return;
  }
  const verdict = await handlers.apply(delta);
  if (verdict.accepted) {
    write({ ack: { version: delta.version } });
    return;
  }
  write({ nack: { version: delta.version, reason: verdict.reason } });
  // The agent and the control plane disagree on the base: a new stream with a fresh Hello
  // makes the control plane send a delta from what the agent really holds (or a full one).
  if (verdict.resync) resync(verdict.reason);
}

/** A response as a delta to apply; a compressed one is inflated first (throws if it cannot be). */
export function toDelta(received: SyncResponse): SyncDelta {
  const msg = inflateResponse(received, decodeResponse);
  return {
    version: msg.version,
    baseVersion: msg.baseVersion,
    full: msg.full,
    upserts: msg.upserts.map((r) => ({
      kind: r.kind,
      name: r.name,
      json: r.json,
      revision: r.revision,
    })),
    removals: msg.removals.map((r) => ({ kind: r.kind, name: r.name })),
    trustBundlePem: msg.trustBundlePem,
  };
}

function decodeResponse(body: Buffer): SyncResponse {
  return loadProto().Sync.service.Stream!.responseDeserialize(body) as SyncResponse;
}
