// The agent's DNS server: mesh names answered locally, the rest forwarded upstream.
export type { MeshAddresses, MeshResolve } from './mesh-answer.js';
export type { DnsServerOptions } from './options.js';
export { type DnsServer, type DnsServerAddress, startDnsServer } from './server.js';
