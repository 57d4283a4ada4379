// SO_ORIGINAL_DST for IPv4 and IP6T_SO_ORIGINAL_DST for IPv6: asks conntrack for the
// original tuple of a redirected connection, as Istio's and Linkerd's proxies do.
#include "original-dst.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>

#include "inet-address.h"
#include "sys-error.h"

// <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h> clash with the libc
// headers in C++; both options are 80 in the kernel's uapi.
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

namespace weft {

namespace {

InetAddress LocalName(Napi::Env env, int fd) {
  InetAddress addr;
  addr.length = sizeof(addr.storage);
  if (getsockname(fd, addr.Raw(), &addr.length) != 0) ThrowErrno(env, errno, "getsockname");
  return addr;
}

// The peer may already have reset the connection (ENOTCONN); the answer does not depend on it.
bool PeerName(int fd, InetAddress* addr) {
  addr->length = sizeof(addr->storage);
  return getpeername(fd, addr->Raw(), &addr->length) == 0;
}

// The conntrack lookup works on the socket's own tuple. A v6 socket that accepted an
// IPv4 client (local ::ffff:a.b.c.d) has an IPv4 conntrack entry, so it is asked with SOL_IP.
InetAddress QueryOriginal(Napi::Env env, int fd, const InetAddress& local) {
  bool v4 = local.Family() == AF_INET;
  if (local.Family() == AF_INET6) {
    v4 = IsV4Mapped(reinterpret_cast<const sockaddr_in6*>(&local.storage)->sin6_addr);
  }
  InetAddress original;
  if (v4) {
    original.length = sizeof(sockaddr_in);
    if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, original.Raw(), &original.length) != 0) {
      ThrowErrno(env, errno, "getsockopt(SO_ORIGINAL_DST)");
    }
  } else {
    original.length = sizeof(sockaddr_in6);
    if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, original.Raw(), &original.length) != 0) {
      ThrowErrno(env, errno, "getsockopt(IP6T_SO_ORIGINAL_DST)");
    }
  }
  return original;
}

}  // namespace

Napi::Value OriginalDestination(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    throw Napi::TypeError::New(env, "originalDestination(fd): fd must be a number");
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  InetAddress local = LocalName(env, fd);
  if (local.Family() != AF_INET && local.Family() != AF_INET6) {
    ThrowErrno(env, EAFNOSUPPORT, "getsockname");
  }
  InetAddress original = QueryOriginal(env, fd, local);
  // Conntrack also answers for connections it tracks without NAT: then the "original"
  // destination is this socket's own address (accepted side) or its peer (connecting side).
  InetAddress peer;
  bool redirected = !SameEndpoint(original.Raw(), local.Raw()) &&
                    !(PeerName(fd, &peer) && SameEndpoint(original.Raw(), peer.Raw()));
  Napi::Object result = InetAddressToJs(env, original.Raw());
  result.Set("redirected", Napi::Boolean::New(env, redirected));
  return result;
}

}  // namespace weft
