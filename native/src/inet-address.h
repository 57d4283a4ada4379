// IPv4/IPv6 socket addresses: parsing from the strings Node uses ("10.0.0.1",
// "::ffff:10.0.0.1", "fe80::1%eth0"), formatting back, and comparing across families.
#pragma once

#include <napi.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace weft {

struct InetAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  int Family() const { return storage.ss_family; }
  const sockaddr* Raw() const { return reinterpret_cast<const sockaddr*>(&storage); }
  sockaddr* Raw() { return reinterpret_cast<sockaddr*>(&storage); }
};

// Parses a literal address (optionally with a %scope for IPv6) and a port.
// Returns false when `text` is not an address literal or names an unknown interface.
bool ParseInetAddress(const std::string& text, uint16_t port, InetAddress* out);

// True for ::ffff:a.b.c.d, the form Node reports for IPv4 peers of a dual-stack socket.
bool IsV4Mapped(const in6_addr& addr);

// Rewrites a v4-mapped IPv6 address to plain IPv4 (no-op for anything else).
void UnmapV4(InetAddress* address);

// True when both name the same address and port, treating 10.0.0.1 and ::ffff:10.0.0.1 alike.
bool SameEndpoint(const sockaddr* a, const sockaddr* b);

// { address, port, family: 4 | 6 } for JS.
Napi::Object InetAddressToJs(Napi::Env env, const sockaddr* addr);

}  // namespace weft
