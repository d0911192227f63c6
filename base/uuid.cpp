#include "base/uuid.hpp"

#include "base/clock.hpp"

#include <cstdint>
#include <random>

namespace parley {

std::string make_uuid_v7() {
  // One generator per thread: no lock on the request path.
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uint8_t bytes[16];
  auto ms = static_cast<std::uint64_t>(now_ms());
  for (int i = 0; i < 6; ++i) bytes[i] = static_cast<std::uint8_t>(ms >> (8 * (5 - i)));
  std::uint64_t a = rng(), b = rng();
  for (int i = 6; i < 16; ++i)
    bytes[i] = static_cast<std::uint8_t>((i < 11 ? a : b) >> (8 * (i % 8)));
  bytes[6] = static_cast<std::uint8_t>(0x70 | (bytes[6] & 0x0f));  // version 7
  bytes[8] = static_cast<std::uint8_t>(0x80 | (bytes[8] & 0x3f));  // RFC 4122 variant
  static constexpr char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
    out.push_back(hex[bytes[i] >> 4]);
    out.push_back(hex[bytes[i] & 0x0f]);
  }
  return out;
}

bool is_canonical_uuid(std::string_view text) {
  if (text.size() != 36) return false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return true;
}

const std::string& instance_id() {
  static const std::string id = make_uuid_v7();
  return id;
}

}  // namespace parley
