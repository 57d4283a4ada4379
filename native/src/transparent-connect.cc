// Connects from a caller's address (IP_TRANSPARENT + SO_MARK before bind) without blocking: the
// connect completes on the JS thread's own event loop, watched by a uv_poll_t, so no thread of
// libuv's small pool is held per pending connect (a slow target would otherwise starve the
// pool that file and log writes share).
#include "transparent-connect.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <memory>
#include <string>
#include <unordered_map>

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

// A bind to port 0 that lands on the caller's own source port is tried again this often: that
// port would give the very 4-tuple of the caller's connection when both end on one address.
constexpr int kBindAttempts = 4;

struct PendingConnect {
  uv_poll_t poll;
  int fd;
  napi_env env;
  Napi::FunctionReference callback;
  std::unique_ptr<Napi::AsyncContext> context;
};

// Connects in flight on this thread, by fd (each JS thread has its own loop and its own map).
thread_local std::unordered_map<int, PendingConnect*> pending;
thread_local bool cleanupHookAdded = false;

void FreeOp(uv_handle_t* handle) { delete static_cast<PendingConnect*>(handle->data); }

// Stops watching and forgets the op; libuv frees it once the poll handle is closed.
void Finish(PendingConnect* op) {
  pending.erase(op->fd);
  uv_poll_stop(&op->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(&op->poll), FreeOp);
}

void OnWritable(uv_poll_t* handle, int status, int /*events*/) {
  auto* op = static_cast<PendingConnect*>(handle->data);
  // The socket's own error first: libuv reports POLLERR (a refused connect) as UV_EBADF.
  int err = 0;
  socklen_t length = sizeof(err);
  if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &length) != 0) err = errno;
  if (err == 0 && status < 0) err = -status;  // libuv's errors are negated errno values
  int fd = op->fd;
  Finish(op);  // the op stays valid until the close callback, after this function
  if (err != 0) close(fd);

  Napi::Env env(op->env);
  Napi::HandleScope scope(env);
  try {
    Napi::Value result = err == 0 ? env.Null() : ErrnoError(env, err, "connect").Value();
    op->callback.MakeCallback(env.Global(), {result}, *op->context);
  } catch (const Napi::Error& e) {
    // Nothing in JS is on the stack to catch it: report it as uncaught, as Node would.
    napi_fatal_exception(env, e.Value());
  }
}

// Worker threads exit with connects in flight: close them, since nothing will call back.
void CancelAll(void*) {
  for (auto it = pending.begin(); it != pending.end();) {
    PendingConnect* op = it->second;
    it = pending.erase(it);
    int fd = op->fd;
    uv_close(reinterpret_cast<uv_handle_t*>(&op->poll), FreeOp);
    close(fd);
  }
}

void SetFlag(Napi::Env env, int fd, int level, int option, const char* name) {
  int one = 1;
  if (setsockopt(fd, level, option, &one, sizeof(one)) != 0) ThrowErrno(env, errno, name);
}

uint16_t BoundPort(Napi::Env env, int fd) {
  sockaddr_storage bound{};
  socklen_t length = sizeof(bound);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0) {
    ThrowErrno(env, errno, "getsockname");
  }
  return bound.ss_family == AF_INET
             ? ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port)
             : ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
}

