// SOCK_DIAG_BY_FAMILY exact lookups (inet_diag_req_v2 without NLM_F_DUMP): the kernel finds
// the one socket for the tuple with its hash lookup, and replies with inet_diag_msg plus
// rtattrs, among them INET_DIAG_CGROUP_ID.
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

Napi::Value SocketOwnerToJs(Napi::Env env, const std::optional<SocketOwner>& owner) {
  if (!owner) return env.Undefined();
  Napi::Object result = Napi::Object::New(env);
  result.Set("uid", Napi::Number::New(env, owner->uid));
  result.Set("inode", Napi::Number::New(env, owner->inode));
  if (owner->cgroup_id) result.Set("cgroupId", Napi::BigInt::New(env, *owner->cgroup_id));
  return result;
}

}  // namespace weft
