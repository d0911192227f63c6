#include "actors/stateless_completion.hpp"

#include "actors/conversation_state.hpp"
#include "actors/exchange_writes.hpp"

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>

namespace parley {

namespace {

/// A stored branch as a stateless call continues it.
struct branch_read {
  std::string model;  ///< the conversation's
  std::optional<std::string> system_prompt;
  std::vector<message_record> recent;  ///< its newest messages that fit, oldest first
};

}  // namespace

}  // namespace parley

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::outcome<parley::branch_read>)

namespace parley {

namespace {

using conversation_detail::alarm_to;
using conversation_detail::load_branch;
using conversation_detail::model_of;
using conversation_detail::persistence_wait;
using conversation_detail::steady_time;

struct stateless_state {
  engine_context* ctx = nullptr;
  stateless_request request;
  std::optional<completion<stateless_result>> caller;
  std::string model;  ///< the alias asked first
  prompt messages;    ///< the system prompt, the context read (if any), the call's messages
  std::vector<const model_info*> asked;  ///< the models asked, the one answering last
  std::shared_ptr<completion_handle> handle;
  steady_time deadline;
  conversation_detail::deadline_alarm alarm;  ///< cancels the generation at `deadline`
  bool cancelled = false;
  static inline const char* name = "stateless_completion";
};
using stateless_actor = caf::stateful_actor<stateless_state>;

void finish(stateless_actor* self, outcome<stateless_result> result) {
  // The generation slot is free before the answer leaves: a client calling
  // again as soon as it has it is not refused.
  self->state.request.hold.reset();
  auto& caller = *self->state.caller;
  if (result)
    caller.complete(std::move(*result));
  else
    caller.fail(std::move(result.error()));
  self->quit();
}

/// Runs `job` on a reader, then `then` with what it returned; a failed read ends the call.
template <class T>
void read(stateless_actor* self, std::function<T(store&)> job, std::function<void(T&)> then) {
  read_job wrapped = [job = std::move(job)](store& db) { return caf::make_message(job(db)); };
  self->request(self->state.ctx->db.readers, persistence_wait, read_atom::value, std::move(wrapped))
      .then([then](T& value) { then(value); },
            [self](caf::error& e) { finish(self, to_failure(e, errc::db_unavailable)); });
}

/// The user's tokens per day: the call ends with 429 once they are used.
void check_quota(stateless_actor* self, std::function<void()> then) {
  auto* ctx = self->state.ctx;
  auto limit = static_cast<std::int64_t>(ctx->cfg.limits.tokens_per_day);
  if (limit == 0) {
    then();
    return;
  }
  auto user = self->state.request.user_id;
  auto now = ctx->clock->wall_ms();
  auto day = format_day(now);
  auto decide = [self, ctx, then, limit, now, user, day] {
    if (ctx->meter.used(user, day).value_or(0) < limit)
      then();
    else
      finish(self, token_quota_reached(user, limit, now));
  };
  if (ctx->meter.used(user, day)) {
    refresh_when_stale(*ctx, user, day);
    decide();
    return;
  }
  read<std::int64_t>(
      self, [user, day](store& db) { return tokens_used(db, user, day); },
      [ctx, user, day, decide](std::int64_t& tokens) {
        ctx->meter.seed(user, day, tokens, ctx->clock->now());
        decide();
      });
}

/// The prompt every model of the call is asked: `system`, then `context`,
/// then the call's own messages.
void set_prompt(stateless_state& st, const std::optional<std::string>& system,
                const std::vector<message_record>& context) {
  auto history = std::make_shared<prompt::history>();
  std::int64_t tokens = 0;
  for (auto& m : context) history->emplace_back(m.role, m.content);
  for (auto& m : st.request.messages) history->push_back(m);
  for (auto& m : *history) tokens += m.tokens;
  std::optional<chat_message> system_message;
  if (system) system_message.emplace("system", *system);
  st.messages =
      prompt(std::move(system_message), history, 0, history->size(), tokens, std::nullopt);
}

/// The model asked first and the prompt: the stored branch (if any) as far
/// as it fits next to the call's own messages.
void read_context(stateless_actor* self, std::function<void()> then) {
  auto& st = self->state;
  auto& r = st.request;
  if (!r.context) {
    st.model = r.model.empty() ? st.ctx->models->default_model().id : r.model;
    set_prompt(st, r.system, {});
    then();
    return;
  }
  std::int64_t own_tokens = 0;
  for (auto& m : r.messages) own_tokens += m.tokens;
  auto job = [ctx = st.ctx, user = r.user_id, context = *r.context, model = r.model,
              system = r.system, own_tokens](store& db) -> outcome<branch_read> {
    auto row = db.find_conversation(context.conversation_id);
    if (!row || row->user_id != user) return conversation_not_found(context.conversation_id);
    branch_read out{model.empty() ? row->model : model, row->system_prompt, {}};
    auto& info = model_of(*ctx, out.model);
    auto budget = message_budget(info.context_budget(), system ? system : row->system_prompt);
    auto leaf = context.leaf_id ? context.leaf_id : row->active_leaf_id;
    if (!leaf) return out;
    auto branch = load_branch(db, context.conversation_id, leaf,
                              std::max<std::int64_t>(budget - own_tokens, 0), false);
    // A walk from a message of another conversation finds nothing.
    if (context.leaf_id && branch.recent.empty())
      return failure{errc::not_found, "message " + *context.leaf_id + " not found"};
    out.recent = std::move(branch.recent);
    return out;
  };
  read<outcome<branch_read>>(self, job, [self, then](outcome<branch_read>& got) {
    if (!got) {
      finish(self, std::move(got.error()));
      return;
    }
    auto& st = self->state;
    st.model = got->model;
    set_prompt(st, st.request.system ? st.request.system : got->system_prompt, got->recent);
    then();
  });
}

/// Asks `model` until the call's deadline (as an exchange's: the generation,
/// fallbacks included, ends by it, and its provider request is cancelled
/// then). The provider's answer comes back as a generated_atom message.
void ask(stateless_actor* self, const model_info& model) {
  auto& st = self->state;
  if (st.cancelled) {
    finish(self, failure{errc::provider_error, "the client went away before the reply"});
    return;
  }
  st.asked.push_back(&model);
  st.alarm = alarm_to(*st.ctx->deadlines, self->address(), st.deadline,
                      caf::make_message(deadline_atom::value));
  completion_request request;
  request.upstream_model = model.upstream;
  request.messages = st.messages;
  auto estimated_prompt = request.messages.estimated_tokens();
  request.temperature = st.request.temperature;
  request.max_tokens = std::min<std::uint32_t>(
      st.request.max_tokens.value_or(model.max_output_tokens), model.max_output_tokens);
  request.stop = st.request.stop;
  request.stream = static_cast<bool>(st.request.on_delta);
  // Providers keep time by the machine's clock.
  request.deadline = std::chrono::steady_clock::now() + (st.deadline - st.ctx->clock->now());
  // The provider never calls the two callbacks at once, nor on_delta after
  // on_finish, so they share the text without a lock.
  auto text = std::make_shared<std::string>();
  completion_callbacks callbacks;
  callbacks.on_delta = [text, forward = st.request.on_delta, alias = model.id](std::string piece) {
    *text += piece;
    if (forward) forward(alias, std::move(piece));
  };
  auto me = caf::actor_cast<caf::actor>(self);
  callbacks.on_finish = [me, text, calibration = model.calibration,
                         estimated_prompt](outcome<completion_result> result) {
    if (result && result->usage_reported)
      calibration->observe(estimated_prompt, result->usage.prompt_tokens);
    caf::anon_send(me, generated_atom::value, std::move(result), std::move(*text));
  };
  st.handle = model.impl->start(std::move(request), std::move(callbacks));
}

/// Commits the usage of the answer `model` gave, then answers.
void store_usage(stateless_actor* self, const model_info& model, completion_result result,
                 std::string text) {
  auto* ctx = self->state.ctx;
  auto user = self->state.request.user_id;
  auto now = ctx->clock->wall_ms();
  auto day = format_day(now);
  auto& u = result.usage;
  write_set writes{usage_of_request(user, now, model, u)};
  stateless_result answer{model.id, std::move(text), result.reason, u};
  self->request(ctx->db.writer, persistence_wait, write_atom::value, std::move(writes))
      .then(
          [self, ctx, user, day, answer](ok_atom) mutable {
            ctx->meter.add(user, day, answer.usage.prompt_tokens + answer.usage.completion_tokens);
            finish(self, std::move(answer));
          },
          [self](caf::error& e) { finish(self, to_failure(e, errc::db_unavailable)); });
}

caf::behavior stateless_completion(stateless_actor* self, engine_context* ctx,
                                   stateless_request request, completion<stateless_result> caller) {
  auto& st = self->state;
  st.ctx = ctx;
  st.request = std::move(request);
  st.caller.emplace(std::move(caller));
  st.caller->accept();
  st.deadline =
      ctx->clock->now() + std::chrono::milliseconds(ctx->cfg.actors.generation_timeout_ms);
  if (auto& cancel = st.request.cancel) {
    auto me = caf::actor_cast<caf::actor>(self);
    cancel->on_cancel([me] { caf::anon_send(me, cancel_atom::value); });
  }
  check_quota(self, [self] {
    read_context(self, [self] {
      // Accepted: the stream (if any) may begin.
      if (auto& started = self->state.request.on_started) started();
      ask(self, model_of(*self->state.ctx, self->state.model));
    });
  });
  return {
      [self](deadline_atom) {
        if (auto& handle = self->state.handle) handle->cancel();
        finish(self, failure{errc::provider_timeout, "the model did not answer in time"});
      },
      [self](cancel_atom) {
        auto& st = self->state;
        st.cancelled = true;
        // The provider then finishes with finish_reason::cancelled and the text so far.
        if (st.handle) st.handle->cancel();
      },
      [self](generated_atom, outcome<completion_result>& result, std::string& text) {
        auto& st = self->state;
        auto& model = *st.asked.back();
        st.handle.reset();
        // The generation is over: its deadline no longer applies (a fallback sets it again).
        st.alarm.reset();
        if (result && result->reason == finish_reason::cancelled && text.empty()) {
          finish(self, failure{errc::provider_error, "the client went away before the reply"});
          return;
        }
        if (!result) {
          auto fallback = st.ctx->models->fallback_after(model, st.asked.size());
          // Text the client already saw cannot be taken back by another model's.
          bool seen = st.request.on_delta && !text.empty();
          if (fallback && !seen && !st.cancelled && st.ctx->clock->now() < st.deadline) {
            spdlog::warn("completion for {}: model {} failed ({}); trying {}", st.request.user_id,
                         model.id, result.error().detail, fallback->id);
            ask(self, *fallback);
            return;
          }
          finish(self, std::move(result.error()));
          return;
        }
        store_usage(self, model, std::move(*result), std::move(text));
      },
  };
}

}  // namespace

void spawn_stateless_completion(caf::actor_system& sys, engine_context* ctx,
                                stateless_request request, completion<stateless_result> caller) {
  sys.spawn(stateless_completion, ctx, std::move(request), std::move(caller));
}

}  // namespace parley
