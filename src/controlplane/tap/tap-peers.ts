// Asks the peer replicas (replicas/replica-directory.ts) to run a tap on their own agents: one
// Admin Tap call per peer with local_only set, made with this replica's admin credentials,
// which the peer checks as it checks any admin's (its CA is the same). Each call is answered
// by the peer's headers once its tap started (started), by FAILED_PRECONDITION when it has no
// agent for it (refused), or by nothing usable within ANSWER_MS (unreachable).
import * as grpc from '@grpc/grpc-js';
import { WeftAdminClient } from '../../api/admin-client.js';
import type { TapBatch, TapRequest } from '../../api/messages.js';
import type { ReplicaDirectory } from '../replicas/replica-directory.js';
import type { PeerAnswer } from './tap-plan.js';

/** How long a peer has to start its part of a tap (it reads the store, then answers). */
const ANSWER_MS = 5_000;

export interface PeerTap {
  answer: PeerAnswer;
  /** The peer's stream of its agents' batches (relayed while the answer is started). */
  call: grpc.ClientReadableStream<TapBatch>;
  client: WeftAdminClient;
}

export class TapPeers {
  constructor(
    private readonly directory: Pick<ReplicaDirectory, 'peers'>,
    /** This replica's admin credentials (the data directory's admin/). */
    private readonly credentialsDir: string,
  ) {}

  /** Opens the tap on every peer registered now; resolves once each answered or timed out. */
  async open(request: TapRequest, admin: string): Promise<PeerTap[]> {
    const peers = await this.directory.peers();
    return Promise.all(peers.map((peer) => this.ask(peer.address, request, admin)));
  }

  private ask(replica: string, request: TapRequest, admin: string): Promise<PeerTap> {
    const client = WeftAdminClient.open({ server: replica, credentialsDir: this.credentialsDir });
    const metadata = new grpc.Metadata();
    metadata.set('weft-tap-for', admin); // for the peer's log only: it authorizes this replica
    const call = client.tap(request, metadata);
    call.on('end', () => client.close());
    return new Promise((resolve) => {
      let answered = false;
      const answer = (a: PeerAnswer) => {
        if (answered) return;
        answered = true;
        clearTimeout(timer);
        call.off('error', onError);
        call.off('metadata', onMetadata);
        if (a.kind === 'started') {
          call.on('error', () => client.close());
        } else {
          call.on('error', () => {});
          call.cancel();
          client.close();
        }
        resolve({ answer: a, call, client });
      };
      const onMetadata = () => answer({ kind: 'started', replica });
      const onError = (err: grpc.ServiceError) =>
        answer(
          err.code === grpc.status.FAILED_PRECONDITION
            ? { kind: 'refused', replica, message: err.details }
            : { kind: 'unreachable', replica, message: err.details || err.message },
        );
      const timer = setTimeout(
        () => answer({ kind: 'unreachable', replica, message: `no answer within ${ANSWER_MS} ms` }),
        ANSWER_MS,
      );
      call.on('metadata', onMetadata);
      call.on('error', onError);
    });
  }
}

/** Ends the peers' parts of a tap (the admin left, or the tap was refused). */
export function stopPeerTaps(peers: readonly PeerTap[]): void {
  for (const peer of peers) {
    if (peer.answer.kind !== 'started') continue;
    peer.call.cancel();
    peer.client.close();
  }
}
