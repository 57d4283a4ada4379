// Builds the JS Error for a failed syscall: message "syscall: ECODE (strerror)", code = errno name.
#include "sys-error.h"

#include <string.h>

#include <string>

namespace weft {

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall) {
  // strerrorname_np (glibc >= 2.32) gives "EADDRINUSE"; fall back to the number elsewhere.
  const char* name = strerrorname_np(err);
  std::string code = name != nullptr ? name : "E" + std::to_string(err);
  std::string message = std::string(syscall) + ": " + code + " (" + strerror(err) + ")";
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  error.Set("errno", Napi::Number::New(env, err));
  error.Set("syscall", Napi::String::New(env, syscall));
  return error;
}

void ThrowErrno(Napi::Env env, int err, const char* syscall) { throw ErrnoError(env, err, syscall); }

}  // namespace weft
