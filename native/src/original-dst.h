// The destination a client asked for before iptables REDIRECT rewrote it (SO_ORIGINAL_DST).
#pragma once

#include <napi.h>

namespace weft {

// JS: originalDestination(fd: number) -> { address, port, family, redirected }.
// `redirected` is false when conntrack knows the connection but no NAT changed its
// destination. Throws errno errors (ENOENT: no conntrack entry, ENOPROTOOPT: no conntrack).
Napi::Value OriginalDestination(const Napi::CallbackInfo& info);

}  // namespace weft
