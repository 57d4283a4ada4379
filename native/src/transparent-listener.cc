// Creates a bound, listening TCP socket with IP_TRANSPARENT (IPV6_TRANSPARENT for IPv6)
// so that TPROXY can deliver connections for addresses that are not local to the host; or,
// with transparent false, a plain one; with reusePort, one of a SO_REUSEPORT group. The agent's
// master holds such fds without a libuv handle (so it never accepts on them) for its workers.
#include "transparent-listener.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

#include "inet-address.h"
#include "sys-error.h"
#include "unique-fd.h"

#ifndef IP_TRANSPARENT
#define IP_TRANSPARENT 19
#endif
#ifndef IPV6_TRANSPARENT
#define IPV6_TRANSPARENT 75
#endif

namespace weft {

namespace {

void SetFlag(Napi::Env env, int fd, int level, int option, const char* name) {
  int one = 1;
  if (setsockopt(fd, level, option, &one, sizeof(one)) != 0) ThrowErrno(env, errno, name);
}

}  // namespace

Napi::Value TransparentListener(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber()) {
    throw Napi::TypeError::New(env,
                               "transparentListener(host, port, backlog[, transparent, reusePort]): bad arguments");
  }
  bool transparent = info.Length() < 4 || !info[3].IsBoolean() || info[3].As<Napi::Boolean>().Value();
  bool reuse_port = info.Length() >= 5 && info[4].IsBoolean() && info[4].As<Napi::Boolean>().Value();
  std::string host = info[0].As<Napi::String>().Utf8Value();
  uint32_t port = info[1].As<Napi::Number>().Uint32Value();
  int backlog = info[2].As<Napi::Number>().Int32Value();
  InetAddress addr;
  if (port > 65535 || !ParseInetAddress(host, static_cast<uint16_t>(port), &addr)) {
    ThrowErrno(env, EINVAL, "inet_pton");
  }

  UniqueFd fd(socket(addr.Family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
  if (!fd.Valid()) ThrowErrno(env, errno, "socket");
  SetFlag(env, fd.Get(), SOL_SOCKET, SO_REUSEADDR, "setsockopt(SO_REUSEADDR)");
  // One socket per worker in a group on the same port: the kernel spreads connections over
  // them by a hash of the 4-tuple, where a shared socket goes to whichever worker wakes first.
  if (reuse_port) SetFlag(env, fd.Get(), SOL_SOCKET, SO_REUSEPORT, "setsockopt(SO_REUSEPORT)");
  // Must precede bind(): it is what lets the socket bind and accept for non-local addresses.
  if (!transparent) {
    // Nothing to set before bind.
  } else if (addr.Family() == AF_INET) {
    SetFlag(env, fd.Get(), SOL_IP, IP_TRANSPARENT, "setsockopt(IP_TRANSPARENT)");
  } else {
    SetFlag(env, fd.Get(), SOL_IPV6, IPV6_TRANSPARENT, "setsockopt(IPV6_TRANSPARENT)");
  }
  if (bind(fd.Get(), addr.Raw(), addr.length) != 0) ThrowErrno(env, errno, "bind");
  if (listen(fd.Get(), backlog) != 0) ThrowErrno(env, errno, "listen");
  return Napi::Number::New(env, fd.Release());
}

}  // namespace weft
