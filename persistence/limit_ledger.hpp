#pragma once

// The shared side of per-user limits across Parley instances on one
// PostgreSQL database: a request bucket per user and the generation slots
// each instance holds. Instances lease from it in the background
// (http/leased_limits.hpp), so no request waits for it. No libpq here.

#include <cstdint>
#include <memory>
#include <string>

namespace parley {

/// What a claim on a user's request bucket got.
struct token_grant {
  double taken = 0;  ///< the debt, then as many whole tokens as were wanted and held
  double left = 0;   ///< the bucket after it (below 0 while a debt is paid off)
};

/// The ledger the leases come from. Blocking calls; throws store_error when
/// the database fails.
class limit_ledger {
 public:
  virtual ~limit_ledger() = default;

  /// Connects ahead of the first call, if it can (a failure shows at the call).
  virtual void prepare() {}

  /// Refills `user`'s bucket (at most `capacity`, `per_second` since its last
  /// update, full when new) to `now_ms`, then takes `debt` (requests already
  /// admitted, even below zero) and up to `want` whole tokens more.
  virtual token_grant take_tokens(const std::string& user, double debt, double want,
                                  double capacity, double per_second, std::int64_t now_ms) = 0;

  /// Puts `tokens` leased and not spent back into the bucket (up to its capacity).
  virtual void give_back(const std::string& user, double tokens, double capacity, double per_second,
                         std::int64_t now_ms) = 0;

  /// Sets the generation slots `instance` holds for `user` to `wanted`, or
  /// to as many as the other instances' unexpired slots leave under `limit`,
  /// until `expires_ms`. Returns the slots it holds now.
  virtual unsigned hold_slots(const std::string& user, const std::string& instance, unsigned wanted,
                              unsigned limit, std::int64_t now_ms, std::int64_t expires_ms) = 0;
};

/// The ledger in the PostgreSQL database at `url` (its rate_buckets and
/// generation_leases tables), on a connection of its own. Connects lazily
/// and again after a failure.
std::unique_ptr<limit_ledger> make_postgresql_ledger(const std::string& url);

}  // namespace parley
