// FD_CLOEXEC and waitpid for the master's re-exec; see exec-handover.h for why.
#include "exec-handover.h"

#include <fcntl.h>
#include <sys/wait.h>

#include <cerrno>

#include "sys-error.h"

namespace weft {

Napi::Value SetCloexec(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBoolean()) {
    throw Napi::TypeError::New(env, "setCloexec(fd, on): bad arguments");
  }
  int fd = info[0].As<Napi::Number>().Int32Value();
  bool on = info[1].As<Napi::Boolean>().Value();
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0) ThrowErrno(env, errno, "fcntl(F_GETFD)");
  int next = on ? (flags | FD_CLOEXEC) : (flags & ~FD_CLOEXEC);
  if (fcntl(fd, F_SETFD, next) < 0) ThrowErrno(env, errno, "fcntl(F_SETFD)");
  return env.Undefined();
}

Napi::Value ReapChild(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    throw Napi::TypeError::New(env, "reapChild(pid): bad arguments");
  }
  pid_t pid = info[0].As<Napi::Number>().Int32Value();
  if (pid <= 0) ThrowErrno(env, EINVAL, "reapChild(pid)");
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return env.Undefined();
  Napi::Object result = Napi::Object::New(env);
  if (r < 0) {
    if (errno != ECHILD) ThrowErrno(env, errno, "waitpid");
    result.Set("gone", Napi::Boolean::New(env, true));
    return result;
  }
  if (WIFEXITED(status)) result.Set("code", Napi::Number::New(env, WEXITSTATUS(status)));
  if (WIFSIGNALED(status)) result.Set("signal", Napi::Number::New(env, WTERMSIG(status)));
  return result;
}

}  // namespace weft
