// Parsing, formatting and comparing IPv4/IPv6 socket addresses.
#include "inet-address.h"

#include <arpa/inet.h>
#include <net/if.h>

#include <cstring>

namespace weft {

namespace {

// 16-byte form of an address: IPv4 becomes ::ffff:a.b.c.d so both families compare alike.
bool Canonical(const sockaddr* addr, in6_addr* out, uint16_t* port) {
  if (addr->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(addr);
    std::memset(out, 0, sizeof(*out));
    out->s6_addr[10] = 0xff;
    out->s6_addr[11] = 0xff;
    std::memcpy(&out->s6_addr[12], &in->sin_addr, 4);
    *port = in->sin_port;
    return true;
  }
  if (addr->sa_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    *out = in6->sin6_addr;
    *port = in6->sin6_port;
    return true;
  }
  return false;
}

}  // namespace

bool ParseInetAddress(const std::string& text, uint16_t port, InetAddress* out) {
  *out = InetAddress{};
  auto* in = reinterpret_cast<sockaddr_in*>(&out->storage);
  if (inet_pton(AF_INET, text.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    out->length = sizeof(sockaddr_in);
    return true;
  }
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&out->storage);
  std::string host = text;
  size_t percent = text.find('%');
  if (percent != std::string::npos) {
    host = text.substr(0, percent);
    std::string scope = text.substr(percent + 1);
    // Node reports link-local peers as "fe80::1%eth0"; a numeric scope is accepted too.
    unsigned index = if_nametoindex(scope.c_str());
    if (index == 0) {
      char* end = nullptr;
      unsigned long numeric = std::strtoul(scope.c_str(), &end, 10);
      if (scope.empty() || *end != '\0' || numeric == 0) return false;
      index = static_cast<unsigned>(numeric);
    }
    in6->sin6_scope_id = index;
  }
  if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) != 1) return false;
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  out->length = sizeof(sockaddr_in6);
  return true;
}

bool IsV4Mapped(const in6_addr& addr) {
  static const uint8_t prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  return std::memcmp(addr.s6_addr, prefix, sizeof(prefix)) == 0;
}

void UnmapV4(InetAddress* address) {
  if (address->Family() != AF_INET6) return;
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&address->storage);
  if (!IsV4Mapped(in6->sin6_addr)) return;
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = in6->sin6_port;
  std::memcpy(&in.sin_addr, &in6->sin6_addr.s6_addr[12], 4);
  address->storage = sockaddr_storage{};
  std::memcpy(&address->storage, &in, sizeof(in));
  address->length = sizeof(in);
}

bool SameEndpoint(const sockaddr* a, const sockaddr* b) {
  in6_addr addr_a, addr_b;
  uint16_t port_a, port_b;
  if (!Canonical(a, &addr_a, &port_a) || !Canonical(b, &addr_b, &port_b)) return false;
  return port_a == port_b && std::memcmp(&addr_a, &addr_b, sizeof(in6_addr)) == 0;
}

Napi::Object InetAddressToJs(Napi::Env env, const sockaddr* addr) {
  char text[INET6_ADDRSTRLEN + IF_NAMESIZE + 1] = {0};
  uint16_t port = 0;
  int family = 4;
  if (addr->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(addr);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    port = ntohs(in->sin_port);
  } else {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    port = ntohs(in6->sin6_port);
    family = 6;
    // Same form as Node's remoteAddress for link-local peers: "fe80::1%eth0".
    char ifname[IF_NAMESIZE] = {0};
    if (in6->sin6_scope_id != 0 && if_indextoname(in6->sin6_scope_id, ifname) != nullptr) {
      std::strncat(text, "%", sizeof(text) - std::strlen(text) - 1);
      std::strncat(text, ifname, sizeof(text) - std::strlen(text) - 1);
    }
  }
  Napi::Object result = Napi::Object::New(env);
  result.Set("address", Napi::String::New(env, text));
  result.Set("port", Napi::Number::New(env, port));
  result.Set("family", Napi::Number::New(env, family));
  return result;
}

}  // namespace weft
