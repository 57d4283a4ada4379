// weft's native addon: the socket operations Node lacks (original destination,
// transparent listeners and connects, socket owner lookup, listening sockets on a port), and
// malloc_trim for the agent's memory upkeep, FD_CLOEXEC and waitpid for the master's re-exec.
// Loaded by src/native/addon.ts.
#include <napi.h>

#include <cerrno>
#include <string>

#include "exec-handover.h"
#include "malloc-trim.h"
#include "original-dst.h"
#include "sd-notify.h"
#include "sock-diag.h"
#include "sys-error.h"
#include "transparent-connect.h"
#include "transparent-listener.h"

namespace weft {

// One instance per JS thread (main or worker), each with its own netlink socket.
class WeftNative : public Napi::Addon<WeftNative> {
 public:
  WeftNative(Napi::Env, Napi::Object exports) {
    DefineAddon(exports, {
                             InstanceMethod("originalDestination", &WeftNative::OriginalDst),
                             InstanceMethod("transparentListener", &WeftNative::Listener),
                             InstanceMethod("socketOwner", &WeftNative::Owner),
                             InstanceMethod("tcpListeners", &WeftNative::Listeners),
                             InstanceMethod("sdNotify", &WeftNative::Notify),
                             InstanceMethod("transparentConnect", &WeftNative::Connect),
                             InstanceMethod("cancelConnect", &WeftNative::Cancel),
                             InstanceMethod("mallocTrim", &WeftNative::Trim),
                             InstanceMethod("setCloexec", &WeftNative::Cloexec),
                             InstanceMethod("reapChild", &WeftNative::Reap),
                         });
  }

 private:
  Napi::Value OriginalDst(const Napi::CallbackInfo& info) { return OriginalDestination(info); }

  Napi::Value Listener(const Napi::CallbackInfo& info) { return TransparentListener(info); }

  Napi::Value Notify(const Napi::CallbackInfo& info) { return SdNotify(info); }

  Napi::Value Connect(const Napi::CallbackInfo& info) { return TransparentConnect(info); }

  Napi::Value Cancel(const Napi::CallbackInfo& info) { return CancelConnect(info); }

  Napi::Value Trim(const Napi::CallbackInfo& info) { return MallocTrim(info); }

  Napi::Value Cloexec(const Napi::CallbackInfo& info) { return SetCloexec(info); }

  Napi::Value Reap(const Napi::CallbackInfo& info) { return ReapChild(info); }

  Napi::Value Owner(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 4 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsString() ||
        !info[3].IsNumber()) {
      throw Napi::TypeError::New(
          env, "socketOwner(localAddress, localPort, remoteAddress, remotePort): bad arguments");
    }
    InetAddress local, remote;
    if (!Endpoint(info[0], info[1], &local) || !Endpoint(info[2], info[3], &remote)) {
      ThrowErrno(env, EINVAL, "inet_pton");
    }
    return SocketOwnerToJs(env, diag_.Lookup(env, local, remote));
  }

  Napi::Value Listeners(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsNumber()) {
      throw Napi::TypeError::New(env, "tcpListeners(port): bad arguments");
    }
    uint32_t port = info[0].As<Napi::Number>().Uint32Value();
    if (port == 0 || port > 65535) ThrowErrno(env, EINVAL, "tcpListeners(port)");
    return TcpListenersToJs(env, diag_.Listeners(env, static_cast<uint16_t>(port)));
  }

  static bool Endpoint(const Napi::Value& address, const Napi::Value& port, InetAddress* out) {
    uint32_t number = port.As<Napi::Number>().Uint32Value();
    return number <= 65535 &&
           ParseInetAddress(address.As<Napi::String>().Utf8Value(), static_cast<uint16_t>(number), out);
  }

  SockDiag diag_;
};

}  // namespace weft

// The macro pastes the class name into an identifier, so it needs an unqualified name.
using weft::WeftNative;
NODE_API_ADDON(WeftNative)
