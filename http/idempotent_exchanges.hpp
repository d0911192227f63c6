#pragma once

// Internal to http/: includes RESTinio. The POSTs that add messages (create,
// send, regenerate) with their Idempotency-Key: the key is checked and held
// here, the conversation looks it up in its turn, and a repeat's stored
// answer is rendered here.

#include "actors/engine.hpp"
#include "base/clock.hpp"
#include "config/settings.hpp"
#include "http/idempotency.hpp"
#include "http/in_flight.hpp"
#include "http/keepalive_ticker.hpp"
#include "http/responses.hpp"
#include "http/sse_stream.hpp"

#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace parley {

/// How an exchange's answer goes out, first or replayed: Parley's by default
/// (201; a create's with Location), or another route's.
struct exchange_rendering {
  bool is_create = false;
  /// Sends a success with `headers` (a replay's); unset: send_exchange.
  std::function<void(const call_context&, const exchange_result&, header_list)> success;
  /// The problem a failure is answered with; unset: to_problem.
  std::function<problem(const failure&)> problem_of;

  void send_success(const call_context& c, const exchange_result& r, header_list headers) const;
  problem problem_for(const failure& f) const;
};

class idempotent_exchanges : public std::enable_shared_from_this<idempotent_exchanges> {
 public:
  /// Hands the exchange to the engine, with the claim when there is a key.
  using starter = std::function<void(std::optional<idempotency_claim>, reply_fn<exchange_answer>)>;

  /// `ticker` paces the repeats that wait for a reply another request is
  /// still writing; each wait counts in `in_flight`.
  idempotent_exchanges(const settings& cfg, engine& eng, std::shared_ptr<keepalive_ticker> ticker,
                       in_flight_counter in_flight);

  /// Runs an exchange, honouring Idempotency-Key: a repeat gets the stored
  /// answer. `stream` (or null) is the exchange's SSE answer; `slot` (a
  /// generation slot, or null) is held until the exchange's outcome comes,
  /// and let go before it is answered.
  void run(const call_context& c, const nlohmann::json& body, exchange_rendering how,
           const std::shared_ptr<sse_stream>& stream, std::shared_ptr<void> slot, starter start);

 private:
  /// Looks `key` up: replays what is stored for it, or runs `absent` when nothing is.
  void look_up_and_replay(const call_context& c, const std::string& key,
                          const std::string& fingerprint, const exchange_rendering& how,
                          std::function<void()> absent);
  /// Replays `stored`; while it is the provisional answer of a reply that another
  /// request (in this process or another) may still store, looks again at
  /// the ticker's next sweep.
  void answer_stored(const call_context& c, const idempotency_record& stored,
                     const std::string& key, const std::string& fingerprint,
                     const exchange_rendering& how);
  bool reply_may_still_come(const idempotency_record& stored) const;
  static void replay(const call_context& c, const idempotency_record& stored,
                     const std::string& fingerprint, const exchange_rendering& how);

  const settings& cfg_;
  engine& engine_;
  std::shared_ptr<keepalive_ticker> ticker_;
  in_flight_counter in_flight_;
  idempotency_locks locks_;
  const unix_ms started_at_ = now_ms();
};

}  // namespace parley
