#include "http/user_limits.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

namespace parley {

local_limits::local_limits(std::uint32_t requests_per_minute, std::uint32_t concurrent_generations)
    : capacity_(requests_per_minute),
      tokens_per_second_(requests_per_minute / 60.0),
      concurrent_generations_(concurrent_generations) {}

local_limits::shard& local_limits::shard_of(const std::string& user) {
  return shards_[std::hash<std::string>{}(user) % shard_count];
}

double local_limits::refill(const bucket& b, clock::time_point now) const {
  auto elapsed = std::chrono::duration<double>(now - b.updated).count();
  return std::min(capacity_, b.tokens + std::max(0.0, elapsed) * tokens_per_second_);
}

void local_limits::sweep_full_buckets(shard& s, clock::time_point now) const {
  std::erase_if(s.buckets,
                [&](const auto& entry) { return refill(entry.second, now) >= capacity_; });
  s.sweep_at = std::max<std::size_t>(1024, s.buckets.size() * 2);
}

outcome<done> local_limits::take_request(const std::string& user, clock::time_point now) {
  if (capacity_ == 0) return done{};
  auto& s = shard_of(user);
  double tokens;
  {
    mutex_lock lock(s.mutex);
    auto found = s.buckets.find(user);
    if (found == s.buckets.end()) {
      if (s.buckets.size() >= s.sweep_at) sweep_full_buckets(s, now);
      found = s.buckets.emplace(user, bucket{capacity_, now}).first;
    }
    auto& b = found->second;
    b.tokens = refill(b, now);
    b.updated = std::max(b.updated, now);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return done{};
    }
    tokens = b.tokens;
  }
  // The refusal is written with the shard free for the users that may pass.
  failure f{errc::rate_limited, "user " + user + " has used its " +
                                    std::to_string(static_cast<std::uint64_t>(capacity_)) +
                                    " requests per minute"};
  f.retry_after_s =
      static_cast<unsigned>(std::max(1.0, std::ceil((1 - tokens) / tokens_per_second_ - 1e-9)));
  return f;
}

outcome<std::shared_ptr<void>> local_limits::claim_generation(const std::string& user) {
  // A handle that releases nothing, when there is no cap.
  if (concurrent_generations_ == 0) return std::shared_ptr<void>(std::make_shared<int>(0));
  auto& s = shard_of(user);
  {
    mutex_lock lock(s.mutex);
    auto& count = s.generating[user];
    if (count >= concurrent_generations_) {
      failure f{errc::rate_limited, "user " + user + " already has " +
                                        std::to_string(concurrent_generations_) +
                                        " replies in progress"};
      f.retry_after_s = 1;
      return f;
    }
    ++count;
  }
  // Points at the shard (never deleted) so that the handle tests true.
  return std::shared_ptr<void>(&s, [&s, user](void*) {
    mutex_lock lock(s.mutex);
    auto found = s.generating.find(user);
    if (found != s.generating.end() && --found->second == 0) s.generating.erase(found);
  });
}

std::size_t local_limits::tracked_users() const {
  std::size_t n = 0;
  for (auto& s : shards_) {
    mutex_lock lock(s.mutex);
    n += s.buckets.size() + s.generating.size();
  }
  return n;
}

}  // namespace parley
