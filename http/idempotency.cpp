#include "http/idempotency.hpp"

#include <cstdint>
#include <cstdio>

namespace parley {

std::string request_fingerprint(std::string_view method, std::string_view path,
                                std::string_view canonical_body) {
  // FNV-1a, 64 bits: stable across processes and machines.
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::string_view part) {
    for (unsigned char c : part) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= 0xff;  // separator, so "ab"+"c" differs from "a"+"bc"
    h *= 1099511628211ull;
  };
  mix(method);
  mix(path);
  mix(canonical_body);
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

bool is_valid_idempotency_key(std::string_view key) {
  if (key.empty() || key.size() > 255) return false;
  for (unsigned char c : key)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

bool idempotency_locks::try_lock(const std::string& user_id, const std::string& key) {
  mutex_lock guard(mutex_);
  return held_.insert(user_id + '\n' + key).second;
}

void idempotency_locks::unlock(const std::string& user_id, const std::string& key) {
  mutex_lock guard(mutex_);
  held_.erase(user_id + '\n' + key);
}

}  // namespace parley
