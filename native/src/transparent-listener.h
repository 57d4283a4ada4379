// Listening TCP sockets with IP_TRANSPARENT, which Node cannot set between socket() and bind().
#pragma once

#include <napi.h>

namespace weft {

// JS: transparentListener(host: string, port: number, backlog: number, transparent = true,
//                         reusePort = false) -> fd.
// The fd is non-blocking and close-on-exec; the caller adopts it with server.listen({ fd }).
Napi::Value TransparentListener(const Napi::CallbackInfo& info);

}  // namespace weft
