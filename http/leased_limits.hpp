#pragma once

#include "base/mutex.hpp"
#include "http/user_limits.hpp"
#include "persistence/limit_ledger.hpp"

#include <memory>
#include <string>
#include <thread>
#include <unordered_map>

namespace parley {

/// The per-user limits held across every Parley instance on one PostgreSQL
/// database (docs/deployment.md has the semantics). Each instance leases
/// budget from the shared ledger in the background and spends it locally, so
/// a request never waits for the database:
///
/// - Requests: the user's bucket (limits.requests_per_minute, refilled at a
///   minute's worth a minute) lives in the ledger; this instance takes
///   `chunk` tokens at a time (a tenth of the capacity, at least one) before
///   it runs out. With none leased it admits up to `chunk` requests on
///   credit, while the bucket as last read still holds tokens, and pays them
///   off at its next take (the bucket may go below zero by them).
/// - Generations: this instance holds slots (limits.concurrent_generations
///   among all instances) for the replies it runs plus one spare while the
///   user is busy, renewed while held and expiring when not (an instance
///   that dies frees them). With no free slot held it starts one reply on
///   credit, unless the ledger refused it slots recently; before the ledger
///   has first answered for the user, as many as the limit (replies started
///   together).
/// - Tokens given back: a lease unused for `idle_return` returns to the
///   ledger, and a spare slot after `spare_for`. A refused request makes
///   the instance read the bucket again when its reading is older than
///   `reread_after`, so a user whose traffic moves finds what was given back.
///   A user's lease is forgotten only once the bucket as last read has
///   refilled and no refusal of slots is recent: a new lease knows nothing
///   more than a forgotten one did.
///
/// Thread-safe. A background thread talks to the ledger.
class leased_limits final : public user_limits {
 public:
  struct timing {
    std::chrono::milliseconds tick{100};          ///< the background pass, unless woken
    std::chrono::milliseconds idle_return{5000};  ///< unused tokens go back after this
    std::chrono::milliseconds spare_for{2000};    ///< a spare slot is kept this long
    std::chrono::milliseconds slot_ttl{10000};    ///< slots not renewed expire after this
    /// A refused request reads the shared bucket again when what this
    /// instance knows of it is older than this (another may have given back).
    std::chrono::milliseconds reread_after{1000};
    /// Off: no thread, only reconcile() passes (tests).
    bool background = true;
  };

  /// 0 turns a limit off. `instance` names this process in the ledger.
  leased_limits(std::unique_ptr<limit_ledger> ledger, std::string instance,
                std::uint32_t requests_per_minute, std::uint32_t concurrent_generations, timing t);
  /// Stops the background thread and gives back what it can.
  ~leased_limits() override;

  outcome<done> take_request(const std::string& user, clock::time_point now) override;
  outcome<std::shared_ptr<void>> claim_generation(const std::string& user) override;

  /// One background pass now, on the caller's thread (for tests; the thread
  /// runs them every tick, or at once when a request needs one). Passes
  /// take turns: the ledger is one connection.
  void reconcile();

 private:
  struct lease {
    double tokens = 0;  ///< leased and not spent; below 0: admitted on credit
    bool wants_tokens = false;
    double bucket_left = 0;            ///< the shared bucket at the last take
    clock::time_point bucket_read_at;  ///< none: never taken
    clock::time_point last_request;
    unsigned generating = 0;
    unsigned slots = 0;        ///< held in the ledger
    unsigned slots_asked = 0;  ///< at the last claim
    clock::time_point slots_asked_at;
    clock::time_point slots_renewed;  ///< none: the ledger never answered for the user
    clock::time_point last_generation;
    /// When the ledger last answered short of the replies running here;
    /// none since it answered in full.
    clock::time_point slots_refused_at;

    bool bucket_known() const { return bucket_read_at != clock::time_point{}; }
    bool slots_known() const { return slots_renewed != clock::time_point{}; }
    bool refused_within(clock::time_point now, clock::duration d) const {
      return slots_refused_at != clock::time_point{} && now - slots_refused_at < d;
    }
  };
  /// The state the handles of generations point at, which may outlive this.
  struct core {
    parley::mutex mutex;
    condition wake;
    std::unordered_map<std::string, lease> leases GUARDED_BY(mutex);
    bool stopping GUARDED_BY(mutex) = false;
    bool hurry GUARDED_BY(mutex) = false;
  };

  double chunk() const;
  /// Has the background pass take a lease for `l` soon.
  void ask_for_tokens(lease& l) REQUIRES(core_->mutex);
  unsigned slots_wanted(const lease& l, clock::time_point now) const;
  void run();

  std::unique_ptr<limit_ledger> ledger_;
  const std::string instance_;
  const double capacity_;
  const double per_second_;
  const unsigned generations_;
  const timing timing_;
  std::shared_ptr<core> core_ = std::make_shared<core>();
  parley::mutex pass_mutex_;  ///< held through a pass
  std::thread thread_;
};

}  // namespace parley
