// gRPC handler of the Sync service: authenticates the node (a certificate that is not revoked,
// of a node the store still knows), then hands the stream to a SyncSession. Streams are kept
// by node so that removing a node ends its streams at once. Responses are pre-serialized
// Buffers (encoded once by the hub for all streams), so the service definition's serializer
// lets Buffers through untouched.
import type * as grpc from '@grpc/grpc-js';
import type { SyncRequest, SyncResponse, TapBatch } from '../../api/messages.js';
import type { NodeRecord } from '../identity/node-record.js';
import type { RevocationLookup } from '../identity/revocation-list.js';
import { Refusal } from '../refusal.js';
import { nodeKey } from '../store/keys.js';
import type { Store } from '../store/store.js';
import { type SyncCall, SyncSession, type SyncSessionDeps } from '../sync/sync-session.js';
import { type HandlerContext, refusalStatus, statusFor } from './handler.js';
import { requireNode } from './peer-identity.js';

/** The Sync service definition with a Buffer pass-through serializer, and the real encoder. */
export function syncServiceDefinition(service: grpc.ServiceDefinition): {
  definition: grpc.ServiceDefinition;
  encode(message: SyncResponse): Buffer;
} {
  const stream = service.Stream!;
  const encode = stream.responseSerialize as (message: SyncResponse) => Buffer;
  const definition: grpc.ServiceDefinition = {
    ...service,
    Stream: {
      ...stream,
      responseSerialize: (value: unknown) =>
        Buffer.isBuffer(value) ? value : encode(value as SyncResponse),
    },
  };
  return { definition, encode };
}

/** The open sync streams, by node. */
export class SyncStreams {
  private readonly byNode = new Map<string, Map<SyncSession, SyncCall>>();
  /** Streams whose agent said it runs taps (TapReady): only they get control messages. */
  private readonly tapReady = new WeakSet<SyncCall>();

  add(node: string, session: SyncSession, call: SyncCall): void {
    let streams = this.byNode.get(node);
    if (streams === undefined) {
      streams = new Map();
      this.byNode.set(node, streams);
    }
    streams.set(session, call);
    call.on('close', () => {
      streams.delete(session);
      if (streams.size === 0 && this.byNode.get(node) === streams) this.byNode.delete(node);
    });
  }

  /** A stream's agent runs taps. */
  markTapReady(call: SyncCall): void {
    this.tapReady.add(call);
  }

  /** The nodes with a sync stream open here whose agent runs taps. */
  tapNodes(): string[] {
    return [...this.byNode.entries()]
      .filter(([, streams]) => [...streams.values()].some((c) => this.tapReady.has(c)))
      .map(([node]) => node);
  }

  /** Writes a control message (a tap start or stop) on `node`'s tap-ready streams; how many. */
  control(node: string, message: Pick<SyncResponse, 'tapStart' | 'tapStop'>): number {
    let n = 0;
    for (const call of this.byNode.get(node)?.values() ?? []) {
      if (!this.tapReady.has(call)) continue;
      (call as grpc.ServerDuplexStream<SyncRequest, unknown>).write(message);
      n += 1;
    }
    return n;
  }

  /** Ends every stream of `node` with `refusal` as its status (the agent sees why). */
  endNode(node: string, refusal: Refusal): number {
    const streams = this.byNode.get(node);
    if (streams === undefined) return 0;
    this.byNode.delete(node);
    for (const call of streams.values()) call.emit('error', refusalStatus(refusal));
    return streams.size;
  }

  /**
   * Ends every stream from the server side (shutdown) with `refusal` as its status, so that
   * agents read why (a replica stopping: go to another now).
   */
  endAll(refusal: Refusal): void {
    const calls = [...this.byNode.values()].flatMap((streams) => [...streams.values()]);
    this.byNode.clear();
    for (const call of calls) call.emit('error', refusalStatus(refusal));
  }
}

export interface SyncHandlerDeps extends SyncSessionDeps, HandlerContext {
  trustDomain: string;
  store: Store;
  revocations: RevocationLookup;
  streams: SyncStreams;
  /** The agent version a node's Hello names (recorded for `weft get nodes`). */
  onAgentVersion(node: string, version: string): Promise<void>;
  /** `weft tap`: agents' tap records, and new tap-ready streams (a tap restarts on them). */
  taps?: { batch(node: string, batch: TapBatch): void; streamOpened(node: string): void };
}

export function syncHandlers(deps: SyncHandlerDeps): grpc.UntypedServiceImplementation {
  const refuse = (call: SyncCall, err: unknown) => call.emit('error', statusFor(err, 'Sync', deps));
  return {
    Stream: (call: SyncCall) => {
      let node: string;
      try {
        node = requireNode(call, deps.trustDomain, deps.revocations);
      } catch (err) {
        refuse(call, err);
        return;
      }
      // Messages wait in the stream (paused) until the session listens.
      deps.store.get<NodeRecord>(nodeKey(node)).then(
        (record) => {
          if (call.cancelled) return;
          if (record === undefined) {
            refuse(
              call,
              new Refusal(
                'node_unknown',
                `node ${node} is not joined to this control plane: join again with a new token`,
              ),
            );
            return;
          }
          const session = new SyncSession(call, node, deps);
          deps.streams.add(node, session, call);
          call.on('data', (req: SyncRequest) => {
            if (req.tapBatch) deps.taps?.batch(node, req.tapBatch);
            if (req.tapReady) {
              deps.streams.markTapReady(call);
              deps.taps?.streamOpened(node);
            }
            if (req.hello?.agentVersion)
              deps
                .onAgentVersion(node, req.hello.agentVersion)
                .catch((err: unknown) => deps.log.debug({ err, node }, 'agent version not kept'));
          });
        },
        (err: unknown) => refuse(call, err),
      );
    },
  };
}
