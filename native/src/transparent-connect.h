// Outgoing TCP connections from a foreign source address (a caller's, so that a local
// application sees who called it), which Node cannot open: IP_TRANSPARENT and SO_MARK must be
// set between socket() and bind().
#pragma once

#include <napi.h>

namespace weft {

// JS: transparentConnect(source, target, port, mark, avoidPort, callback) -> fd.
// Opens a non-blocking TCP socket with IP_TRANSPARENT (IPV6_TRANSPARENT) and SO_MARK = mark
// (0: none), binds it to source:0 (the kernel picks the port, never avoidPort), and starts
// connecting to target:port. callback(null) runs on the event loop once connected: the fd is
// then the caller's, to hand to Node (new net.Socket({ fd })). callback(error) runs when the
// connect failed; the fd is already closed. Throws errno errors for what fails at once (EPERM
// without CAP_NET_ADMIN, EADDRNOTAVAIL, ...), with nothing left open.
Napi::Value TransparentConnect(const Napi::CallbackInfo& info);

// JS: cancelConnect(fd) -> boolean. Stops a pending transparentConnect and closes its fd; its
// callback never runs. False when fd is not pending (already called back, or never was).
Napi::Value CancelConnect(const Napi::CallbackInfo& info);

}  // namespace weft
