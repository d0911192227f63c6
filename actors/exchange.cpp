#include "actors/conversation_state.hpp"

#include "actors/exchange_writes.hpp"
#include "base/uuid.hpp"
#include "persistence/stored_answer.hpp"

#include <spdlog/spdlog.h>

#include <limits>

namespace parley::conversation_detail {

using std::chrono::milliseconds;

namespace {

/// The idempotency record to commit with an operation, if it claimed a key;
/// `replace`: the operation stored a provisional answer for it before.
void add_claim(write_set& writes, const std::optional<idempotency_claim>& claim,
               const std::string& user_id, const outcome<exchange_result>& result, unix_ms now,
               bool replace = false) {
  if (!claim) return;
  writes.push_back(write::put_idempotency{
      {user_id, claim->key, claim->request_hash, encode_answer(result), now}, replace});
}

/// Looks the claimed key up in the operation's turn: runs `then` when the key
/// is new, else answers `caller` with what is stored for it and ends the
/// operation (a new conversation is dropped unmade). `claim` is taken by
/// value: callers move the plan that holds it into `then`.
void replay_if_key_used(self_ptr self, const std::string& user,
                        std::optional<idempotency_claim> claim,
                        const completion<exchange_answer>& caller, std::function<void()> then) {
  if (!claim) {
    then();
    return;
  }
  read<std::optional<idempotency_record>>(
      self,
      [user, key = std::move(claim->key)](store& db) { return db.find_idempotency(user, key); },
      caller,
      [self, caller, then](std::optional<idempotency_record>& stored) {
        if (!stored) {
          then();
          return;
        }
        if (self->state.current == phase::creating) self->state.current = phase::gone;
        exchange_answer replay;
        replay.replayed = std::move(stored);
        caller.complete(std::move(replay));
        finish_op(self);
      });
}

// --- exchanges: create, send, regenerate ------------------------------------------

/// Another branch than the active one, which an exchange continues: it
/// becomes the active branch when the exchange commits.
struct branch_base {
  context_window window;
  std::optional<branch_summary> summary;
  std::int64_t length = 0;  ///< its messages, from the root
};

branch_base base_from(const loaded_branch& branch, std::int64_t budget) {
  branch_base base;
  base.window.reset(branch.recent, budget, branch.older_exist);
  base.summary = use_summary(branch.summary);
  base.length = branch.length;
  return base;
}

/// Everything one exchange will write, decided before the provider is asked.
struct exchange_plan {
  completion<exchange_answer> caller;
  bool create = false;
  std::optional<message_record> user_message;
  /// Stored with the user message, before it, in the same transaction (an
  /// input of several messages): each the parent of the next.
  std::vector<message_record> preceding;
  std::optional<std::string> replaces;  ///< regenerate: the active leaf it replaces
  std::optional<branch_base> base;      ///< set when continuing another branch
  /// The message the reply follows when no user message is sent
  /// (regenerate), and the reply's place among that message's children.
  std::optional<std::string> reply_parent;
  std::int64_t reply_sibling_index = 1;
  bool reply = false;
  std::string model;
  sampling params;
  std::optional<std::string> instructions;          ///< instead of the conversation's system prompt
  std::optional<std::string> reply_id;              ///< the caller's id for the reply
  std::shared_ptr<cancellation> cancel;             ///< the client's, if it may go away
  std::shared_ptr<conversation_subscriber> stream;  ///< the client's, if it streams
  /// Clients see the reply as it is written (it streams, or others watch):
  /// the user message is then stored before the model is asked.
  bool live = false;
  bool user_stored = false;   ///< the user message (and a new conversation) is committed
  bool run_recorded = false;  ///< a run record was committed with the user message
  std::optional<idempotency_claim> claim;
};

message_record new_message(const conversation_record& meta, std::int64_t seq, std::string role,
                           shared_text content, unix_ms now) {
  message_record m;
  m.id = make_uuid_v7();
  m.conversation_id = meta.id;
  m.seq = seq;
  m.role = std::move(role);
  m.content = std::move(content);
  m.created_at = now;
  return m;
}

/// The conversation's row as the exchange starts from it: on another
/// branch, that branch's length is the number of messages shown.
conversation_record meta_for(const conversation_state& st, const exchange_plan& plan) {
  auto meta = st.meta;
  if (plan.base) meta.message_count = plan.base->length;
  return meta;
}

/// The window the exchange continues.
const context_window& window_for(const conversation_state& st, const exchange_plan& plan) {
  return plan.base ? plan.base->window : st.window;
}

/// The summary its prompts start with.
std::optional<branch_summary>& summary_for(conversation_state& st, exchange_plan& plan) {
  return plan.base ? plan.base->summary : st.summary;
}

/// Makes the exchange's branch the active one in memory, once its commit
/// has made it so in the database.
void adopt_branch(conversation_state& st, exchange_plan& plan) {
  if (!plan.base) return;
  st.window = std::move(plan.base->window);
  st.summary = std::move(plan.base->summary);
  plan.base.reset();
}

exchange_facts facts_of(const exchange_plan& plan) {
  return {plan.create, plan.user_message ? &*plan.user_message : nullptr, &plan.preceding,
          plan.user_stored, plan.replaces ? &*plan.replaces : nullptr};
}

/// Puts the input the exchange stored (the messages before the user
/// message, then it) into the window and tells the watchers, and `stream`.
void take_in_input(self_ptr self, const exchange_plan& plan,
                   const std::shared_ptr<conversation_subscriber>& stream) {
  using kind = conversation_event::kind;
  for (auto& m : plan.preceding) {
    self->state.window.append(m);
    publish_message(self, kind::message, m, stream);
  }
  self->state.window.append(*plan.user_message);
  publish_message(self, kind::message, *plan.user_message, stream);
}

/// Commits the exchange (with the reply, if any) and answers.
void finalize_exchange(self_ptr self, exchange_plan plan, std::optional<message_record> reply,
                       const completion_usage& usage) {
  auto& st = self->state;
  auto now = st.ctx->clock->wall_ms();
  auto c = commit_exchange(meta_for(st, plan), facts_of(plan), std::move(reply), usage,
                           model_of(*st.ctx, plan.model), now);
  add_claim(c.writes, plan.claim, c.meta.user_id, c.result, now, plan.user_stored);
  if (plan.run_recorded) c.writes.push_back(write::delete_run{*plan.reply_id});
  auto caller = plan.caller;
  // The answer's records are the ones the window and the watchers get.
  commit(self, std::move(c.writes), std::move(caller),
         [self, now, usage, plan = std::move(plan), meta = std::move(c.meta),
          result = std::move(c.result)]() mutable {
           auto& st = self->state;
           st.meta = std::move(meta);
           st.current = phase::ready;
           auto& reply = result.reply;
           if (reply)
             st.ctx->meter.add(st.meta.user_id, format_day(now),
                               usage.prompt_tokens + usage.completion_tokens);
           bool store_user = plan.user_message && !plan.user_stored;
           adopt_branch(st, plan);
           if (plan.replaces) st.window.remove(*plan.replaces);
           if (store_user) take_in_input(self, plan, plan.stream);
           if (reply) {
             st.window.append(*reply);
             publish_message(self, conversation_event::kind::done, *reply, plan.stream);
             end_run(self, &*reply, nullptr);
           }
           plan.caller.complete(exchange_answer{std::move(result)});
           finish_op(self);
         });
}

/// Ends the exchange's run with its `failed` event: the exchange's own
/// stream and the clients that resumed the run get it, watchers do not.
void end_failed_run(self_ptr self, const exchange_plan& plan, const failure& why) {
  if (!current_run(self->state)) return;
  conversation_event e;
  e.type = conversation_event::kind::failed;
  e.reason = why;
  publish(self, std::move(e), plan.stream);
  end_run(self, nullptr, &why);
}

/// The provider failed: keep the user message (and a new conversation), answer the failure.
void fail_exchange(self_ptr self, exchange_plan plan, failure why) {
  auto& st = self->state;
  auto& window = window_for(st, plan);
  if (plan.user_message)
    why.message_id = plan.user_message->id;
  else
    for (auto i = window.size(); i > 0; --i)
      if (auto e = window.at(i - 1); e.message.role == "user") {
        why.message_id = e.id;
        break;
      }
  auto now = st.ctx->clock->wall_ms();
  auto c = commit_failed_exchange(meta_for(st, plan), facts_of(plan), now);
  // Only a written row (a stored user message, a new conversation) changes
  // the conversation; an idempotency key alone leaves it as it was.
  bool row_written = !c.writes.empty();
  // The failure reaches the run's clients now (and a resume while the run
  // is held); the record is only for a process that died before it could
  // tell them, so it goes rather than pile up with every failed stream.
  if (plan.run_recorded) c.writes.push_back(write::delete_run{*plan.reply_id});
  if (c.writes.empty() && !plan.claim) {
    end_failed_run(self, plan, why);
    plan.caller.fail(why);
    finish_op(self);
    return;
  }
  bool store_user = plan.user_message && !plan.user_stored;
  add_claim(c.writes, plan.claim, c.meta.user_id, why, now, plan.user_stored);
  commit(self, std::move(c.writes), plan.caller, [=, meta = std::move(c.meta)]() mutable {
    auto& st = self->state;
    if (row_written) st.meta = meta;
    st.current = phase::ready;
    if (store_user) {
      adopt_branch(st, plan);
      take_in_input(self, plan, nullptr);
    }
    end_failed_run(self, plan, why);
    plan.caller.fail(why);
    finish_op(self);
  });
}

/// Commits the exchange's user message (and a new conversation) before the
/// model is asked, so that live clients are told of a stored message; the
/// reply is committed when it is complete.
void store_user_message(self_ptr self, exchange_plan plan,
                        std::function<void(exchange_plan)> then) {
  auto now = self->state.ctx->clock->wall_ms();
  auto c = commit_user_message(meta_for(self->state, plan), facts_of(plan), now);
  // Until the reply is stored, a repeat of the request gets what a failed
  // provider would have answered, never a second copy of the message.
  failure interrupted{errc::provider_error, reply_interrupted_detail};
  interrupted.message_id = plan.user_message->id;
  add_claim(c.writes, plan.claim, c.meta.user_id, interrupted, now);
  // Tells a client resuming the run after a crash what became of it.
  if (auto* run = current_run(self->state)) {
    c.writes.push_back(write::insert_run{
        {run->id, plan.user_message->conversation_id, plan.user_message->id, run->started_at}});
    plan.run_recorded = true;
  }
  auto caller = plan.caller;
  commit(self, std::move(c.writes), caller, [=, meta = std::move(c.meta)]() mutable {
    auto& st = self->state;
    st.meta = meta;
    st.current = phase::ready;
    adopt_branch(st, plan);
    // A conflict from here on must not run the operation again: its message is stored.
    st.running = nullptr;
    plan.user_stored = true;
    take_in_input(self, plan, plan.stream);
    then(std::move(plan));
  });
}

/// The prompt `model` gets for the exchange: the system prompt and as much of
/// the window as fits the model's budget.
prompt prompt_for(conversation_state& st, exchange_plan& plan, const model_info& model) {
  auto& system = plan.instructions ? plan.instructions : st.meta.system_prompt;
  auto budget = message_budget(model.context_budget(), system);
  bool pending = plan.user_message && !plan.user_stored;
  auto& summary = summary_for(st, plan);
  return window_for(st, plan).assemble_with(system, pending ? &*plan.user_message : nullptr,
                                            plan.replaces ? &*plan.replaces : nullptr, budget,
                                            summary ? &summary->cover : nullptr);
}

/// With strategy summarize, summarizes the oldest messages first when the
/// prompt would fill too much of the model's budget (compaction.cpp): the
/// summary is committed, the exchange's stream told (`compaction`), and the
/// model asked with it. A failed summary is not used: the exchange goes on
/// with the oldest messages left out, and the next one tries again.
void compact_first(self_ptr self, exchange_plan plan, steady_time deadline,
                   std::function<void(exchange_plan)> then) {
  auto& st = self->state;
  if (!summarizes(*st.ctx, st.meta)) {
    then(std::move(plan));
    return;
  }
  // Held where it stays put: the compaction reads the plan's window,
  // summary and messages until it is done.
  auto held = std::make_shared<exchange_plan>(std::move(plan));
  auto& kept = *held;
  auto& reply_model = model_of(*st.ctx, kept.model);
  auto& system = kept.instructions ? kept.instructions : st.meta.system_prompt;
  compaction_input in;
  in.window = &window_for(st, kept);
  in.current_summary = &summary_for(st, kept);
  in.pending = kept.user_message && !kept.user_stored ? &*kept.user_message : nullptr;
  in.skip_id = kept.replaces ? &*kept.replaces : nullptr;
  in.budget = message_budget(reply_model.context_budget(), system);
  compact(self, in, summarizer_for(*st.ctx, st.meta), false, deadline, kept.cancel, kept.caller,
          [self, held, then](outcome<std::optional<branch_summary>> made) {
            auto& plan = *held;
            if (made && *made) {
              auto& summary = summary_for(self->state, plan) = std::move(*made);
              publish_compaction(self, summary->record, plan.stream);
            }
            then(std::move(plan));
          });
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
        auto* run = current_run(st);
        bool asked_to_stop = run && run->cancel_requested;
        if (result && result->reason == finish_reason::cancelled && text.empty() &&
            !asked_to_stop) {
          // The client went away before any text: only its message is kept.
          fail_exchange(self, std::move(plan),
                        {errc::provider_error, "the client went away before the reply"});
          return;
        }
        if (!result) {
          auto fallback = st.ctx->models->fallback_after(model, asked + 1);
          // Text that clients already saw cannot be taken back by another model's.
          bool seen = plan.live && !text.empty();
          if (fallback && !seen && st.ctx->clock->now() < deadline) {
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
        auto reply =
            new_message(st.meta, next_seq, "assistant", std::move(text), st.ctx->clock->wall_ms());
        if (plan.reply_id) reply.id = *plan.reply_id;
        reply.model = model.id;
        reply.finish_reason = to_string(result->reason);
        reply.prompt_tokens = result->usage.prompt_tokens;
        reply.completion_tokens = result->usage.completion_tokens;
        if (plan.user_message) {
          reply.parent_id = plan.user_message->id;  // new: it has no other children
        } else {
          reply.parent_id = plan.reply_parent;
          reply.sibling_index = reply.sibling_count = plan.reply_sibling_index;
        }
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
    if (!plan.reply_id) plan.reply_id = make_uuid_v7();
    begin_run(self, *plan.reply_id);
    auto deadline = st.ctx->clock->now() + milliseconds(st.ctx->cfg.actors.generation_timeout_ms);
    auto ask = [self, deadline](exchange_plan plan) {
      compact_first(self, std::move(plan), deadline, [self, deadline](exchange_plan plan) {
        auto& model = model_of(*self->state.ctx, plan.model);
        ask_model(self, std::move(plan), model, deadline, 0);
      });
    };
    plan.live = plan.stream || !st.watchers.empty();
    // Messages before the user message are stored first too, so that the
    // prompt is assembled from the window that holds them.
    if ((plan.live || !plan.preceding.empty()) && plan.user_message) {
      store_user_message(self, std::move(plan), ask);
      return;
    }
    if (plan.stream) {
      conversation_event started;
      started.type = conversation_event::kind::started;
      started.run_id = plan.reply_id ? &*plan.reply_id : nullptr;
      plan.stream->deliver(started);
    }
    ask(std::move(plan));
  });
}

/// Places the exchange's input in the tree: its first message after
/// `parent`, the `sibling_index`-th (and newest) of its children; each next
/// one the only child of the one before.
void attach_input(exchange_plan& plan, const std::optional<std::string>& parent,
                  std::int64_t sibling_index) {
  auto* previous = static_cast<message_record*>(nullptr);
  auto place = [&](message_record& m) {
    m.parent_id = previous ? std::optional<std::string>(previous->id) : parent;
    m.sibling_index = m.sibling_count = previous ? 1 : sibling_index;
    previous = &m;
  };
  for (auto& m : plan.preceding) place(m);
  place(*plan.user_message);
}

/// The user message `p` and how its reply is to be made; the model only
/// when `p` names one.
void take_message(exchange_plan& plan, const conversation_record& meta, std::int64_t seq,
                  const send_params& p, unix_ms now) {
  for (auto& m : p.preceding)
    plan.preceding.push_back(new_message(meta, seq++, m.role, m.content, now));
  plan.user_message = new_message(meta, seq, p.role, p.content, now);
  plan.reply = p.reply;
  if (p.model) plan.model = *p.model;
  plan.params = {p.temperature, p.max_tokens};
  plan.instructions = p.instructions;
  plan.reply_id = p.reply_id;
  plan.cancel = p.cancel;
  plan.stream = p.stream;
}

}  // namespace

void check_token_quota(self_ptr self, const std::string& user, reply_slot caller,
                       std::function<void()> then) {
  auto& st = self->state;
  auto limit = static_cast<std::int64_t>(st.ctx->cfg.limits.tokens_per_day);
  if (limit == 0) {
    then();
    return;
  }
  auto now = st.ctx->clock->wall_ms();
  auto day = format_day(now);
  auto decide = [self, caller, then, limit, now, user, day]() mutable {
    auto used = self->state.ctx->meter.used(user, day).value_or(0);
    if (used < limit) {
      then();
      return;
    }
    if (self->state.current == phase::creating) self->state.current = phase::gone;
    caller.fail(token_quota_reached(user, limit, now));
    finish_op(self);
  };
  if (st.ctx->meter.used(user, day)) {
    refresh_when_stale(*st.ctx, user, day);
    decide();
    return;
  }
  read<std::int64_t>(
      self, [user, day](store& db) { return tokens_used(db, user, day); }, caller,
      [self, user, day, decide](std::int64_t& tokens) mutable {
        self->state.ctx->meter.seed(user, day, tokens, self->state.ctx->clock->now());
        decide();
      });
}

void op_create(self_ptr self, new_conversation request, std::optional<idempotency_claim> claim,
               const completion<exchange_answer>& caller) {
  auto& st = self->state;
  auto now = st.ctx->clock->wall_ms();
  st.meta.id = st.id;
  st.meta.user_id = request.user_id;
  st.meta.title = request.title;
  st.meta.model = request.model;
  st.meta.system_prompt = request.system_prompt;
  st.meta.metadata_json = request.metadata_json;
  st.meta.context_strategy = request.context_strategy;
  st.meta.created_at = now;
  st.meta.updated_at = now;
  st.window.reset({}, budget_for(*st.ctx, st.meta), false);
  exchange_plan plan{.caller = caller};
  plan.create = true;
  plan.model = st.meta.model;
  plan.claim = std::move(claim);
  if (request.first_message) {
    take_message(plan, st.meta, 1, *request.first_message, now);
    attach_input(plan, std::nullopt, 1);
  }
  auto claim_now = plan.claim;
  replay_if_key_used(
      self, st.meta.user_id, std::move(claim_now), caller,
      [self, plan = std::move(plan)]() mutable { run_exchange(self, std::move(plan)); });
}

void op_send(self_ptr self, const std::string& user, const send_params& p,
             const std::optional<idempotency_claim>& claim,
             const completion<exchange_answer>& caller) {
  if (foreign(self, user, caller)) return;
  replay_if_key_used(self, user, claim, caller, [=] {
    auto& st = self->state;
    auto start = [=](std::optional<branch_base> base, std::int64_t sibling_index) {
      auto& st = self->state;
      exchange_plan plan{.caller = caller};
      plan.model = st.meta.model;
      take_message(plan, st.meta, st.meta.last_seq + 1, p, st.ctx->clock->wall_ms());
      attach_input(plan, p.parent_id ? *p.parent_id : st.meta.active_leaf_id, sibling_index);
      plan.base = std::move(base);
      plan.claim = claim;
      run_exchange(self, std::move(plan));
    };
    if (!p.parent_id || *p.parent_id == st.meta.active_leaf_id) {
      // The active leaf has no children: the message is its first.
      ensure_window(self, caller, [start] { start(std::nullopt, 1); });
      return;
    }
    // A new branch from an earlier message (or a new root): its context is
    // the branch that ends there.
    auto id = st.id;
    auto parent = *p.parent_id;
    auto budget = budget_for(*st.ctx, st.meta);
    read<std::optional<loaded_branch>>(
        self,
        [id, parent, budget](store& db) -> std::optional<loaded_branch> {
          auto branch = load_branch(db, id, parent, budget, true);
          // A walk from a message of another conversation finds nothing.
          if (parent && branch.recent.empty()) return std::nullopt;
          branch.end_children = db.child_count(id, parent);
          return branch;
        },
        caller,
        [=](std::optional<loaded_branch>& found) {
          if (!found) {
            caller.fail({errc::invalid_argument,
                         "message " + parent.value_or("") + " is not in this conversation",
                         "parent_id"});
            finish_op(self);
            return;
          }
          start(base_from(*found, budget), found->end_children + 1);
        });
  });
}

void op_regenerate(self_ptr self, const std::string& user, const regenerate_params& p,
                   const std::optional<idempotency_claim>& claim,
                   const completion<exchange_answer>& caller) {
  if (foreign(self, user, caller)) return;
  replay_if_key_used(self, user, claim, caller, [=] {
    auto& st = self->state;
    auto leaf = st.meta.active_leaf_id;
    if (!p.message_id && !leaf) {
      caller.fail({errc::conflict, "conversation " + st.id + " has no messages to reply to"});
      finish_op(self);
      return;
    }
    auto target = p.message_id.value_or(leaf.value_or(""));
    bool at_leaf = target == leaf;
    auto id = st.id;
    auto budget = budget_for(*st.ctx, st.meta);
    read<std::optional<regeneration>>(
        self,
        [id, target, at_leaf, budget](store& db) -> std::optional<regeneration> {
          auto found = db.find_message(id, target);
          if (!found) return std::nullopt;
          regeneration out{std::move(*found), std::nullopt};
          if (!at_leaf && out.target.role == "assistant")
            out.base = load_branch(db, id, out.target.parent_id, budget, true);
          return out;
        },
        caller,
        [=](std::optional<regeneration>& found) {
          if (!found || (p.message_id && found->target.role != "assistant")) {
            caller.fail({errc::invalid_argument,
                         "message " + target + " is not an assistant message of this conversation",
                         "message_id"});
            finish_op(self);
            return;
          }
          ensure_window(self, caller, [=, found = std::move(*found)] {
            exchange_plan plan{.caller = caller};
            auto& t = found.target;
            if (t.role != "assistant") {
              // The active leaf awaits its reply (the last one failed).
              plan.reply_parent = t.id;
            } else {
              // A sibling of the reply it replaces, the newest of its parent's children.
              plan.reply_parent = t.parent_id;
              plan.reply_sibling_index = t.sibling_count + 1;
              if (found.base) {
                plan.base = base_from(*found.base, budget);
              } else {
                plan.replaces = t.id;
              }
            }
            plan.reply = true;
            plan.model = p.model.value_or(self->state.meta.model);
            plan.cancel = p.cancel;
            plan.stream = p.stream;
            plan.claim = claim;
            run_exchange(self, std::move(plan));
          });
        });
  });
}

void op_fork(self_ptr self, const std::string& user, const fork_request& request,
             const std::optional<idempotency_claim>& claim,
             const completion<exchange_answer>& caller) {
  if (foreign(self, user, caller)) return;
  replay_if_key_used(self, user, claim, caller, [=] {
    auto id = self->state.id;
    auto target = request.message_id;
    read<loaded_branch>(
        self,
        [id, target](store& db) {
          loaded_branch out;
          out.recent =
              db.list_branch(id, target, 0, std::nullopt, std::numeric_limits<unsigned>::max());
          if (!out.recent.empty()) out.summary = summary_on_branch(db, id, target);
          return out;
        },
        caller,
        [=](loaded_branch& read) {
          auto& branch = read.recent;
          auto& st = self->state;
          if (branch.empty() || branch.back().id != target) {
            caller.fail({errc::invalid_argument,
                         "message " + target + " is not in this conversation", "message_id"});
            finish_op(self);
            return;
          }
          auto now = st.ctx->clock->wall_ms();
          conversation_record copy;
          copy.id = make_uuid_v7();
          copy.user_id = st.meta.user_id;
          copy.title = request.title ? request.title : st.meta.title;
          copy.model = st.meta.model;
          copy.system_prompt = st.meta.system_prompt;
          copy.metadata_json = st.meta.metadata_json;
          copy.context_strategy = st.meta.context_strategy;
          copy.created_at = copy.updated_at = now;
          copy.forked_from_conversation_id = st.id;
          copy.forked_from_message_id = target;
          // Copies with ids and seqs of their own, one branch: each the only child.
          std::optional<std::string> parent;
          auto& summary = read.summary;
          for (auto& m : branch) {
            bool summarized_through = summary && summary->covers_through_message_id == m.id;
            m.id = make_uuid_v7();
            m.conversation_id = copy.id;
            m.seq = ++copy.last_seq;
            m.parent_id = std::exchange(parent, m.id);
            m.sibling_index = m.sibling_count = 1;
            // The branch's summary comes along, through the copy of its message.
            if (summarized_through) {
              summary->id = make_uuid_v7();
              summary->conversation_id = copy.id;
              summary->covers_through_message_id = m.id;
              summary->covers_through_seq = m.seq;
            }
          }
          copy.message_count = copy.last_seq;
          copy.active_leaf_id = parent;
          write_set writes{write::insert_conversation{copy}};
          for (auto& m : branch) writes.push_back(write::insert_message{std::move(m)});
          if (summary && summary->conversation_id == copy.id)
            writes.push_back(write::insert_summary{std::move(*summary)});
          exchange_result result;
          result.conversation = copy;
          add_claim(writes, claim, copy.user_id, result, now);
          commit(self, std::move(writes), caller, [self, caller, result] {
            exchange_answer answer;
            static_cast<exchange_result&>(answer) = result;
            caller.complete(std::move(answer));
            finish_op(self);
          });
        });
  });
}

}  // namespace parley::conversation_detail
