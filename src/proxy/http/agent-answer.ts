// Responses the agent makes itself, on either side (no endpoint, denied, the app unreachable, a
// bad request): one format. HTTP: the reason's status, `weft-reason: <reason>` (a word of
// close-reason.ts, for scripts and the caller's agent) and a one-line text body
// `weft: <what happened>`. gRPC: a trailers-only response (HTTP 200, grpc-status and
// grpc-message in the headers), which is how a gRPC server reports an error before any
// message (gRPC over HTTP/2, "Trailers-Only"), with the same weft-reason. A rate limit's 429
// (or RESOURCE_EXHAUSTED) also says when to come back, in retry-after; a shed gRPC request
// asks its client not to retry (grpc-retry-pushback-ms: -1).
import { Readable } from 'node:stream';
import { type AnswerReason, answerStatus } from '../close-reason.js';
import type { HeaderMap, L7Response } from './types.js';
import { REASON_HEADER, UNDELIVERED_HEADER } from './wire-headers.js';

export interface AgentAnswerSpec {
  /** Why: the status follows from it (answerStatus), and it is sent as weft-reason. */
  reason: AnswerReason;
  /** What happened, in words: the body (HTTP) or grpc-message (gRPC), after "weft: ". */
  detail: string;
  /** Answer as a gRPC server would (trailers-only with the reason's gRPC status). */
  grpc: boolean;
  /** The request reached no app (its connect failed): the caller's agent may try another. */
  undelivered?: boolean;
  /** Whole seconds until the caller may try again (a rate limit's answer): sent as retry-after. */
  retryAfter?: number;
  /**
   * Ask gRPC clients not to retry (gRFC A6: a negative grpc-retry-pushback-ms), for an
   * overloaded service's shed; gRPC answers only (an HTTP answer's weft-reason says it).
   */
  noRetry?: boolean;
  /**
   * A configured status over the reason's own (a route's fault abort): the HTTP status, or
   * with `grpc` the gRPC status.
   */
  status?: number;
}

/** An answer's status, header fields and body text: the one format, as plain data. */
export interface AgentAnswerParts {
  status: number;
  headers: HeaderMap;
  /** The text body (HTTP); empty for gRPC, whose answer is trailers-only. */
  text: string;
}

/** Bounded: a detail is a line for a person, not a dump (an error may quote a whole header). */
const MAX_DETAIL = 200;

export function agentAnswerParts(spec: AgentAnswerSpec): AgentAnswerParts {
  const { http, grpc } = answerStatus(spec.reason);
  const message = `weft: ${oneLine(spec.detail)}`;
  const mark: HeaderMap = spec.undelivered ? { [UNDELIVERED_HEADER]: 'connect_failed' } : {};
  if (spec.retryAfter !== undefined) mark['retry-after'] = String(spec.retryAfter);
  if (spec.grpc) {
    return {
      status: 200,
      headers: {
        'content-type': 'application/grpc',
        'grpc-status': String(spec.status ?? grpc),
        'grpc-message': grpcMessage(message),
        [REASON_HEADER]: spec.reason,
        ...(spec.noRetry ? { 'grpc-retry-pushback-ms': '-1' } : {}),
        ...mark,
      },
      text: '',
    };
  }
  const text = `${message}\n`;
  return {
    status: spec.status ?? http,
    headers: {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': String(Buffer.byteLength(text)),
      [REASON_HEADER]: spec.reason,
      ...mark,
    },
    text,
  };
}

/** The answer as a response of the L7 engine, `reason` set (the record's close reason). */
export function agentAnswer(spec: AgentAnswerSpec): L7Response {
  const parts = agentAnswerParts(spec);
  return {
    status: parts.status,
    headers: parts.headers,
    body: Readable.from(parts.text === '' ? [] : [Buffer.from(parts.text)], { objectMode: false }),
    trailers: () => undefined,
    reason: spec.reason,
  };
}

/** gRPC's content types: application/grpc, application/grpc+proto, ... (not grpc-web). */
export function isGrpcContentType(contentType: string | string[] | undefined): boolean {
  const ct = (Array.isArray(contentType) ? contentType[0] : contentType)?.toLowerCase() ?? '';
  return (
    ct === 'application/grpc' ||
    ct.startsWith('application/grpc+') ||
    ct.startsWith('application/grpc;')
  );
}

/** A gRPC request: its content-type is application/grpc, or application/grpc+proto etc. */
export function isGrpc(headers: HeaderMap): boolean {
  return isGrpcContentType(headers['content-type']);
}

/** Control characters (a newline from an error's text) would break the one line. */
function oneLine(text: string): string {
  const line = text.replace(/\p{Cc}+/gu, ' ');
  return line.length > MAX_DETAIL ? `${line.slice(0, MAX_DETAIL - 3)}...` : line;
}

/**
 * grpc-message (gRPC over HTTP/2, "Responses"): the UTF-8 bytes of the text, each one outside
 * printable ASCII, and `%` itself, percent-encoded as %XX; nothing else is (unlike
 * encodeURIComponent, which also encodes spaces and punctuation the spec sends as they are).
 */
export function grpcMessage(text: string): string {
  let out = '';
  for (const byte of Buffer.from(text)) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
