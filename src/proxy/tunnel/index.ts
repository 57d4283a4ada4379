// The tunnel between agents (HBONE-style HTTP/2 CONNECT over mTLS on 15008): the receiving
// server and the sending pool, and the shapes they share.
export { formatAuthority, parseAuthority } from './authority.js';
export {
  CLIENT_ADDRESS_HEADER,
  type ClientAddressParse,
  callerAddressProblem,
  formatClientAddress,
  parseClientAddress,
  type VouchedClient,
  vouchedClient,
} from './client-address.js';
export type { TunnelRequestBody } from './client-request.js';
export { TunnelStreamError } from './client-session.js';
export {
  type ConnectedTarget,
  type ConnectTarget,
  type ConnectTargetOptions,
  connectLocal,
  REASON_HEADER,
} from './connect-stream.js';
export { DEFAULT_FLOW_CONTROL, type FlowControl } from './flow-control.js';
export { DEFAULT_KEEPALIVE, type KeepAlive } from './keepalive.js';
export { hostAddressCheck, type LocalAddressCheck } from './local-addresses.js';
export { resetStream, type SpliceResult, splice } from './splice.js';
export {
  type TunnelHttpRequest,
  type TunnelOpenRequest,
  TunnelPool,
  type TunnelPoolOptions,
  type TunnelPoolStats,
  type TunnelStream,
} from './tunnel-pool.js';
export {
  AGENT_PORTS,
  type PeerVerdict,
  type RefusalReason,
  startTunnelServer,
  TUNNEL_PORT,
  type TunnelRequestHandler,
  type TunnelRequestOutcome,
  type TunnelServer,
  type TunnelServerOptions,
  type TunnelServerStats,
  type TunnelStreamObserver,
  type TunnelStreamStart,
} from './tunnel-server.js';
export type * from './types.js';
