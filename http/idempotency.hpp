#pragma once

#include "base/mutex.hpp"

#include <string>
#include <string_view>
#include <unordered_set>

namespace parley {

/// A stable fingerprint of a request (method, path, canonical body), so a
/// repeated Idempotency-Key can be told apart from a reused one.
std::string request_fingerprint(std::string_view method, std::string_view path,
                                std::string_view canonical_body);

/// True for a usable Idempotency-Key: 1–255 visible ASCII characters.
bool is_valid_idempotency_key(std::string_view key);

/// Keys whose first request is still running in this process; a second request
/// with the same key meanwhile gets 409 instead of running twice. Thread-safe.
class idempotency_locks {
 public:
  bool try_lock(const std::string& user_id, const std::string& key);
  void unlock(const std::string& user_id, const std::string& key);

 private:
  mutex mutex_;
  std::unordered_set<std::string> held_ GUARDED_BY(mutex_);
};

}  // namespace parley
