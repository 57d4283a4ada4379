// Which local socket owns a TCP 4-tuple, and which sockets listen on a TCP port, asked of the
// kernel over NETLINK_SOCK_DIAG (the interface `ss` uses), without scanning /proc.
#pragma once

#include <napi.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "inet-address.h"
#include "unique-fd.h"

namespace weft {

struct SocketOwner {
  uint32_t uid = 0;
  uint32_t inode = 0;
  std::optional<uint64_t> cgroup_id;  // INET_DIAG_CGROUP_ID, kernels >= 5.7
};

struct TcpListener {
  InetAddress local;  // the bound address and port (0.0.0.0 / :: for a wildcard)
  bool v6only = false;  // IPV6_V6ONLY: an IPv6 wildcard that does not take IPv4 connections
};

// One netlink socket kept open per addon instance (one per JS thread). Requests are
// synchronous and the kernel answers an exact lookup within sendmsg(), so a request and its
// reply never interleave with another; sequence numbers guard against stale replies anyway.
class SockDiag {
 public:
  // The socket whose local end is `local` and remote end is `remote`; nullopt when none.
  std::optional<SocketOwner> Lookup(Napi::Env env, InetAddress local, InetAddress remote);

  // Every TCP socket in LISTEN state on `port`, both families, in this network namespace.
  std::vector<TcpListener> Listeners(Napi::Env env, uint16_t port);

 private:
  void Open(Napi::Env env);
  std::optional<SocketOwner> Exchange(Napi::Env env, const InetAddress& local, const InetAddress& remote);
  void DumpListeners(Napi::Env env, uint8_t family, uint16_t port, std::vector<TcpListener>* out);

  UniqueFd fd_;
  uint32_t seq_ = 0;
};

// JS: socketOwner(localAddress, localPort, remoteAddress, remotePort)
//   -> { uid, inode, cgroupId?: bigint } | undefined
Napi::Value SocketOwnerToJs(Napi::Env env, const std::optional<SocketOwner>& owner);

// JS: tcpListeners(port) -> [{ address, port, family: 4 | 6, v6only }]
Napi::Value TcpListenersToJs(Napi::Env env, const std::vector<TcpListener>& listeners);

}  // namespace weft
