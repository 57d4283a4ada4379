# Builds weft's native addon (native/build/Release/weft_native.node) with node-addon-api.
# Linux only: it wraps socket options and netlink requests that Node does not expose.
{
  "targets": [
    {
      "target_name": "weft_native",
      "sources": [
        "src/addon.cc",
        "src/sys-error.cc",
        "src/inet-address.cc",
        "src/original-dst.cc",
        "src/transparent-listener.cc",
        "src/transparent-connect.cc",
        "src/sock-diag.cc",
        "src/sd-notify.cc",
        "src/malloc-trim.cc",
        "src/exec-handover.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # C++ exceptions on: Napi::Error is thrown from deep helpers and RAII closes fds.
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-fexceptions"],
      "conditions": [
        ["OS!='linux'", { "type": "none" }]
      ]
    }
  ]
}
