// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET. Node has no unix datagram
// sockets, and the systemd-notify binary races (it may exit before systemd reads its cgroup).
#pragma once

#include <napi.h>

namespace weft {

// sdNotify(message): true when sent, false when $NOTIFY_SOCKET is unset (not under systemd).
Napi::Value SdNotify(const Napi::CallbackInfo& info);

}  // namespace weft
