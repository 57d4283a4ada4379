// The outbound path's decisions, as pure functions of what the earlier stages learned: what a
// routed destination means (refuse, pass through, or a mesh service port and which stack
// serves it), which stack a detected protocol goes to, and how one chosen endpoint is reached.
// The executors (stack.ts, opaque.ts, ../http/outbound-*.ts) do what these name.

import type { ServicePort } from '../../api/resources/index.js';
import { nodeSpiffeId, parseSpiffeId } from '../../api/spiffe.js';
import type { ServiceView } from '../../controlplane-client/mesh-view.js';
import type { Detected } from './detect.js';
import type { OutboundRoute } from './route.js';

/** A Service port's `protocol`, as the API accepts it. */
export type PortProtocol = ServicePort['protocol'];

export type OutboundPlan =
  /** Reset at once and recorded: a VIP port that does not exist, or outbound policy refuse. */
  | { kind: 'refuse'; dst_service: string; close_reason: 'no_such_port' | 'refused'; error: string }
  /** Not the mesh's: straight to the original destination (outbound policy passthrough). */
  | { kind: 'passthrough' }
  /** A mesh service port, served opaque (tcp) or after looking at the first bytes. */
  | {
      kind: 'mesh';
      service: ServiceView;
      port: ServicePort;
      via: 'vip' | 'endpoint';
      protocol: 'opaque' | 'detect';
    };

export function planOutbound(route: OutboundRoute): OutboundPlan {
  switch (route.kind) {
    case 'no_such_port':
      return {
        kind: 'refuse',
        dst_service: route.service.name,
        close_reason: 'no_such_port',
        error: route.reason,
      };
    case 'refuse':
      return {
        kind: 'refuse',
        dst_service: 'external',
        close_reason: 'refused',
        error: route.reason,
      };
    case 'passthrough':
      return { kind: 'passthrough' };
    case 'service':
      return {
        kind: 'mesh',
        service: route.service,
        port: route.port,
        via: route.via,
        // tcp is opaque by declaration: no byte is read, server-speaks-first protocols work.
        protocol: route.port.protocol === 'tcp' ? 'opaque' : 'detect',
      };
  }
}

export type StackChoice =
  | { stack: 'http'; version: 'http1' | 'http2' }
  | { stack: 'opaque'; why: string; sni?: string };

/**
 * HTTP/1.x and HTTP/2 (prior knowledge) go to the HTTP stack, per request; TLS (the app does
 * its own) and anything else stay opaque bytes, balanced per connection.
 */
export function chooseStack(detected: Detected): StackChoice {
  switch (detected.kind) {
    case 'http1':
    case 'http2':
      return { stack: 'http', version: detected.kind };
    case 'tls':
      return {
        stack: 'opaque',
        why: 'tls',
        ...(detected.sni === undefined ? {} : { sni: detected.sni }),
      };
    case 'opaque':
      return { stack: 'opaque', why: detected.why };
  }
}

export type EndpointPlan =
  /** On this host: no tunnel is crossed. */
  | { kind: 'local' }
  /** On another host: through the tunnel pool, to that host's agent (which must be `node`). */
  | { kind: 'tunnel'; expectedSpiffeId: string | undefined }
  /** Another host, and this one cannot open tunnels yet (no certificate). */
  | { kind: 'no_identity'; reason: string };

export interface EndpointFacts {
  /** The endpoint's node and this host's. */
  endpointNode: string;
  thisNode: string;
  /** The caller's SPIFFE ID (a workload's or the node's); undefined before joining. */
  sourceSpiffeId: string | undefined;
  /** The tunnel pool exists (this host has its node certificate). */
  tunnels: boolean;
}

export function planEndpoint(f: EndpointFacts): EndpointPlan {
  if (f.endpointNode === f.thisNode) return { kind: 'local' };
  if (f.sourceSpiffeId === undefined || !f.tunnels) {
    return {
      kind: 'no_identity',
      reason: 'this host has no certificate yet: it has not joined the control plane',
    };
  }
  return { kind: 'tunnel', expectedSpiffeId: peerNodeIdentity(f.sourceSpiffeId, f.endpointNode) };
}

/** The node identity the endpoint's agent must present: the caller's trust domain, its host. */
export function peerNodeIdentity(sourceSpiffeId: string, node: string): string | undefined {
  let byNode = peerIdentities.get(sourceSpiffeId);
  const known = byNode?.get(node);
  if (known !== undefined) return known;
  const td = parseSpiffeId(sourceSpiffeId)?.trustDomain;
  const id = td === undefined ? undefined : nodeSpiffeId(td, node);
  if (id === undefined) return undefined;
  if (byNode === undefined) {
    if (peerIdentities.size >= MEMO_MAX) peerIdentities.clear();
    byNode = new Map();
    peerIdentities.set(sourceSpiffeId, byNode);
  }
  if (byNode.size >= MEMO_MAX) byNode.clear();
  byNode.set(node, id);
  return id;
}

// peerNodeIdentity's answers by (source identity, node): it runs per HTTP request, and its
// four regular expressions cost about 1.5 % of the calling agent's CPU on the L7 path. Both
// keys come from the mesh's own state (workload identities, node names); bounded anyway.
const peerIdentities = new Map<string, Map<string, string>>();
const MEMO_MAX = 4096;
