#include "http/idempotent_exchanges.hpp"

#include "http/json_mapping.hpp"
#include "http/problem.hpp"

namespace parley {

idempotent_exchanges::idempotent_exchanges(const settings& cfg, engine& eng,
                                           std::shared_ptr<keepalive_ticker> ticker,
                                           in_flight_counter in_flight)
    : cfg_(cfg), engine_(eng), ticker_(std::move(ticker)), in_flight_(std::move(in_flight)) {}

void exchange_rendering::send_success(const call_context& c, const exchange_result& r,
                                      header_list headers) const {
  if (success)
    success(c, r, std::move(headers));
  else
    send_exchange(c, r, is_create, std::move(headers));
}

problem exchange_rendering::problem_for(const failure& f) const {
  return problem_of ? problem_of(f) : to_problem(f);
}

void idempotent_exchanges::run(const call_context& c, const nlohmann::json& body,
                               exchange_rendering how, const std::shared_ptr<sse_stream>& stream,
                               std::shared_ptr<void> slot, starter start) {
  auto key_header = c.req->header().opt_value_of("Idempotency-Key");
  // The exchange is over when its outcome comes: the slot is let go before
  // the answer leaves, so that a client sending again at once is not refused.
  auto held_slot = std::make_shared<std::shared_ptr<void>>(std::move(slot));
  auto finish = [c, how, stream, held_slot](const outcome<exchange_answer>& r) {
    held_slot->reset();
    if (stream && (r ? stream->finish(r) : stream->fail(how.problem_for(r.error())))) return;
    if (!r) {
      send_problem(c, how.problem_for(r.error()));
      return;
    }
    how.send_success(c, *r, {});
  };
  if (!key_header) {
    start(std::nullopt, in_flight_.tracked<exchange_answer>(finish));
    return;
  }
  std::string key(*key_header);
  if (!is_valid_idempotency_key(key)) {
    send_problem(c, invalid_field("Idempotency-Key", "must be 1 to 255 visible ASCII characters"));
    return;
  }
  if (!locks_.try_lock(c.user_id, key)) {
    send_problem(c, make_problem(409, "a request with this Idempotency-Key is in progress"));
    return;
  }
  auto fingerprint =
      request_fingerprint(c.req->header().method().c_str(), c.req->header().path(), dump(body));
  // The key stays locked in this process until the exchange is answered.
  auto self = shared_from_this();
  start(idempotency_claim{key, fingerprint},
        in_flight_.tracked<exchange_answer>([self, c, key, fingerprint, how, stream, finish,
                                             held_slot](const outcome<exchange_answer>& r) {
          held_slot->reset();
          self->locks_.unlock(c.user_id, key);
          if (r && r->replayed) {
            self->answer_stored(c, *r->replayed, key, fingerprint, how);
            return;
          }
          // Another process stored an answer for the key between the
          // lookup and our commit (which then conflicts), or the
          // conversation is gone since the first request: what is stored,
          // if anything, is the answer.
          bool may_be_stored =
              !r && (r.error().code == errc::conflict || r.error().code == errc::not_found);
          if (!may_be_stored) {
            finish(r);
            return;
          }
          // A stream that began has told its client already.
          if (stream && stream->fail(how.problem_for(r.error()))) return;
          self->look_up_and_replay(c, key, fingerprint, how, [finish, r] { finish(r); });
        }));
}

void idempotent_exchanges::look_up_and_replay(const call_context& c, const std::string& key,
                                              const std::string& fingerprint,
                                              const exchange_rendering& how,
                                              std::function<void()> absent) {
  auto self = shared_from_this();
  engine_.find_idempotency(c.user_id, key,
                           in_flight_.tracked<std::optional<idempotency_record>>(
                               [self, c, key, fingerprint, how,
                                absent](outcome<std::optional<idempotency_record>> found) {
                                 if (found && !*found) {
                                   absent();
                                   return;
                                 }
                                 if (!found) {
                                   send_problem(c, to_problem(found.error()));
                                   return;
                                 }
                                 self->answer_stored(c, **found, key, fingerprint, how);
                               }));
}

void idempotent_exchanges::answer_stored(const call_context& c, const idempotency_record& stored,
                                         const std::string& key, const std::string& fingerprint,
                                         const exchange_rendering& how) {
  if (stored.request_hash != fingerprint || !reply_may_still_come(stored)) {
    replay(c, stored, fingerprint, how);
    return;
  }
  // Weak: a wait must not keep the exchanges alive past the API that owns them;
  // the token keeps the request counted while it waits.
  ticker_->add([weak = weak_from_this(), held = in_flight_.hold(), c, key, fingerprint, how](auto) {
    auto self = weak.lock();
    if (!self) return false;
    self->look_up_and_replay(c, key, fingerprint, how, [c] {
      send_problem(c, make_problem(409,
                                   "the request with this Idempotency-Key ended without "
                                   "a stored answer; send it again"));
    });
    return false;
  });
}

/// True for the answer stored with a user message before its reply, while
/// the reply can still come. One stored before this process started is
/// taken as left by a crash (no process lives to replace it, when Parley
/// runs alone) and replayed at once: waiting out its generation deadline
/// would hold every retry after a restart for minutes. (So is every legacy
/// answer: the migration that made it ran as this process started.)
bool idempotent_exchanges::reply_may_still_come(const idempotency_record& stored) const {
  auto& answer = stored.answer;
  if (answer || answer.error().code != errc::provider_error ||
      answer.error().detail != reply_interrupted_detail || stored.created_at < started_at_)
    return false;
  auto longest = std::int64_t{cfg_.actors.generation_timeout_ms} + 2 * cfg_.database.timeout_ms;
  return now_ms() < stored.created_at + longest;
}

void idempotent_exchanges::replay(const call_context& c, const idempotency_record& stored,
                                  const std::string& fingerprint, const exchange_rendering& how) {
  if (stored.request_hash != fingerprint) {
    send_problem(c, invalid_field("Idempotency-Key", "was already used with a different request"));
    return;
  }
  header_list replayed{{"Idempotent-Replayed", "true"}};
  if (auto& legacy = stored.legacy) {
    if (how.is_create && legacy->status == 201) {
      auto j = nlohmann::json::parse(legacy->body, nullptr, false);
      if (j.is_object() && j.contains("id") && j["id"].is_string())
        replayed.emplace_back("Location", conversation_location(j["id"].get<std::string>()));
    }
    send(c, legacy->status, legacy->body,
         legacy->status >= 400 ? "application/problem+json" : "application/json", replayed);
    return;
  }
  if (stored.answer) {
    how.send_success(c, *stored.answer, std::move(replayed));
    return;
  }
  auto p = how.problem_for(stored.answer.error());
  p.headers = std::move(replayed);
  send_problem(c, p);
}

}  // namespace parley
