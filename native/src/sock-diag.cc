// SOCK_DIAG_BY_FAMILY exact lookups (inet_diag_req_v2 without NLM_F_DUMP): the kernel finds
// the one socket for the tuple with its hash lookup, and replies with inet_diag_msg plus
// rtattrs, among them INET_DIAG_CGROUP_ID. And dumps of the listening sockets on one port
// (NLM_F_DUMP, states = LISTEN, id.idiag_sport set: the kernel skips other ports itself).
#include "sock-diag.h"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "sys-error.h"

#ifndef INET_DIAG_CGROUP_ID
#define INET_DIAG_CGROUP_ID 21  // uapi value since Linux 5.7
#endif

namespace {
constexpr uint32_t kTcpListen = 10;  // TCP_LISTEN in the kernel's tcp_states.h
}  // namespace

namespace weft {

namespace {

struct Request {
  nlmsghdr header;
  inet_diag_req_v2 body;
};

void CopyAddress(const InetAddress& addr, __be16* port, __be32* out) {
  if (addr.Family() == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr.storage);
    *port = in->sin_port;
    std::memcpy(out, &in->sin_addr, 4);
  } else {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr.storage);
    *port = in6->sin6_port;
    std::memcpy(out, &in6->sin6_addr, 16);
  }
}

// The endpoint the reply describes, to check it is the tuple asked for: the kernel falls
// back to a listening socket when no connection matches, which must not count as a match.
InetAddress ReplyEndpoint(uint8_t family, const __be32* addr, __be16 port) {
  InetAddress out;
  if (family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&out.storage);
    in->sin_family = AF_INET;
    in->sin_port = port;
    std::memcpy(&in->sin_addr, addr, 4);
    out.length = sizeof(*in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = port;
    std::memcpy(&in6->sin6_addr, addr, 16);
    out.length = sizeof(*in6);
  }
  return out;
}

std::optional<SocketOwner> ParseReply(const nlmsghdr* header, const InetAddress& local,
                                      const InetAddress& remote) {
  const auto* msg = static_cast<const inet_diag_msg*>(NLMSG_DATA(header));
  InetAddress src = ReplyEndpoint(msg->idiag_family, msg->id.idiag_src, msg->id.idiag_sport);
  InetAddress dst = ReplyEndpoint(msg->idiag_family, msg->id.idiag_dst, msg->id.idiag_dport);
  if (!SameEndpoint(src.Raw(), local.Raw()) || !SameEndpoint(dst.Raw(), remote.Raw())) {
    return std::nullopt;
  }
  // TIME_WAIT and orphaned sockets report inode 0 and uid 0: they have no owner, and
  // reading uid 0 as "root" would misattribute the connection.
  if (msg->idiag_inode == 0) return std::nullopt;
  SocketOwner owner;
  owner.uid = msg->idiag_uid;
  owner.inode = msg->idiag_inode;
  int length = static_cast<int>(header->nlmsg_len) - static_cast<int>(NLMSG_LENGTH(sizeof(*msg)));
  for (auto* attr = reinterpret_cast<const rtattr*>(msg + 1); RTA_OK(attr, length);
       attr = RTA_NEXT(attr, length)) {
    if (attr->rta_type == INET_DIAG_CGROUP_ID && RTA_PAYLOAD(attr) >= sizeof(uint64_t)) {
      uint64_t id;
      std::memcpy(&id, RTA_DATA(attr), sizeof(id));
      owner.cgroup_id = id;
    }
  }
  return owner;
}

}  // namespace

void SockDiag::Open(Napi::Env env) {
  fd_.Reset(socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!fd_.Valid()) ThrowErrno(env, errno, "socket(NETLINK_SOCK_DIAG)");
}

std::optional<SocketOwner> SockDiag::Lookup(Napi::Env env, InetAddress local, InetAddress remote) {
  // Node reports IPv4 peers of dual-stack sockets as ::ffff:a.b.c.d; the connection itself
  // is IPv4 (or a v6 socket with a v4-mapped tuple, which the IPv4 lookup finds too).
  if (local.Family() == AF_INET6 && remote.Family() == AF_INET6) {
    const auto* l = reinterpret_cast<const sockaddr_in6*>(&local.storage);
    const auto* r = reinterpret_cast<const sockaddr_in6*>(&remote.storage);
    if (IsV4Mapped(l->sin6_addr) && IsV4Mapped(r->sin6_addr)) {
      UnmapV4(&local);
      UnmapV4(&remote);
    }
  }
  if (local.Family() != remote.Family()) return std::nullopt;  // no TCP connection spans families
  if (!fd_.Valid()) Open(env);
  try {
    return Exchange(env, local, remote);
  } catch (...) {
    fd_.Reset();  // a failed exchange may leave a reply queued: start afresh next time
    throw;
  }
}

