#pragma once

#include "base/errors.hpp"
#include "base/mutex.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace parley {

/// The per-user limits of the request path: `limits.requests_per_minute` as a
/// token bucket per user, and `limits.concurrent_generations`, the replies one
/// user may have in progress (or waiting) at once. Thread-safe; neither call
/// blocks or waits for the database.
class user_limits {
 public:
  using clock = std::chrono::steady_clock;

  virtual ~user_limits() = default;

  /// Spends one request of `user`'s bucket when it holds one; else a
  /// rate_limited failure whose retry_after_s is when it will again.
  virtual outcome<done> take_request(const std::string& user, clock::time_point now) = 0;

  /// One of `user`'s generation slots, held until the returned handle's last
  /// copy is gone; a rate_limited failure when all of them are taken.
  virtual outcome<std::shared_ptr<void>> claim_generation(const std::string& user) = 0;
};

/// The limits counted by this process alone. Users are spread over shards
/// with a lock each, so requests of different users rarely meet on a lock
/// and never on a global one.
class local_limits final : public user_limits {
 public:
  /// 0 turns a limit off.
  local_limits(std::uint32_t requests_per_minute, std::uint32_t concurrent_generations);

  outcome<done> take_request(const std::string& user, clock::time_point now) override;
  outcome<std::shared_ptr<void>> claim_generation(const std::string& user) override;

  /// Users with state kept (a full bucket or no generation is forgotten lazily).
  std::size_t tracked_users() const;

 private:
  struct bucket {
    double tokens = 0;
    clock::time_point updated;
  };
  struct shard {
    mutable parley::mutex mutex;
    std::unordered_map<std::string, bucket> buckets GUARDED_BY(mutex);
    std::unordered_map<std::string, unsigned> generating GUARDED_BY(mutex);
    std::size_t sweep_at GUARDED_BY(mutex) = 1024;
  };
  static constexpr std::size_t shard_count = 64;

  shard& shard_of(const std::string& user);
  /// Drops the buckets that have filled up again: they hold nothing a fresh one would not.
  void sweep_full_buckets(shard& s, clock::time_point now) const REQUIRES(s.mutex);
  double refill(const bucket& b, clock::time_point now) const;

  const double capacity_;
  const double tokens_per_second_;
  const unsigned concurrent_generations_;
  std::array<shard, shard_count> shards_;
};

}  // namespace parley
