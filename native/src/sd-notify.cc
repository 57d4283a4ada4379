// Sends a state string ("READY=1", "STATUS=...") to the service manager's notify socket.
// The message comes from the agent's own pid, so Type=notify works with NotifyAccess=main.
#include "sd-notify.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <string>

#include "sys-error.h"
#include "unique-fd.h"

namespace weft {

Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) {
    throw Napi::TypeError::New(env, "sdNotify(message): bad arguments");
  }
  std::string message = info[0].As<Napi::String>().Utf8Value();
  const char* path = getenv("NOTIFY_SOCKET");
  if (path == nullptr || path[0] == '\0') return Napi::Boolean::New(env, false);

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  size_t length = strlen(path);
  // "/run/systemd/notify" is a path; "@name" is in the abstract namespace (leading NUL).
  if ((path[0] != '/' && path[0] != '@') || length >= sizeof(addr.sun_path)) {
    ThrowErrno(env, EINVAL, "sd_notify(NOTIFY_SOCKET)");
  }
  memcpy(addr.sun_path, path, length);
  if (path[0] == '@') addr.sun_path[0] = '\0';
  socklen_t addr_length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + length +
                                                 (path[0] == '@' ? 0 : 1));

  UniqueFd fd(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd.Valid()) ThrowErrno(env, errno, "socket(AF_UNIX)");
  ssize_t sent = sendto(fd.Get(), message.data(), message.size(), MSG_NOSIGNAL,
                        reinterpret_cast<sockaddr*>(&addr), addr_length);
  if (sent < 0) ThrowErrno(env, errno, "sendto(NOTIFY_SOCKET)");
  return Napi::Boolean::New(env, true);
}

}  // namespace weft
