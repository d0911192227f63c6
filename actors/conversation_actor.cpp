#include "actors/conversation_actor.hpp"

#include "actors/context_window.hpp"
#include "actors/exchange_writes.hpp"
#include "actors/messages.hpp"
#include "config/uuid.hpp"
#include "persistence/caf_errors.hpp"
#include "providers/token_estimator.hpp"

#include <spdlog/spdlog.h>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <limits>

namespace parley {

namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;
using steady_time = steady_clock::time_point;

// --- state --------------------------------------------------------------------

enum class phase {
  loading,   ///< reading the conversation from the database
  creating,  ///< new: waiting for its create request
  ready,
  gone,  ///< deleted, missing, or its state can no longer be trusted
};

/// An operation waiting its turn, with the caller to fail if it never runs.
struct queued_op {
  std::function<void()> run;
  reply_slot caller;
};

/// The generation in progress (one at a time: operations are serialized).
struct active_generation {
  std::uint64_t id = 0;
  std::string text;
  std::shared_ptr<completion_handle> handle;
  std::shared_ptr<conversation_subscriber> stream;  ///< the exchange's own, if it streams
  bool live = false;  ///< deltas go to the stream and the watchers as they come
  std::function<void(outcome<completion_result>, std::string)> then;
};

struct conversation_state {
  static inline const char* name = "parley.conversation";
  engine_context* ctx = nullptr;
  std::string id;
  phase current = phase::loading;
  conversation_record meta;
  context_window window;
  bool busy = false;  ///< an operation is running (or the actor is loading)
  std::deque<queued_op> queue;
  /// The operation running now, kept so that it can run again after a reload
  /// when another Parley process changed the conversation meanwhile.
  std::function<void()> running;
  unsigned conflict_retries = 0;
  std::optional<active_generation> generation;
  std::uint64_t generations_started = 0;
  std::chrono::steady_clock::time_point last_active;
  /// Clients watching every exchange (WebSockets). While there are any the
  /// actor is not passivated.
  std::vector<std::shared_ptr<conversation_subscriber>> watchers;
};

using self_ptr = caf::stateful_actor<conversation_state>*;

/// How long the actor waits for the persistence actors: they bound each store
/// call by database.timeout_ms and always answer, so no timer of its own
/// (one per write would wake CAF's clock thread for every send).
const caf::duration persistence_wait = caf::infinite;

/// How often an operation is reloaded and run again when its write finds the
/// conversation changed by another process, before the conflict is answered.
constexpr unsigned max_conflict_retries = 3;

// --- pure helpers ---------------------------------------------------------------

const model_info& model_of(const engine_context& ctx, const std::string& alias) {
  auto m = ctx.models->find(alias);
  return m ? *m : ctx.models->default_model();
}

std::int64_t budget_for(const engine_context& ctx, const conversation_record& meta) {
  return message_budget(model_of(ctx, meta.model).context_budget(), meta.system_prompt);
}

/// Reads a conversation and the most recent messages that fit its budget, a
/// page at a time from the newest. Runs on a reader.
loaded_conversation load_conversation(store& db, const engine_context& ctx, const std::string& id) {
  constexpr unsigned page_size = 64;
  loaded_conversation out;
  out.row = db.find_conversation(id);
  if (!out.row) return out;
  auto budget = budget_for(ctx, *out.row);
  std::vector<message_record> newest_first;
  std::int64_t tokens = 0;
  std::int64_t before = std::numeric_limits<std::int64_t>::max();
  for (;;) {
    auto page = db.list_messages(id, 0, before, page_size);
    for (auto m = page.rbegin(); m != page.rend(); ++m) {
      auto t = estimate_message_tokens(m->content);
      if (!newest_first.empty() && tokens + t > budget) {
        out.older_exist = true;
        page.clear();
        break;
      }
      tokens += t;
      newest_first.push_back(std::move(*m));
    }
    if (page.size() < page_size) break;
    before = page.front().seq;
  }
  out.recent.assign(std::make_move_iterator(newest_first.rbegin()),
                    std::make_move_iterator(newest_first.rend()));
  return out;
}

/// The idempotency record to commit with an operation, if it claimed a key;
/// `replace`: the operation stored a provisional answer for it before.
void add_claim(write_set& writes, const std::optional<idempotency_claim>& claim,
               const std::string& user_id, const outcome<exchange_result>& result,
               bool replace = false) {
  if (!claim) return;
  auto stored = claim->render(result);
  writes.push_back(write::put_idempotency{
      {user_id, claim->key, claim->request_hash, stored.status, stored.body, now_ms()}, replace});
}

// --- live subscribers -----------------------------------------------------------

/// Tells every watcher, and the exchange's own stream if any, about `e`;
/// watchers that are gone are forgotten. False when the own stream refused
/// `e`: its client is gone or was cut off for reading too slowly.
bool publish(self_ptr self, const conversation_event& e,
             const std::shared_ptr<conversation_subscriber>& own) {
  auto& w = self->state.watchers;
  w.erase(std::remove_if(w.begin(), w.end(), [&](auto& s) { return !s->deliver(e); }), w.end());
  return !own || own->deliver(e);
}

void publish_message(self_ptr self, conversation_event::kind type, const message_record& m,
                     const std::shared_ptr<conversation_subscriber>& own) {
  conversation_event e;
  e.type = type;
  e.message = &m;
  publish(self, e, own);
}

/// Ends every watcher's subscription, telling it why.
void close_watchers(self_ptr self, const failure& why) {
  conversation_event e;
  e.type = conversation_event::kind::closed;
  e.reason = why;
  for (auto& w : self->state.watchers) w->deliver(e);
  self->state.watchers.clear();
}

// --- lifecycle ----------------------------------------------------------------

void passivate(self_ptr self) {
  self->state.ctx->dir->remove(self->state.id, self->address());
  self->quit();
}

/// Gives up on the conversation's state (a write failed, so memory and database
/// may disagree): fails everything queued and passivates; the next request
/// loads the truth from the database.
void abandon(self_ptr self, const failure& why) {
  auto& st = self->state;
  st.current = phase::gone;
  for (auto& op : st.queue) op.caller.fail(why);
  st.queue.clear();
  if (st.generation && st.generation->handle) st.generation->handle->cancel();
  close_watchers(self, why);
  passivate(self);
}

void start_next(self_ptr self);

/// Ends the running operation; the next queued one starts from the mailbox so
/// that deep chains of synchronous operations cannot recurse.
void finish_op(self_ptr self) {
  auto& st = self->state;
  st.running = nullptr;
  st.conflict_retries = 0;
  if (st.current == phase::gone) {
    abandon(self, conversation_not_found(st.id));
    return;
  }
  if (st.queue.empty()) {
    st.busy = false;
    return;
  }
  self->send(self, idle_atom::value, true);  // "run next", see the idle handler
}

void start_next(self_ptr self) {
  auto& st = self->state;
  if (st.queue.empty()) {
    st.busy = false;
    return;
  }
  auto op = std::move(st.queue.front());
  st.queue.pop_front();
  st.busy = true;
  st.running = op.run;
  op.run();
}

/// Runs `run` now if nothing else is running, else queues it (up to the limit).
void enqueue(self_ptr self, const reply_slot& caller, std::function<void()> run) {
  auto& st = self->state;
  caller.accept();
  st.last_active = std::chrono::steady_clock::now();
  if (st.current == phase::gone) {
    caller.fail(conversation_not_found(st.id));
    return;
  }
  if (!st.busy) {
    st.busy = true;
    st.running = run;
    run();
    return;
  }
  if (st.queue.size() >= st.ctx->cfg.limits.conversation_queue) {
    failure f{errc::queue_full, "conversation " + st.id + " has too many operations waiting"};
    f.retry_after_s = 1;
    caller.fail(std::move(f));
    return;
  }
  st.queue.push_back({std::move(run), caller});
}

/// True (and answers not_found) when `user` may not see this conversation.
bool foreign(self_ptr self, const std::string& user, const reply_slot& caller) {
  if (self->state.meta.user_id == user) return false;
  caller.fail(conversation_not_found(self->state.id));
  finish_op(self);
  return true;
}

// --- database access ------------------------------------------------------------

/// (Re)reads the conversation and its window from the database, then runs
/// `then`; `failed` gets what went wrong (not_found when it is gone).
void load_state(self_ptr self, std::function<void()> then,
                std::function<void(const failure&)> failed) {
  auto ctx = self->state.ctx;
  auto id = self->state.id;
  auto on_error = [=](caf::error& e) { failed(to_failure(e, errc::db_unavailable)); };
  // Flush the writer first: it works through its mailbox in order, so once it
  // answers, every write handed to it before (perhaps by this conversation's
  // previous actor, which gave up waiting for it) is committed or failed, and
  // the load cannot read from before it.
  self->request(ctx->db.writer, persistence_wait, flush_atom::value)
      .then(
          [=](ok_atom) {
            read_job job = [ctx, id](store& db) {
              return caf::make_message(load_conversation(db, *ctx, id));
            };
            self->request(ctx->db.readers, persistence_wait, read_atom::value, std::move(job))
                .then(
                    [=](loaded_conversation& loaded) {
                      auto& st = self->state;
                      if (!loaded.row) {
                        failed(conversation_not_found(st.id));
                        return;
                      }
                      st.meta = std::move(*loaded.row);
                      st.window.reset(loaded.recent, budget_for(*st.ctx, st.meta),
                                      loaded.older_exist);
                      st.current = phase::ready;
                      then();
                    },
                    on_error);
          },
          on_error);
}

/// Commits `writes`; on success runs `then`. When another process changed the
/// conversation meanwhile, reloads it and runs the operation again (its reply
/// must be built on the history as it now is); on any other failure answers
/// `caller` and abandons.
void commit(self_ptr self, write_set writes, reply_slot caller, std::function<void()> then) {
  self->request(self->state.ctx->db.writer, persistence_wait, write_atom::value, std::move(writes))
      .then([=](ok_atom) { then(); },
            [=](caf::error& e) mutable {
              auto f = to_failure(e, errc::db_unavailable);
              auto& st = self->state;
              auto give_up = [=](const failure& why) {
                caller.fail(why);
                abandon(self, why);
              };
              if (f.code != errc::conflict || !st.running ||
                  st.conflict_retries >= max_conflict_retries) {
                give_up(f);
                return;
              }
              ++st.conflict_retries;
              spdlog::info("conversation {} changed in the database meanwhile; reloading", st.id);
              load_state(
                  self, [self] { std::function<void()>(self->state.running)(); }, give_up);
            });
}

/// Runs `job` on a reader; on failure answers `caller`, ends the operation.
template <class T>
void read(self_ptr self, std::function<T(store&)> job, reply_slot caller,
          std::function<void(T&)> then) {
  read_job wrapped = [job](store& db) { return caf::make_message(job(db)); };
  self->request(self->state.ctx->db.readers, persistence_wait, read_atom::value, std::move(wrapped))
      .then([=](T& value) { then(value); },
            [=](caf::error& e) {
              // A new conversation that cannot go on is dropped, not left half-made.
              if (self->state.current == phase::creating) self->state.current = phase::gone;
              caller.fail(to_failure(e, errc::db_unavailable));
              finish_op(self);
            });
}

/// Reloads the window when older messages might fit again (an edit, a
/// deletion, a larger budget), then runs `then`.
void ensure_window(self_ptr self, const reply_slot& caller, std::function<void()> then) {
  auto& st = self->state;
  // The budget moves when the model's calibration does.
  if (auto budget = budget_for(*st.ctx, st.meta); budget != st.window.budget())
    st.window.set_budget(budget);
  if (!st.window.needs_refill()) {
    then();
    return;
  }
  auto ctx = st.ctx;
  auto id = st.id;
  read<loaded_conversation>(
      self, [ctx, id](store& db) { return load_conversation(db, *ctx, id); }, caller,
      [=](loaded_conversation& loaded) {
        auto& st = self->state;
        st.window.reset(loaded.recent, budget_for(*st.ctx, st.meta), loaded.older_exist);
        then();
      });
}

// --- generation -------------------------------------------------------------------

struct sampling {
  std::optional<double> temperature;
  std::optional<std::uint32_t> max_tokens;
};

/// Asks `model` for a reply to `messages`; `then` gets the outcome and the text.
/// The generation is given up at `deadline`.
void generate(self_ptr self, const model_info& model, prompt messages, const sampling& params,
              steady_time deadline, const std::shared_ptr<cancellation>& cancel,
              const std::shared_ptr<conversation_subscriber>& stream, bool live,
              std::function<void(outcome<completion_result>, std::string)> then) {
  auto& st = self->state;
  auto gen = ++st.generations_started;
  st.generation = active_generation{gen, {}, nullptr, stream, live, std::move(then)};
  completion_request request;
  request.upstream_model = model.upstream;
  auto estimated_prompt = messages.estimated_tokens();
  request.messages = std::move(messages);
  request.temperature = params.temperature;
  request.max_tokens = std::min<std::uint32_t>(params.max_tokens.value_or(model.max_output_tokens),
                                               model.max_output_tokens);
  request.deadline = deadline;
  // Someone reads the reply as it is written: ask for it piece by piece.
  request.stream = live;
  auto me = caf::actor_cast<caf::actor>(self);
  completion_callbacks callbacks;
  // Text nobody reads as it comes is gathered where the provider delivers it
  // and handed over whole with the result: one message, not one per piece.
  // The provider never calls the two callbacks at once, nor on_delta after
  // on_finish, so they share it without a lock.
  std::shared_ptr<std::string> gathered;
  if (live) {
    callbacks.on_delta = [me, gen](std::string text) {
      caf::anon_send(me, delta_atom::value, gen, std::move(text));
    };
  } else {
    gathered = std::make_shared<std::string>();
    callbacks.on_delta = [gathered](std::string text) { *gathered += text; };
  }
  auto finished = std::make_shared<std::atomic<bool>>(false);
  callbacks.on_finish = [me, gen, finished, gathered, calibration = model.calibration,
                         estimated_prompt](outcome<completion_result> result) {
    if (result && result->usage_reported)
      calibration->observe(estimated_prompt, result->usage.prompt_tokens);
    finished->store(true);
    caf::anon_send(me, generated_atom::value, gen, std::move(result),
                   gathered ? std::move(*gathered) : std::string());
  };
  st.generation->handle = model.impl->start(std::move(request), std::move(callbacks));
  if (cancel) cancel->on_cancel([me, gen] { caf::anon_send(me, cancel_atom::value, gen); });
  // A provider that answered within start() needs no deadline; a timer per
  // request is not free (it wakes CAF's clock thread).
  if (!finished->load())
    self->delayed_send(self, std::max(deadline - steady_clock::now(), steady_clock::duration(0)),
                       deadline_atom::value, gen);
}

/// Hands the finished generation `gen` to its continuation, once.
void complete_generation(self_ptr self, std::uint64_t gen, outcome<completion_result> result) {
  auto& st = self->state;
  if (!st.generation || st.generation->id != gen)
    return;  // a late answer to a generation already given up on
  auto done = std::move(*st.generation);
  st.generation.reset();
  done.then(std::move(result), std::move(done.text));
}

// --- exchanges: create, send, regenerate ------------------------------------------

/// Everything one exchange will write, decided before the provider is asked.
struct exchange_plan {
  completion<exchange_result> caller;
  bool create = false;
  std::optional<message_record> user_message;
  std::optional<std::string> replaces;  ///< regenerate: the assistant message it replaces
  bool reply = false;
  std::string model;
  sampling params;
  std::shared_ptr<cancellation> cancel;             ///< the client's, if it may go away
  std::shared_ptr<conversation_subscriber> stream;  ///< the client's, if it streams
  /// Clients see the reply as it is written (it streams, or others watch):
  /// the user message is then stored before the model is asked.
  bool live = false;
  bool user_stored = false;  ///< the user message (and a new conversation) is committed
  std::optional<idempotency_claim> claim;
};

message_record new_message(const conversation_record& meta, std::int64_t seq, std::string role,
                           shared_text content) {
  message_record m;
  m.id = make_uuid_v7();
  m.conversation_id = meta.id;
  m.seq = seq;
  m.role = std::move(role);
  m.content = std::move(content);
  m.created_at = now_ms();
  return m;
}

exchange_facts facts_of(const exchange_plan& plan) {
  return {plan.create, plan.user_message ? &*plan.user_message : nullptr, plan.user_stored,
          plan.replaces ? &*plan.replaces : nullptr};
}

/// Commits the exchange (with the reply, if any) and answers.
void finalize_exchange(self_ptr self, exchange_plan plan, std::optional<message_record> reply,
                       const completion_usage& usage) {
  auto& st = self->state;
  auto now = now_ms();
  auto c =
      commit_exchange(st.meta, facts_of(plan), reply, usage, model_of(*st.ctx, plan.model), now);
  add_claim(c.writes, plan.claim, c.meta.user_id, c.result, plan.user_stored);
  commit(self, std::move(c.writes), plan.caller,
         [=, meta = std::move(c.meta), result = std::move(c.result)]() mutable {
           auto& st = self->state;
           st.meta = meta;
           st.current = phase::ready;
           if (reply)
             st.ctx->meter.add(meta.user_id, format_day(now),
                               usage.prompt_tokens + usage.completion_tokens);
           bool store_user = plan.user_message && !plan.user_stored;
           if (plan.replaces) st.window.remove(*plan.replaces);
           if (store_user) st.window.append(*plan.user_message);
           if (reply) st.window.append(*reply);
           using kind = conversation_event::kind;
           if (store_user) publish_message(self, kind::message, *plan.user_message, plan.stream);
           if (reply) publish_message(self, kind::done, *reply, plan.stream);
           plan.caller.complete(std::move(result));
           finish_op(self);
         });
}

/// The provider failed: keep the user message (and a new conversation), answer the failure.
void fail_exchange(self_ptr self, exchange_plan plan, failure why) {
  auto& st = self->state;
  if (plan.user_message)
    why.message_id = plan.user_message->id;
  else
    for (auto i = st.window.size(); i > 0; --i)
      if (auto e = st.window.at(i - 1); e.message.role == "user") {
        why.message_id = e.id;
        break;
      }
  auto c = commit_failed_exchange(st.meta, facts_of(plan), now_ms());
  if (c.writes.empty() && !plan.claim) {
    plan.caller.fail(why);
    finish_op(self);
    return;
  }
  bool store_user = plan.user_message && !plan.user_stored;
  add_claim(c.writes, plan.claim, c.meta.user_id, why, plan.user_stored);
  commit(self, std::move(c.writes), plan.caller, [=, meta = std::move(c.meta)]() mutable {
    auto& st = self->state;
    st.meta = meta;
    st.current = phase::ready;
    if (store_user) {
      st.window.append(*plan.user_message);
      publish_message(self, conversation_event::kind::message, *plan.user_message, nullptr);
    }
    plan.caller.fail(why);
    finish_op(self);
  });
}

/// Commits the exchange's user message (and a new conversation) before the
/// model is asked, so that live clients are told of a stored message; the
/// reply is committed when it is complete.
void store_user_message(self_ptr self, exchange_plan plan,
                        std::function<void(exchange_plan)> then) {
  auto c = commit_user_message(self->state.meta, *plan.user_message, plan.create, now_ms());
  // Until the reply is stored, a repeat of the request gets what a failed
  // provider would have answered, never a second copy of the message.
  failure interrupted{errc::provider_error, reply_interrupted_detail};
  interrupted.message_id = plan.user_message->id;
  add_claim(c.writes, plan.claim, c.meta.user_id, interrupted);
  auto caller = plan.caller;
  commit(self, std::move(c.writes), caller, [=, meta = std::move(c.meta)]() mutable {
    auto& st = self->state;
    st.meta = meta;
    st.current = phase::ready;
    st.window.append(*plan.user_message);
    // A conflict from here on must not run the operation again: its message is stored.
    st.running = nullptr;
    plan.user_stored = true;
    publish_message(self, conversation_event::kind::message, *plan.user_message, plan.stream);
    then(std::move(plan));
  });
}

/// The tokens per day `user` may still use: answers `caller` with 429 when
/// the limit is reached, runs `then` otherwise.
void check_token_quota(self_ptr self, const std::string& user, reply_slot caller,
                       std::function<void()> then) {
  auto& st = self->state;
  auto limit = static_cast<std::int64_t>(st.ctx->cfg.limits.tokens_per_day);
  if (limit == 0) {
    then();
    return;
  }
  auto now = now_ms();
  auto day = format_day(now);
  auto decide = [self, caller, then, limit, now, user, day]() mutable {
    auto used = self->state.ctx->meter.used(user, day).value_or(0);
    if (used < limit) {
      then();
      return;
    }
    constexpr std::int64_t day_ms = 86400000;
    failure f{errc::rate_limited, "user " + user + " has used the " + std::to_string(limit) +
                                      " tokens allowed per day"};
    f.retry_after_s = static_cast<unsigned>((day_ms - now % day_ms + 999) / 1000);
    if (self->state.current == phase::creating) self->state.current = phase::gone;
    caller.fail(std::move(f));
    finish_op(self);
  };
  if (st.ctx->meter.used(user, day)) {
    decide();
    return;
  }
  read<std::int64_t>(
      self,
      [user, day](store& db) {
        std::int64_t tokens = 0;
        for (auto& row : db.usage(user, day, day))
          tokens += row.prompt_tokens + row.completion_tokens;
        return tokens;
      },
      caller,
      [self, user, day, decide](std::int64_t& tokens) mutable {
        self->state.ctx->meter.seed(user, day, tokens);
        decide();
      });
}

/// The prompt `model` gets for the exchange: the system prompt and as much of
/// the window as fits the model's budget.
prompt prompt_for(const conversation_state& st, const exchange_plan& plan,
                  const model_info& model) {
  auto budget = message_budget(model.context_budget(), st.meta.system_prompt);
  bool pending = plan.user_message && !plan.user_stored;
  return st.window.assemble_with(st.meta.system_prompt, pending ? &*plan.user_message : nullptr,
                                 plan.replaces ? &*plan.replaces : nullptr, budget);
}

/// Asks `model`, then each model of its fallback chain in turn while the
/// deadline allows, and finishes the exchange with the first answer or the
/// last failure. `asked` counts the models asked before this one.
void ask_model(self_ptr self, exchange_plan plan, const model_info& model, steady_time deadline,
               std::size_t asked) {
  auto& st = self->state;
  generate(
      self, model, prompt_for(st, plan, model), plan.params, deadline, plan.cancel, plan.stream,
      plan.live, [=, &model](outcome<completion_result> result, std::string text) mutable {
        auto& st = self->state;
        if (result && result->reason == finish_reason::cancelled && text.empty()) {
          // The client went away before any text: only its message is kept.
          fail_exchange(self, std::move(plan),
                        {errc::provider_error, "the client went away before the reply"});
          return;
        }
        if (!result) {
          auto fallback = model.fallback.empty() ? nullptr : st.ctx->models->find(model.fallback);
          // Text that clients already saw cannot be taken back by another model's.
          bool seen = plan.live && !text.empty();
          if (fallback && !seen && asked + 1 < st.ctx->models->all().size() &&
              steady_clock::now() < deadline) {
            spdlog::warn("conversation {}: model {} failed ({}); trying {}", st.id, model.id,
                         result.error().detail, fallback->id);
            ask_model(self, std::move(plan), *fallback, deadline, asked + 1);
            return;
          }
          fail_exchange(self, std::move(plan), result.error());
          return;
        }
        plan.model = model.id;
        auto next_seq = (plan.user_message ? plan.user_message->seq : st.meta.last_seq) + 1;
        auto reply = new_message(st.meta, next_seq, "assistant", std::move(text));
        reply.model = model.id;
        reply.finish_reason = to_string(result->reason);
        reply.prompt_tokens = result->usage.prompt_tokens;
        reply.completion_tokens = result->usage.completion_tokens;
        finalize_exchange(self, std::move(plan), std::move(reply), result->usage);
      });
}

/// Runs an exchange: checks the user's token quota, asks the model if a reply
/// is wanted, commits everything in one write set and answers.
void run_exchange(self_ptr self, exchange_plan plan) {
  auto& st = self->state;
  if (!plan.reply) {
    finalize_exchange(self, std::move(plan), std::nullopt, {});
    return;
  }
  auto user = st.meta.user_id;
  auto caller = plan.caller;
  check_token_quota(self, user, caller, [self, plan]() mutable {
    auto& st = self->state;
    auto deadline = steady_clock::now() + milliseconds(st.ctx->cfg.actors.generation_timeout_ms);
    auto ask = [self, deadline](exchange_plan plan) {
      auto& model = model_of(*self->state.ctx, plan.model);
      ask_model(self, std::move(plan), model, deadline, 0);
    };
    plan.live = plan.stream || !st.watchers.empty();
    if (plan.live && plan.user_message) {
      store_user_message(self, std::move(plan), ask);
      return;
    }
    if (plan.stream) {
      conversation_event started;
      started.type = conversation_event::kind::started;
      plan.stream->deliver(started);
    }
    ask(std::move(plan));
  });
}

void op_create(self_ptr self, new_conversation request, std::optional<idempotency_claim> claim,
               const completion<exchange_result>& caller) {
  auto& st = self->state;
  auto now = now_ms();
  st.meta.id = st.id;
  st.meta.user_id = request.user_id;
  st.meta.title = request.title;
  st.meta.model = request.model;
  st.meta.system_prompt = request.system_prompt;
  st.meta.metadata_json = request.metadata_json;
  st.meta.created_at = now;
  st.meta.updated_at = now;
  st.window.reset({}, budget_for(*st.ctx, st.meta), false);
  exchange_plan plan{.caller = caller};
  plan.create = true;
  plan.model = st.meta.model;
  plan.claim = std::move(claim);
  if (request.first_message) {
    auto& m = *request.first_message;
    plan.user_message = new_message(st.meta, 1, m.role, m.content);
    plan.reply = m.reply;
    if (m.model) plan.model = *m.model;
    plan.params = {m.temperature, m.max_tokens};
    plan.cancel = m.cancel;
    plan.stream = m.stream;
  }
  run_exchange(self, std::move(plan));
}

void op_send(self_ptr self, const std::string& user, const send_params& p,
             const std::optional<idempotency_claim>& claim,
             const completion<exchange_result>& caller) {
  if (foreign(self, user, caller)) return;
  ensure_window(self, caller, [=] {
    auto& st = self->state;
    exchange_plan plan{.caller = caller};
    plan.user_message = new_message(st.meta, st.meta.last_seq + 1, p.role, p.content);
    plan.reply = p.reply;
    plan.model = p.model.value_or(st.meta.model);
    plan.params = {p.temperature, p.max_tokens};
    plan.cancel = p.cancel;
    plan.stream = p.stream;
    plan.claim = claim;
    run_exchange(self, std::move(plan));
  });
}

void op_regenerate(self_ptr self, const std::string& user, const regenerate_params& p,
                   const std::optional<idempotency_claim>& claim,
                   const completion<exchange_result>& caller) {
  if (foreign(self, user, caller)) return;
  ensure_window(self, caller, [=] {
    auto& st = self->state;
    if (st.window.empty()) {
      caller.fail({errc::conflict, "conversation " + st.id + " has no messages to reply to"});
      finish_op(self);
      return;
    }
    exchange_plan plan{.caller = caller};
    if (auto last = st.window.back(); last.message.role == "assistant") plan.replaces = last.id;
    plan.reply = true;
    plan.model = p.model.value_or(st.meta.model);
    plan.cancel = p.cancel;
    plan.stream = p.stream;
    plan.claim = claim;
    run_exchange(self, std::move(plan));
  });
}

// --- the other operations ----------------------------------------------------------

void op_update(self_ptr self, const std::string& user, const conversation_patch& patch,
               const completion<conversation_record>& caller) {
  if (foreign(self, user, caller)) return;
  auto meta = self->state.meta;
  if (patch.title) meta.title = *patch.title;
  if (patch.model) meta.model = *patch.model;
  if (patch.system_prompt) meta.system_prompt = *patch.system_prompt;
  if (patch.metadata_json) meta.metadata_json = *patch.metadata_json;
  meta.updated_at = now_ms();
  write_set writes{next_version(meta)};
  commit(self, std::move(writes), caller, [=] {
    auto& st = self->state;
    st.meta = meta;
    st.window.set_budget(budget_for(*st.ctx, meta));
    caller.complete(meta);
    finish_op(self);
  });
}

void op_delete(self_ptr self, const std::string& user, const completion<done>& caller) {
  if (foreign(self, user, caller)) return;
  commit(self, {write::delete_conversation{self->state.id}}, caller, [=] {
    self->state.current = phase::gone;
    close_watchers(self, {errc::not_found, "conversation " + self->state.id + " was deleted"});
    caller.complete(done{});
    finish_op(self);  // answers whatever is queued with not_found and passivates
  });
}

/// Looks up `message_id` in this conversation, then runs `then` with it.
void with_message(self_ptr self, const std::string& message_id, const reply_slot& caller,
                  std::function<void(message_record&)> then) {
  auto id = self->state.id;
  read<std::optional<message_record>>(
      self, [id, message_id](store& db) { return db.find_message(id, message_id); }, caller,
      [=](std::optional<message_record>& found) {
        if (!found) {
          caller.fail({errc::not_found, "message " + message_id + " not found"});
          finish_op(self);
          return;
        }
        then(*found);
      });
}

void op_edit(self_ptr self, const std::string& user, const std::string& message_id,
             const shared_text& content, const completion<message_record>& caller) {
  if (foreign(self, user, caller)) return;
  with_message(self, message_id, caller, [=](message_record& found) {
    auto edited = found;
    edited.content = content;
    edited.edited_at = now_ms();
    auto meta = self->state.meta;
    meta.updated_at = *edited.edited_at;
    write_set writes{write::update_message{edited.id, edited.content, *edited.edited_at},
                     next_version(meta)};
    commit(self, std::move(writes), caller, [=] {
      auto& st = self->state;
      st.meta = meta;
      st.window.edit(edited.id, edited.content);
      caller.complete(edited);
      finish_op(self);
    });
  });
}

void op_remove(self_ptr self, const std::string& user, const std::string& message_id,
               const completion<done>& caller) {
  if (foreign(self, user, caller)) return;
  with_message(self, message_id, caller, [=](message_record& found) {
    auto meta = self->state.meta;
    meta.updated_at = now_ms();
    meta.message_count -= 1;
    write_set writes{write::delete_message{found.id}, next_version(meta)};
    auto removed = found.id;
    commit(self, std::move(writes), caller, [=] {
      auto& st = self->state;
      st.meta = meta;
      st.window.remove(removed);
      caller.complete(done{});
      finish_op(self);
    });
  });
}

/// Reads a page of history.
std::function<message_page(store&)> history_read(const std::string& id, const history_query& q) {
  return [id, q](store& db) {
    message_page page;
    page.data = db.list_messages(id, q.after, q.before, q.limit + 1);
    if (page.data.size() > q.limit) {
      page.has_more = true;
      // Ascending either way: `before` pages drop the oldest, `after` pages the newest.
      if (q.before)
        page.data.erase(page.data.begin());
      else
        page.data.pop_back();
    }
    return page;
  };
}

/// Answers a history request: the reader answers the requester directly. The
/// database holds every acknowledged write, so this need not wait its turn.
void answer_history(self_ptr self, const std::string& user, const history_query& q,
                    const completion<message_page>& caller) {
  auto& st = self->state;
  if (st.meta.user_id != user)
    caller.fail(conversation_not_found(st.id));
  else
    caf::anon_send(st.ctx->db.readers, read_atom::value,
                   read_completing(history_read(st.id, q), caller));
}

// --- behavior ------------------------------------------------------------------------

void schedule_idle_check(self_ptr self, std::chrono::steady_clock::duration after) {
  self->delayed_send(self, after, idle_atom::value, false);
}

caf::behavior conversation(self_ptr self, engine_context* ctx, std::string id, bool fresh) {
  auto& st = self->state;
  st.ctx = ctx;
  st.id = id;
  st.last_active = std::chrono::steady_clock::now();
  st.busy = true;
  st.current = fresh ? phase::creating : phase::loading;
  schedule_idle_check(self, std::chrono::seconds(ctx->cfg.actors.idle_timeout_s));
  // A bug must not take the process down: log it, drop this actor's state
  // (the next request reloads it), and let waiting requesters see an error.
  self->set_exception_handler([self](std::exception_ptr& eptr) -> caf::error {
    try {
      std::rethrow_exception(eptr);
    } catch (const std::exception& e) {
      spdlog::error("conversation {}: {}", self->state.id, e.what());
    } catch (...) {
      spdlog::error("conversation {}: unknown exception", self->state.id);
    }
    close_watchers(self, {errc::internal, "the conversation failed; reconnect"});
    self->state.ctx->dir->remove(self->state.id, self->address());
    return caf::exit_reason::unhandled_exception;
  });
  if (!fresh)
    load_state(
        self, [self] { start_next(self); }, [self](const failure& why) { abandon(self, why); });
  return {
      // --- requests: each answers its caller, queued behind the operations before it ---
      [=](create_atom, new_conversation& request, std::optional<idempotency_claim>& claim,
          const completion<exchange_result>& caller) {
        caller.accept();
        if (self->state.current != phase::creating) {
          caller.fail({errc::conflict, "conversation already exists"});
          return;
        }
        op_create(self, std::move(request), std::move(claim), caller);
      },
      [=](update_atom, const std::string& user, const conversation_patch& patch,
          const completion<conversation_record>& caller) {
        enqueue(self, caller, [=] { op_update(self, user, patch, caller); });
      },
      [=](delete_atom, const std::string& user, const completion<done>& caller) {
        enqueue(self, caller, [=] { op_delete(self, user, caller); });
      },
      [=](history_atom, const std::string& user, const history_query& q,
          const completion<message_page>& caller) {
        auto& st = self->state;
        if (st.current == phase::ready) {
          caller.accept();
          st.last_active = std::chrono::steady_clock::now();
          answer_history(self, user, q, caller);
        } else {
          // Still loading: the owner is not known yet.
          enqueue(self, caller, [=] {
            answer_history(self, user, q, caller);
            finish_op(self);
          });
        }
      },
      [=](send_atom, const std::string& user, const send_params& p,
          const std::optional<idempotency_claim>& claim,
          const completion<exchange_result>& caller) {
        enqueue(self, caller, [=] { op_send(self, user, p, claim, caller); });
      },
      [=](edit_atom, const std::string& user, const std::string& message_id,
          const shared_text& content, const completion<message_record>& caller) {
        enqueue(self, caller, [=] { op_edit(self, user, message_id, content, caller); });
      },
      [=](remove_atom, const std::string& user, const std::string& message_id,
          const completion<done>& caller) {
        enqueue(self, caller, [=] { op_remove(self, user, message_id, caller); });
      },
      [=](regen_atom, const std::string& user, const regenerate_params& p,
          const std::optional<idempotency_claim>& claim,
          const completion<exchange_result>& caller) {
        enqueue(self, caller, [=] { op_regenerate(self, user, p, claim, caller); });
      },
      // --- live subscribers ---
      [=](watch_atom, const std::string& user, const std::shared_ptr<conversation_subscriber>& s,
          const completion<done>& caller) {
        auto add = [self, user, s, caller] {
          auto& st = self->state;
          if (st.meta.user_id != user) {
            caller.fail(conversation_not_found(st.id));
            return;
          }
          st.watchers.push_back(s);
          caller.complete(done{});
        };
        if (self->state.current == phase::ready) {
          caller.accept();
          add();
        } else {
          // Still loading: the owner is not known yet.
          enqueue(self, caller, [self, add] {
            add();
            finish_op(self);
          });
        }
      },
      [=](unwatch_atom, const std::shared_ptr<conversation_subscriber>& s) {
        auto& w = self->state.watchers;
        w.erase(std::remove(w.begin(), w.end(), s), w.end());
        self->state.last_active = std::chrono::steady_clock::now();
      },
      // --- the provider's answers ---
      [=](delta_atom, std::uint64_t gen, std::string& text) {
        auto& st = self->state;
        if (!st.generation || st.generation->id != gen) return;
        st.generation->text += text;
        // A watcher that came during an exchange begun without any gets its
        // message and done, not deltas ahead of the message.
        if (!st.generation->live) return;
        conversation_event e;
        e.type = conversation_event::kind::delta;
        e.text = std::move(text);
        if (!publish(self, e, st.generation->stream)) {
          // The exchange's own client was cut off (an SSE stream whose reader
          // fell too far behind): call the generation off as if it had hung
          // up, so the text so far is stored as cancelled. Its connection stays
          // open, so the connection watch would not fire until the client
          // closes it, and a provider deadline passing first would fail the
          // generation and drop the whole reply.
          st.generation->stream = nullptr;
          if (st.generation->handle) st.generation->handle->cancel();
        }
      },
      [=](generated_atom, std::uint64_t gen, outcome<completion_result>& result,
          std::string& gathered) {
        auto& st = self->state;
        if (st.generation && st.generation->id == gen) {
          if (st.generation->text.empty())
            st.generation->text = std::move(gathered);
          else
            st.generation->text += gathered;
        }
        complete_generation(self, gen, std::move(result));
      },
      [=](cancel_atom, std::uint64_t gen) {
        auto& st = self->state;
        // The provider then finishes with finish_reason::cancelled and the text so far.
        if (st.generation && st.generation->id == gen && st.generation->handle)
          st.generation->handle->cancel();
      },
      [=](deadline_atom, std::uint64_t gen) {
        auto& st = self->state;
        if (!st.generation || st.generation->id != gen) return;
        if (st.generation->handle) st.generation->handle->cancel();
        complete_generation(self, gen,
                            failure{errc::provider_timeout, "the model did not answer in time"});
      },
      // --- housekeeping ---
      [=](idle_atom, bool run_next) {
        if (run_next) {
          start_next(self);
          return;
        }
        auto& st = self->state;
        auto idle_for = std::chrono::seconds(st.ctx->cfg.actors.idle_timeout_s);
        auto quiet = std::chrono::steady_clock::now() - st.last_active;
        if (!st.busy && st.queue.empty() && st.watchers.empty() && quiet >= idle_for)
          passivate(self);
        else
          schedule_idle_check(self, quiet >= idle_for ? idle_for : idle_for - quiet);
      },
      [=](passivate_atom) {
        auto& st = self->state;
        if (!st.busy && st.queue.empty() && st.watchers.empty()) passivate(self);
      },
  };
}

}  // namespace

failure conversation_not_found(const std::string& id) {
  return {errc::not_found, "conversation " + id + " not found"};
}

// Lazily started: the actor begins (and a loading one starts its load) only
// once the request it was spawned for is in its mailbox, so that request is
// read even when the conversation turns out missing and the actor stops at once.

caf::actor spawn_loading_conversation(caf::actor_system& sys, engine_context* ctx,
                                      const std::string& id) {
  return sys.spawn<caf::lazy_init>(conversation, ctx, id, false);
}

caf::actor spawn_new_conversation(caf::actor_system& sys, engine_context* ctx,
                                  const std::string& id) {
  return sys.spawn<caf::lazy_init>(conversation, ctx, id, true);
}

}  // namespace parley
