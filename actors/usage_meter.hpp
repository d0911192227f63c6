#pragma once

#include "base/clock.hpp"
#include "base/errors.hpp"
#include "base/mutex.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

namespace parley {

class store;

/// Tokens each user has used on a UTC day, as this process knows them, for
/// `limits.tokens_per_day`. A user's count is seeded from the database the
/// first time it is needed on a day and then counted up as exchanges commit,
/// so a check costs no database read. Other processes' usage is seen through
/// the seed, read again in the background once it is `reread_after` old and
/// the user asks again (refresh_when_stale): across several processes the
/// limit may be overshot by what the others used in that time. Thread-safe,
/// sharded so that actors of different users rarely share a lock.
class usage_meter {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  static constexpr std::chrono::seconds reread_after{1};

  /// The tokens `user` used on `day`, or nullopt until seeded for that day.
  std::optional<std::int64_t> used(const std::string& user, const std::string& day) const;

  /// Sets the count from the database's total as read at `read_at`, keeping
  /// what was counted here meanwhile if that is more.
  void seed(const std::string& user, const std::string& day, std::int64_t tokens,
            time_point read_at);

  /// True, once, when the seed is older than reread_after at `now`: the
  /// caller reads it again (and seeds), and until then no one else does.
  bool take_reread(const std::string& user, const std::string& day, time_point now);

  /// Counts a committed exchange.
  void add(const std::string& user, const std::string& day, std::int64_t tokens);

 private:
  struct entry {
    std::string day;
    std::int64_t tokens = 0;
    bool seeded = false;
    time_point read_at;
    bool rereading = false;
  };
  struct shard {
    mutable parley::mutex mutex;
    std::unordered_map<std::string, entry> users GUARDED_BY(mutex);
  };
  static constexpr std::size_t shard_count = 16;

  shard& shard_of(const std::string& user) const;
  /// The user's entry for `day`, started afresh when it held another day.
  static entry& entry_for(shard& s, const std::string& user, const std::string& day)
      REQUIRES(s.mutex);

  mutable std::array<shard, shard_count> shards_;
};

/// The tokens `user` used on `day` as the database has them (a meter's seed).
std::int64_t tokens_used(store& db, const std::string& user, const std::string& day);

struct engine_context;

/// Reads `user`'s tokens of `day` again on a reader, without waiting for it,
/// when the meter's count is older than usage_meter::reread_after: another
/// Parley process on the database may have used some since.
void refresh_when_stale(engine_context& ctx, const std::string& user, const std::string& day);

/// What a request of `user` gets once the `limit` tokens of the day of `now`
/// are used: 429, to be retried at the next UTC midnight.
failure token_quota_reached(const std::string& user, std::int64_t limit, unix_ms now);

}  // namespace parley
