// The denial answers as real clients read them, on loopback: a @grpc/grpc-js client gets
// PERMISSION_DENIED with the decoded message from the trailers-only response, and an HTTP/2
// client gets 403 with weft-reason and the policy in the body. The server writes only the head of what agentAnswer
// returns, as one HEADERS frame that ends the stream (as the inbound tunnel adapter does).
import { once } from 'node:events';
import { connect, createServer, type Http2Server } from 'node:http2';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentAnswer, isGrpc } from '../../src/proxy/http/agent-answer.js';
import { endToEnd } from '../../src/proxy/http/wire-headers.js';
import { authorizeRequest, type NamedPolicy } from '../../src/proxy/inbound/authorize.js';

const denyDelete: NamedPolicy = {
  name: 'no-delete',
  spec: {
    targetRef: { kind: 'Service', name: 'orders' },
    action: 'DENY',
    rules: [
      { to: [{ grpc: [{ service: 'pkg.Orders', method: 'Delete' }] }, { paths: ['/admin*'] }] },
    ],
  },
};

let server: Http2Server;
let port: number;

beforeAll(async () => {
  server = createServer();
  server.on('stream', (stream, headers) => {
    const decision = authorizeRequest([denyDelete], {
      principal: 'spiffe://weft.local/svc/web',
      port: 8080,
      method: String(headers[':method']),
      path: String(headers[':path']),
    });
    if (decision.allow) {
      stream.respond({ ':status': 500 }, { endStream: true });
      return;
    }
    const answer = agentAnswer({
      reason: 'denied',
      detail: decision.reason,
      grpc: isGrpc(endToEnd(headers)),
    });
    // gRPC: one HEADERS frame that ends the stream (trailers-only); HTTP: the head, the text.
    const headersOnly = answer.headers['grpc-status'] !== undefined;
    stream.respond({ ':status': answer.status, ...answer.headers }, { endStream: headersOnly });
    if (!headersOnly) answer.body.pipe(stream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.close();
});

describe('a denied gRPC call', () => {
  it('fails with PERMISSION_DENIED and the policy named in the message', async () => {
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const err = await new Promise<grpc.ServiceError>((resolve, reject) => {
        client.makeUnaryRequest(
          '/pkg.Orders/Delete',
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.from('x'),
          (e, value) => (e ? resolve(e) : reject(new Error(`expected a denial, got ${value}`))),
        );
      });
      expect(err.code).toBe(grpc.status.PERMISSION_DENIED);
      expect(err.details).toBe('weft: denied by AuthorizationPolicy no-delete');
    } finally {
      client.close();
    }
  });
});

describe('a denied HTTP request', () => {
  it('gets 403 with weft-reason and the policy named in the body', async () => {
    const session = connect(`http://127.0.0.1:${port}`);
    try {
      const stream = session.request({ ':method': 'GET', ':path': '/admin/users?x=1' });
      stream.end();
      const [headers] = (await once(stream, 'response')) as [Record<string, string>];
      expect(headers[':status']).toBe(403);
      expect(headers['weft-reason']).toBe('denied');
      let body = '';
      stream.setEncoding('utf8').on('data', (c: string) => {
        body += c;
      });
      await once(stream, 'end');
      expect(body).toBe('weft: denied by AuthorizationPolicy no-delete\n');
    } finally {
      session.close();
    }
  });
});
