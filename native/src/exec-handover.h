// What the agent's master needs to replace itself with exec (src/agent/workers/handover.ts):
// listening fds that survive the exec (FD_CLOEXEC cleared), and reaping the workers of the
// previous image, which are this process's children but not libuv's (it reaps only children
// it spawned, so they would stay zombies).
#pragma once

#include <napi.h>

namespace weft {

// setCloexec(fd, on): sets or clears FD_CLOEXEC on fd. Throws on a bad fd.
Napi::Value SetCloexec(const Napi::CallbackInfo& info);

// reapChild(pid): waitpid(pid, WNOHANG). undefined while it runs; { code, signal } once it
// exited (and is reaped); { gone: true } when pid is not a child of this process (ECHILD).
Napi::Value ReapChild(const Napi::CallbackInfo& info);

}  // namespace weft
