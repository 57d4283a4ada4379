// Stage "protocol" of the outbound path: which stack serves a mesh service port's connection.
// A `tcp` port is opaque without reading a byte; any other port's first bytes are looked at
// (detect.ts: every byte read is put back, the socket left paused) and HTTP goes to the HTTP
// stack, TLS and anything else stay opaque.
import type { Socket } from 'node:net';
import { describeError } from '../../errors.js';
import type { DetectOptions, detectProtocol } from './detect.js';
import { chooseStack, type StackChoice } from './plan.js';

/** detect.ts's detectProtocol: resolves with what the first bytes are; never loses a byte. */
export type DetectProtocol = typeof detectProtocol;

export interface ProtocolStageDeps {
  /** Undefined: every port is served opaque (the behaviour before the L7 engine). */
  detect: DetectProtocol | undefined;
  /** How long a silent client is waited for before it is taken as opaque. */
  detectWindowMs: number;
}

export async function protocolOf(
  client: Socket,
  plan: { protocol: 'opaque' | 'detect'; port: { protocol: DetectOptions['protocol'] } },
  deps: ProtocolStageDeps,
): Promise<StackChoice> {
  if (plan.protocol === 'opaque') return { stack: 'opaque', why: 'declared tcp' };
  if (deps.detect === undefined) return { stack: 'opaque', why: 'no protocol detection' };
  try {
    const detected = await deps.detect(client, {
      protocol: plan.port.protocol,
      windowMs: deps.detectWindowMs,
    });
    return chooseStack(detected);
  } catch (err) {
    // A client gone during detection: the opaque stack records it as it finds it.
    return { stack: 'opaque', why: `detection failed: ${describeError(err)}` };
  }
}
