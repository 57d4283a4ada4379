// node:http for the agent, through require, not an ESM import: to build an ESM namespace Node
// reads every export of the module, which runs http's lazy getters (WebSocket, CloseEvent,
// MessageEvent) and so loads Node's bundled undici (fetch, WebSocket): 7 MiB of each agent
// process that uses neither. Types still come from `import type ... from 'node:http'`.
import { createRequire } from 'node:module';

const http = createRequire(import.meta.url)('node:http') as typeof import('node:http');

export const { createServer, request, STATUS_CODES } = http;