// A socket bound to source (any port but avoidPort), transparent and marked, not connected.
UniqueFd BoundSocket(Napi::Env env, const InetAddress& source, uint32_t mark, uint32_t avoidPort) {
  for (int attempt = 0; attempt < kBindAttempts; attempt++) {
    UniqueFd fd(socket(source.Family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP));
    if (!fd.Valid()) ThrowErrno(env, errno, "socket");
    // Both before bind(): IP_TRANSPARENT is what lets it bind a non-local address (and route
    // from it); the mark makes the application's replies to that address come back here.
    if (source.Family() == AF_INET) {
      SetFlag(env, fd.Get(), SOL_IP, IP_TRANSPARENT, "setsockopt(IP_TRANSPARENT)");
    } else {
      SetFlag(env, fd.Get(), SOL_IPV6, IPV6_TRANSPARENT, "setsockopt(IPV6_TRANSPARENT)");
    }
    if (mark != 0 && setsockopt(fd.Get(), SOL_SOCKET, SO_MARK, &mark, sizeof(mark)) != 0) {
      ThrowErrno(env, errno, "setsockopt(SO_MARK)");
    }
    if (bind(fd.Get(), source.Raw(), source.length) != 0) ThrowErrno(env, errno, "bind");
    if (avoidPort == 0 || BoundPort(env, fd.Get()) != avoidPort) return fd;
  }
  ThrowErrno(env, EADDRINUSE, "bind");
}

}  // namespace

Napi::Value TransparentConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 6 || !info[0].IsString() || !info[1].IsString() || !info[2].IsNumber() ||
      !info[3].IsNumber() || !info[4].IsNumber() || !info[5].IsFunction()) {
    throw Napi::TypeError::New(
        env, "transparentConnect(source, target, port, mark, avoidPort, callback): bad arguments");
  }
  uint32_t port = info[2].As<Napi::Number>().Uint32Value();
  uint32_t mark = info[3].As<Napi::Number>().Uint32Value();
  uint32_t avoidPort = info[4].As<Napi::Number>().Uint32Value();
  InetAddress source, target;
  if (port == 0 || port > 65535 || avoidPort > 65535 ||
      !ParseInetAddress(info[0].As<Napi::String>().Utf8Value(), 0, &source) ||
      !ParseInetAddress(info[1].As<Napi::String>().Utf8Value(), static_cast<uint16_t>(port),
                        &target)) {
    ThrowErrno(env, EINVAL, "inet_pton");
  }
  if (source.Family() != target.Family()) ThrowErrno(env, EAFNOSUPPORT, "connect");

  UniqueFd fd = BoundSocket(env, source, mark, avoidPort);
  // A loopback handshake can complete inside connect(): 0 then, EINPROGRESS otherwise; both
  // finish through the poll below, so the callback always runs later, on the loop.
  if (connect(fd.Get(), target.Raw(), target.length) != 0 && errno != EINPROGRESS) {
    ThrowErrno(env, errno, "connect");
  }

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) {
    throw Napi::Error::New(env, "transparentConnect: no event loop");
  }
  auto op = std::make_unique<PendingConnect>();
  op->fd = fd.Get();
  op->env = env;
  op->callback = Napi::Persistent(info[5].As<Napi::Function>());
  op->context = std::make_unique<Napi::AsyncContext>(env, "weft.transparentConnect");
  int err = uv_poll_init_socket(loop, &op->poll, op->fd);
  if (err != 0) ThrowErrno(env, -err, "uv_poll_init_socket");
  op->poll.data = op.get();
  err = uv_poll_start(&op->poll, UV_WRITABLE, OnWritable);
  if (err != 0) {
    // The initialized handle must be closed through libuv, which then frees the op.
    uv_close(reinterpret_cast<uv_handle_t*>(&op.release()->poll), FreeOp);
    ThrowErrno(env, -err, "uv_poll_start");
  }
  if (!cleanupHookAdded) {
    napi_add_env_cleanup_hook(env, CancelAll, nullptr);
    cleanupHookAdded = true;
  }
  pending[op->fd] = op.get();
  op.release();
  return Napi::Number::New(env, fd.Release());
}

Napi::Value CancelConnect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    throw Napi::TypeError::New(env, "cancelConnect(fd): bad arguments");
  }
  auto it = pending.find(info[0].As<Napi::Number>().Int32Value());
  if (it == pending.end()) return Napi::Boolean::New(env, false);
  PendingConnect* op = it->second;
  int fd = op->fd;
  Finish(op);
  close(fd);
  return Napi::Boolean::New(env, true);
}

}  // namespace weft
