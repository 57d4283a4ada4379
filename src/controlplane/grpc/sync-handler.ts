// gRPC handler of the Sync service: authenticates the node, then hands the stream to a
// SyncSession. Responses are pre-serialized Buffers (encoded once by the hub for all streams),
// so the service definition's serializer lets Buffers through untouched.
import type * as grpc from '@grpc/grpc-js';
import type { SyncResponse } from '../../api/messages.js';
import { type SyncCall, SyncSession, type SyncSessionDeps } from '../sync/sync-session.js';
import { type HandlerContext, statusFor } from './handler.js';
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

export interface SyncHandlerDeps extends SyncSessionDeps, HandlerContext {
  trustDomain: string;
  sessions: Set<SyncSession>;
}

export function syncHandlers(deps: SyncHandlerDeps): grpc.UntypedServiceImplementation {
  return {
    Stream: (call: SyncCall) => {
      let node: string;
      try {
        node = requireNode(call, deps.trustDomain);
      } catch (err) {
        call.emit('error', statusFor(err, 'Sync', deps));
        return;
      }
      const session = new SyncSession(call, node, deps);
      deps.sessions.add(session);
      call.on('close', () => deps.sessions.delete(session));
    },
  };
}