std::optional<SocketOwner> SockDiag::Exchange(Napi::Env env, const InetAddress& local,
                                              const InetAddress& remote) {
  Request request{};
  request.header.nlmsg_len = sizeof(request);
  request.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  request.header.nlmsg_flags = NLM_F_REQUEST;
  request.header.nlmsg_seq = ++seq_;
  request.body.sdiag_family = static_cast<uint8_t>(local.Family());
  request.body.sdiag_protocol = IPPROTO_TCP;
  request.body.idiag_states = ~0u;
  CopyAddress(local, &request.body.id.idiag_sport, request.body.id.idiag_src);
  CopyAddress(remote, &request.body.id.idiag_dport, request.body.id.idiag_dst);
  if (local.Family() == AF_INET6) {
    request.body.id.idiag_if = reinterpret_cast<const sockaddr_in6*>(&local.storage)->sin6_scope_id;
  }
  request.body.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  request.body.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd_.Get(), &request, sizeof(request), 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof(kernel)) < 0) {
    ThrowErrno(env, errno, "sendto(NETLINK_SOCK_DIAG)");
  }
  // The reply (or error) is queued before sendto() returns, so reading never blocks the loop.
  alignas(nlmsghdr) char buffer[8192];
  for (int attempt = 0; attempt < 4; attempt++) {
    ssize_t n = recv(fd_.Get(), buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n < 0) ThrowErrno(env, errno, "recv(NETLINK_SOCK_DIAG)");
    int length = static_cast<int>(n);
    for (auto* header = reinterpret_cast<nlmsghdr*>(buffer); NLMSG_OK(header, length);
         header = NLMSG_NEXT(header, length)) {
      if (header->nlmsg_seq != request.header.nlmsg_seq) continue;  // stale: not ours
      if (header->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(header));
        if (err->error == -ENOENT || err->error == 0) return std::nullopt;
        ThrowErrno(env, -err->error, "SOCK_DIAG_BY_FAMILY");
      }
      if (header->nlmsg_type == SOCK_DIAG_BY_FAMILY) return ParseReply(header, local, remote);
    }
  }
  ThrowErrno(env, EPROTO, "SOCK_DIAG_BY_FAMILY");
}

std::vector<TcpListener> SockDiag::Listeners(Napi::Env env, uint16_t port) {
  if (!fd_.Valid()) Open(env);
  std::vector<TcpListener> out;
  try {
    DumpListeners(env, AF_INET, port, &out);
    DumpListeners(env, AF_INET6, port, &out);
  } catch (...) {
    fd_.Reset();  // a dump cut short leaves its remaining parts queued: start afresh next time
    throw;
  }
  return out;
}

void SockDiag::DumpListeners(Napi::Env env, uint8_t family, uint16_t port,
                             std::vector<TcpListener>* out) {
  Request request{};
  request.header.nlmsg_len = sizeof(request);
  request.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  request.header.nlmsg_seq = ++seq_;
  request.body.sdiag_family = family;
  request.body.sdiag_protocol = IPPROTO_TCP;
  request.body.idiag_states = 1u << kTcpListen;
  request.body.id.idiag_sport = htons(port);
  request.body.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  request.body.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (sendto(fd_.Get(), &request, sizeof(request), 0, reinterpret_cast<sockaddr*>(&kernel),
             sizeof(kernel)) < 0) {
    ThrowErrno(env, errno, "sendto(NETLINK_SOCK_DIAG)");
  }
  // The kernel queues the first part of a dump within sendto() and each next part within the
  // recv() that takes the previous one, so a non-blocking recv always finds one until DONE.
  alignas(nlmsghdr) char buffer[32768];
  for (;;) {
    ssize_t n = recv(fd_.Get(), buffer, sizeof(buffer), MSG_DONTWAIT);
    if (n < 0) ThrowErrno(env, errno, "recv(NETLINK_SOCK_DIAG dump)");
    int length = static_cast<int>(n);
    for (auto* header = reinterpret_cast<nlmsghdr*>(buffer); NLMSG_OK(header, length);
         header = NLMSG_NEXT(header, length)) {
      if (header->nlmsg_seq != request.header.nlmsg_seq) continue;  // stale: not ours
      if (header->nlmsg_type == NLMSG_DONE) return;
      if (header->nlmsg_type == NLMSG_ERROR) {
        const auto* err = static_cast<const nlmsgerr*>(NLMSG_DATA(header));
        if (err->error == 0) return;
        ThrowErrno(env, -err->error, "SOCK_DIAG_BY_FAMILY dump");
      }
      if (header->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
      const auto* msg = static_cast<const inet_diag_msg*>(NLMSG_DATA(header));
      if (msg->idiag_state != kTcpListen || ntohs(msg->id.idiag_sport) != port) continue;
      TcpListener listener;
      listener.local = ReplyEndpoint(msg->idiag_family, msg->id.idiag_src, msg->id.idiag_sport);
      // The kernel adds INET_DIAG_SKV6ONLY for IPv6 sockets in LISTEN.
      int rest = static_cast<int>(header->nlmsg_len) - static_cast<int>(NLMSG_LENGTH(sizeof(*msg)));
      for (auto* attr = reinterpret_cast<const rtattr*>(msg + 1); RTA_OK(attr, rest);
           attr = RTA_NEXT(attr, rest)) {
        if (attr->rta_type == INET_DIAG_SKV6ONLY && RTA_PAYLOAD(attr) >= 1) {
          listener.v6only = *static_cast<const uint8_t*>(RTA_DATA(attr)) != 0;
        }
      }
      out->push_back(listener);
    }
  }
}

Napi::Value TcpListenersToJs(Napi::Env env, const std::vector<TcpListener>& listeners) {
  Napi::Array result = Napi::Array::New(env, listeners.size());
  for (size_t i = 0; i < listeners.size(); i++) {
    Napi::Object item = InetAddressToJs(env, listeners[i].local.Raw());
    item.Set("v6only", Napi::Boolean::New(env, listeners[i].v6only));
    result.Set(static_cast<uint32_t>(i), item);
  }
  return result;
}

Napi::Value SocketOwnerToJs(Napi::Env env, const std::optional<SocketOwner>& owner) {
  if (!owner) return env.Undefined();
  Napi::Object result = Napi::Object::New(env);
  result.Set("uid", Napi::Number::New(env, owner->uid));
  result.Set("inode", Napi::Number::New(env, owner->inode));
  if (owner->cgroup_id) result.Set("cgroupId", Napi::BigInt::New(env, *owner->cgroup_id));
  return result;
}

}  // namespace weft
