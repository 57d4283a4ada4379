// Kernel errors as JS exceptions: every failed syscall becomes an Error carrying the
// errno name (code), its number and the syscall, so the TS wrapper can map it to a WeftError.
#pragma once

#include <napi.h>

namespace weft {

// The Error for errno `err` without throwing it, for callbacks that report a failure later.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall);

// Throws (as a C++ exception that node-addon-api turns into a JS one) an Error for errno `err`.
// `syscall` names the call and, for setsockopt/getsockopt, the option: "setsockopt(IP_TRANSPARENT)".
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall);

}  // namespace weft
