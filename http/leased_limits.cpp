#include "http/leased_limits.hpp"

#include "base/clock.hpp"
#include "persistence/store.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <vector>

namespace parley {

namespace {

using seconds_f = std::chrono::duration<double>;

/// One call to the ledger that a background pass makes.
struct ledger_call {
  enum class kind { take, give_back, hold } type;
  std::string user;
  double debt = 0;
  double amount = 0;
  unsigned slots = 0;
};

/// Logs a failing ledger at most every ten seconds: it fails for every user.
void warn_ledger_failed(const std::string& why) {
  static std::atomic<std::int64_t> last{0};
  auto now = now_ms();
  if (now - last.load() < 10000) return;
  last = now;
  spdlog::warn("per-user limits: the shared ledger failed ({}); counting on leases held", why);
}

}  // namespace

leased_limits::leased_limits(std::unique_ptr<limit_ledger> ledger, std::string instance,
                             std::uint32_t requests_per_minute,
                             std::uint32_t concurrent_generations, timing t)
    : ledger_(std::move(ledger)),
      instance_(std::move(instance)),
      capacity_(requests_per_minute),
      per_second_(requests_per_minute / 60.0),
      generations_(concurrent_generations),
      timing_(t) {
  if (timing_.background) thread_ = std::thread([this] { run(); });
}

leased_limits::~leased_limits() {
  {
    mutex_lock lock(core_->mutex);
    core_->stopping = true;
  }
  core_->wake.notify_all();
  if (thread_.joinable()) thread_.join();
  // What this instance leased goes back for the others, as far as the ledger answers.
  std::vector<std::pair<std::string, lease>> held;
  {
    mutex_lock lock(core_->mutex);
    held.assign(core_->leases.begin(), core_->leases.end());
  }
  auto wall = now_ms();
  try {
    for (auto& [user, l] : held) {
      if (l.tokens >= 1)
        ledger_->give_back(user, std::floor(l.tokens), capacity_, per_second_, wall);
      if (l.tokens < 0) ledger_->take_tokens(user, -l.tokens, 0, capacity_, per_second_, wall);
      if (l.slots > 0) ledger_->hold_slots(user, instance_, 0, generations_, wall, wall);
    }
  } catch (const store_error& e) {
    warn_ledger_failed(e.what());  // the slots expire by themselves
  }
}

void leased_limits::ask_for_tokens(lease& l) {
  if (l.wants_tokens) return;
  l.wants_tokens = true;
  core_->hurry = true;
  core_->wake.notify_all();
}

double leased_limits::chunk() const { return std::max(1.0, std::ceil(capacity_ / 10)); }

unsigned leased_limits::slots_wanted(const lease& l, clock::time_point now) const {
  bool busy = l.generating > 0 || (l.last_generation != clock::time_point{} &&
                                   now - l.last_generation < timing_.spare_for);
  return std::min(generations_, l.generating + (busy ? 1u : 0u));
}

outcome<done> leased_limits::take_request(const std::string& user, clock::time_point now) {
  if (capacity_ == 0) return done{};
  double predicted;
  bool stale = false;
  {
    mutex_lock lock(core_->mutex);
    auto& l = core_->leases[user];
    l.last_request = now;
    // The shared bucket now, as far as this instance knows.
    predicted =
        l.bucket_known()
            ? std::min(capacity_,
                       l.bucket_left + seconds_f(now - l.bucket_read_at).count() * per_second_)
            : capacity_;
    if (l.tokens >= 1) {
      l.tokens -= 1;
      if (l.tokens < chunk() / 2 && predicted >= 1) ask_for_tokens(l);
      return done{};
    }
    // On credit, paid at the next take: only while the bucket should hold it.
    if (l.tokens - 1 >= -chunk() && predicted >= 1) {
      l.tokens -= 1;
      l.bucket_left -= 1;
      ask_for_tokens(l);
      return done{};
    }
    // Refilled since the last take, or given back by another instance since.
    stale = now - l.bucket_read_at >= timing_.reread_after;
    if (predicted >= 1 || stale) ask_for_tokens(l);
  }
  failure f{errc::rate_limited, "user " + user + " has used its " +
                                    std::to_string(static_cast<std::uint64_t>(capacity_)) +
                                    " requests per minute"};
  f.retry_after_s =
      stale ? 1u
            : static_cast<unsigned>(std::max(1.0, std::ceil((1 - predicted) / per_second_ - 1e-9)));
  return f;
}

outcome<std::shared_ptr<void>> leased_limits::claim_generation(const std::string& user) {
  if (generations_ == 0) return std::shared_ptr<void>(std::make_shared<int>(0));
  auto now = clock::now();
  {
    mutex_lock lock(core_->mutex);
    auto& l = core_->leases[user];
    bool held = l.generating < l.slots;
    // Before the ledger has answered for the user, up to the limit on credit
    // (replies started together); after, one beyond the slots held, unless
    // the ledger just said the other instances hold the rest.
    bool credit =
        !held && l.generating < generations_ &&
        (!l.slots_known() || (l.generating <= l.slots && !l.refused_within(now, timing_.slot_ttl)));
    if (!held && !credit) {
      failure f{errc::rate_limited, "user " + user + " already has " +
                                        std::to_string(generations_) + " replies in progress"};
      f.retry_after_s = 1;
      return f;
    }
    ++l.generating;
    l.last_generation = now;
    core_->hurry = true;
  }
  core_->wake.notify_all();
  // Points at the shared state (the pointer is only a value: the handle tests true).
  return std::shared_ptr<void>(core_.get(), [weak = std::weak_ptr<core>(core_), user](void*) {
    auto c = weak.lock();
    if (!c) return;
    {
      mutex_lock lock(c->mutex);
      auto found = c->leases.find(user);
      if (found == c->leases.end()) return;
      --found->second.generating;
      found->second.last_generation = clock::now();
      c->hurry = true;
    }
    c->wake.notify_all();
  });
}

void leased_limits::reconcile() {
  using kind = ledger_call::kind;
  mutex_lock pass(pass_mutex_);
  auto now = clock::now();
  auto wall = now_ms();
  std::vector<ledger_call> calls;
  {
    mutex_lock lock(core_->mutex);
    for (auto at = core_->leases.begin(); at != core_->leases.end();) {
      auto& [user, l] = *at;
      bool called = false;
      if (l.wants_tokens) {
        calls.push_back({kind::take, user, std::max(0.0, -l.tokens),
                         std::max(0.0, chunk() - std::max(0.0, l.tokens))});
        l.wants_tokens = false;
        called = true;
      } else if (l.tokens >= 1 && now - l.last_request >= timing_.idle_return) {
        calls.push_back({kind::give_back, user, 0, std::floor(l.tokens)});
        l.tokens -= std::floor(l.tokens);
        called = true;
      }
      if (generations_ > 0) {
        auto wanted = slots_wanted(l, now);
        auto renew_at = timing_.slot_ttl / 3;
        // A claim the ledger answered short is asked again only at renewal.
        bool asked_lately = wanted == l.slots_asked && now - l.slots_asked_at < renew_at;
        if ((wanted != l.slots && !asked_lately) ||
            (l.slots > 0 && now - l.slots_renewed >= renew_at)) {
          calls.push_back({kind::hold, user, 0, 0, wanted});
          l.slots_asked = wanted;
          l.slots_asked_at = now;
          called = true;
        }
      }
      // Nothing held, owed or recent, the bucket refilled as far as this
      // instance knows, and no refusal to remember: a fresh lease would be the same.
      bool bucket_full =
          !l.bucket_known() ||
          l.bucket_left + seconds_f(now - l.bucket_read_at).count() * per_second_ >= capacity_;
      bool idle = !called && l.tokens > -1e-9 && l.tokens < 1 && l.generating == 0 &&
                  l.slots == 0 && now - l.last_request >= timing_.idle_return &&
                  now - l.last_generation >= timing_.spare_for && bucket_full &&
                  !l.refused_within(now, timing_.slot_ttl);
      at = idle ? core_->leases.erase(at) : std::next(at);
    }
  }
  // A call not made: asked again on the next pass; tokens not given back stay leased.
  auto not_made = [this](const ledger_call& call) {
    mutex_lock lock(core_->mutex);
    auto& l = core_->leases[call.user];
    if (call.type == kind::take) l.wants_tokens = true;
    if (call.type == kind::give_back) l.tokens += call.amount;
    if (call.type == kind::hold) l.slots_asked_at = {};
  };
  for (std::size_t i = 0; i < calls.size(); ++i) {
    auto& call = calls[i];
    bool stopping;
    {
      mutex_lock lock(core_->mutex);
      stopping = core_->stopping;
    }
    if (stopping) {
      std::for_each(calls.begin() + static_cast<std::ptrdiff_t>(i), calls.end(), not_made);
      return;
    }
    try {
      switch (call.type) {
        case kind::take: {
          auto grant =
              ledger_->take_tokens(call.user, call.debt, call.amount, capacity_, per_second_, wall);
          mutex_lock lock(core_->mutex);
          auto& l = core_->leases[call.user];
          l.tokens += grant.taken;
          l.bucket_left = grant.left;
          l.bucket_read_at = now;
          break;
        }
        case kind::give_back:
          ledger_->give_back(call.user, call.amount, capacity_, per_second_, wall);
          break;
        case kind::hold: {
          auto held = ledger_->hold_slots(call.user, instance_, call.slots, generations_, wall,
                                          wall + timing_.slot_ttl.count());
          mutex_lock lock(core_->mutex);
          auto& l = core_->leases[call.user];
          l.slots = held;
          l.slots_renewed = now;
          // Short of the replies running here, not merely of the spare.
          l.slots_refused_at = held < l.generating ? now : clock::time_point{};
          break;
        }
      }
    } catch (const store_error& e) {
      // The database is away: the rest waits for the next pass rather than
      // for a connection timeout each.
      warn_ledger_failed(e.what());
      std::for_each(calls.begin() + static_cast<std::ptrdiff_t>(i), calls.end(), not_made);
      return;
    }
  }
}

void leased_limits::run() {
  // Connecting takes longer than a burst of requests lasts on credit.
  ledger_->prepare();
  mutex_lock lock(core_->mutex);
  while (!core_->stopping) {
    auto until = clock::now() + timing_.tick;
    while (!core_->stopping && !core_->hurry && core_->wake.wait_until(core_->mutex, until)) {
    }
    if (core_->stopping) break;
    core_->hurry = false;
    lock.unlock();
    reconcile();
    lock.lock();
  }
}

}  // namespace parley
