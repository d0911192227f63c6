// Context compaction (strategy "summarize"): when a branch's prompt would
// fill too much of its model's budget, a model summarizes its oldest
// messages, and prompts send the summary instead of them. A summary covers
// a branch from its root through one message, so it is used on every branch
// through that message and on no other; a newer one folds the one before
// it in. Messages are never deleted: only what the model is sent changes.
// Triggered by tokens, not turns: a summary frees at least the share of the
// budget between context.summarize_at and half of it, so the next one comes
// only when that much was written again.

#include "actors/conversation_state.hpp"

#include "actors/exchange_writes.hpp"
#include "base/uuid.hpp"
#include "providers/token_estimator.hpp"

#include <spdlog/spdlog.h>

#include <unordered_map>

namespace parley::conversation_detail {

namespace {

constexpr const char* summary_preamble = "Summary of the earlier conversation:\n";
constexpr const char* summary_instruction =
    "You summarize conversations. Write a concise summary of the conversation so far that keeps "
    "every fact, name, number, decision and open question needed to continue it. Write only the "
    "summary.";
constexpr const char* summary_request = "Summarize the conversation above.";

/// What a compaction folds into its summary, decided before the model is asked.
struct fold {
  std::vector<chat_message> messages;  ///< oldest first
  std::string through_id;
  std::int64_t through_seq = 0;
  std::int64_t prompt_tokens = 0;  ///< the prompt's messages as they are now
  std::int64_t folded_tokens = 0;  ///< of those, what the summary replaces
};

/// The messages to fold: those after the current summary but the newest,
/// at least keep_recent_tokens of them (that share at most half the budget;
/// the newest message always stays). None when the prompt is under the
/// threshold (unless `force`) or nothing would be folded.
std::optional<fold> plan_fold(const engine_context& ctx, const compaction_input& in, bool force) {
  struct entry {
    const std::string* id;
    std::int64_t seq;
    const chat_message* message;
  };
  std::vector<entry> after;
  auto& current = *in.current_summary;
  auto covered = current ? current->record.covers_through_seq : 0;
  for (std::size_t i = 0; i < in.window->size(); ++i) {
    auto e = in.window->at(i);
    if (e.seq <= covered || (in.skip_id && e.id == *in.skip_id)) continue;
    after.push_back({&e.id, e.seq, &e.message});
  }
  fold out;
  auto pending = in.pending ? estimate_message_tokens(in.pending->content) : 0;
  out.prompt_tokens = pending + (current ? current->cover.message.tokens : 0);
  for (auto& e : after) out.prompt_tokens += e.message->tokens;
  auto threshold =
      static_cast<std::int64_t>(ctx.cfg.context.summarize_at * static_cast<double>(in.budget));
  if (!force && out.prompt_tokens <= threshold) return std::nullopt;
  auto keep = std::min<std::int64_t>(ctx.cfg.context.keep_recent_tokens, in.budget / 2);
  auto kept = pending;
  auto first_kept = after.size();
  // Without a pending message the newest stays whatever its size: a reply needs something to
  // answer.
  if (!in.pending && first_kept > 0) kept += after[--first_kept].message->tokens;
  while (first_kept > 0 && kept < keep) kept += after[--first_kept].message->tokens;
  if (first_kept == 0) return std::nullopt;
  for (std::size_t i = 0; i < first_kept; ++i) {
    out.messages.push_back(*after[i].message);
    out.folded_tokens += after[i].message->tokens;
  }
  out.through_id = *after[first_kept - 1].id;
  out.through_seq = after[first_kept - 1].seq;
  return out;
}

/// The request for the summary: the instruction, the summary it extends,
/// the messages it folds in, and the ask.
prompt summary_prompt(const std::optional<branch_summary>& current, const fold& f) {
  auto messages = std::make_shared<prompt::history>();
  messages->reserve(f.messages.size() + 3);
  messages->emplace_back("system", summary_instruction);
  if (current) messages->push_back(current->cover.message);
  messages->insert(messages->end(), f.messages.begin(), f.messages.end());
  messages->emplace_back("user", summary_request);
  std::int64_t tokens = 0;
  for (auto& m : *messages) tokens += m.tokens;
  auto n = messages->size();
  return prompt(std::nullopt, std::move(messages), 0, n, tokens, std::nullopt);
}

/// Asks `model`, then its fallbacks while the deadline allows; `then` gets
/// the model that answered with its result and text. A cancelled or empty
/// summary is a failure: it would lose what it should keep.
void ask_for_summary(
    self_ptr self, const model_info& model, prompt request, const sampling& params,
    steady_time deadline, std::shared_ptr<cancellation> cancel, std::size_t asked,
    std::function<void(const model_info&, outcome<completion_result>, std::string)> then) {
  auto retry = request;
  generate(self, model, std::move(request), params, deadline, cancel, nullptr, false,
           [=, &model](outcome<completion_result> result, std::string text) mutable {
             if (result && (result->reason == finish_reason::cancelled || text.empty()))
               result = failure{errc::provider_error, "the summary came back cancelled or empty"};
             auto& ctx = *self->state.ctx;
             auto* run = current_run(self->state);
             bool stopped = run && run->cancel_requested;
             if (!result && !stopped) {
               auto fallback = ctx.models->fallback_after(model, asked + 1);
               if (fallback && ctx.clock->now() < deadline) {
                 ask_for_summary(self, *fallback, std::move(retry), params, deadline, cancel,
                                 asked + 1, std::move(then));
                 return;
               }
             }
             then(model, std::move(result), std::move(text));
           });
}

}  // namespace

bool summarizes(const engine_context& ctx, const conversation_record& meta) {
  return meta.context_strategy.value_or(ctx.cfg.context.strategy) == "summarize";
}

branch_summary::branch_summary(summary_record r)
    : record(std::move(r)),
      cover{chat_message("system", summary_preamble + record.content), record.covers_through_seq} {}

const model_info& summarizer_for(const engine_context& ctx, const conversation_record& meta) {
  auto& configured = ctx.cfg.context.summary_model;
  return model_of(ctx, configured.empty() ? meta.model : configured);
}

void publish_compaction(self_ptr self, const summary_record& s,
                        const std::shared_ptr<conversation_subscriber>& own) {
  conversation_event e;
  e.type = conversation_event::kind::compaction;
  e.summary = &s;
  publish(self, std::move(e), own);
}

std::optional<branch_summary> use_summary(std::optional<summary_record> read) {
  if (!read) return std::nullopt;
  return branch_summary(std::move(*read));
}

std::optional<summary_record> summary_on_branch(store& db, const std::string& conversation_id,
                                                const std::optional<std::string>& leaf) {
  if (!leaf) return std::nullopt;
  auto summaries = db.list_summaries(conversation_id);
  if (summaries.empty()) return std::nullopt;
  // Oldest first: of two summaries through one message, the newer wins.
  std::unordered_map<std::string, const summary_record*> through;
  for (auto& s : summaries) through[s.covers_through_message_id] = &s;
  // The first covered message from the leaf up is the newest summary's.
  constexpr unsigned page_size = 64;
  for (auto from = *leaf;;) {
    auto page = db.walk_branch(conversation_id, from, page_size);
    for (auto& m : page)
      if (auto at = through.find(m.id); at != through.end()) return *at->second;
    if (page.size() < page_size || !page.back().parent_id) return std::nullopt;
    from = *page.back().parent_id;
  }
}

void compact(self_ptr self, const compaction_input& input, const model_info& model, bool force,
             steady_time deadline, std::shared_ptr<cancellation> cancel, reply_slot caller,
             std::function<void(outcome<std::optional<branch_summary>>)> then) {
  auto& st = self->state;
  auto folding = plan_fold(*st.ctx, input, force);
  if (!folding) {
    then(std::optional<branch_summary>());
    return;
  }
  // A quarter of the budget at most: the summary must leave room for what it is for.
  sampling params{std::nullopt,
                  static_cast<std::uint32_t>(std::max<std::int64_t>(1, input.budget / 4))};
  auto request = summary_prompt(*input.current_summary, *folding);
  auto& current = *input.current_summary;
  auto previous_tokens = current ? current->cover.message.tokens : 0;
  ask_for_summary(
      self, model, std::move(request), params, deadline, std::move(cancel), 0,
      [self, caller, then, f = std::move(*folding), previous_tokens](
          const model_info& answered, outcome<completion_result> result, std::string text) {
        auto& st = self->state;
        if (!result) {
          spdlog::warn("conversation {}: the summary failed ({}); the oldest messages are left out",
                       st.id, result.error().detail);
          then(result.error());
          return;
        }
        auto now = st.ctx->clock->wall_ms();
        summary_record s;
        s.id = make_uuid_v7();
        s.conversation_id = st.id;
        s.covers_through_message_id = f.through_id;
        s.covers_through_seq = f.through_seq;
        s.content = std::move(text);
        s.model = answered.id;
        s.created_at = now;
        s.tokens_before = f.prompt_tokens;
        branch_summary made(std::move(s));
        made.record.tokens_after =
            f.prompt_tokens - f.folded_tokens - previous_tokens + made.cover.message.tokens;
        auto& usage = result->usage;
        write_set writes{write::insert_summary{made.record},
                         usage_of_request(st.meta.user_id, now, answered, usage)};
        commit(self, std::move(writes), caller, [self, made, now, usage, then] {
          auto& st = self->state;
          st.ctx->meter.add(st.meta.user_id, format_day(now),
                            usage.prompt_tokens + usage.completion_tokens);
          then(std::optional<branch_summary>(made));
        });
      });
}

void op_compact(self_ptr self, const std::string& user, const std::optional<std::string>& model,
                const completion<summary_record>& caller) {
  if (foreign(self, user, caller)) return;
  auto summarize = [=] {
    auto& st = self->state;
    auto& ctx = *st.ctx;
    compaction_input in;
    in.window = &st.window;
    in.current_summary = &st.summary;
    in.budget = budget_for(ctx, st.meta);
    auto& summarizer = model ? model_of(ctx, *model) : summarizer_for(ctx, st.meta);
    auto deadline =
        ctx.clock->now() + std::chrono::milliseconds(ctx.cfg.actors.generation_timeout_ms);
    compact(self, in, summarizer, true, deadline, nullptr, caller,
            [self, caller](outcome<std::optional<branch_summary>> made) {
              if (!made) {
                caller.fail(made.error());
              } else if (!*made) {
                caller.fail({errc::conflict,
                             "nothing to compact: the newest messages all fit in "
                             "context.keep_recent_tokens"});
              } else {
                auto& summary = self->state.summary = std::move(*made);
                publish_compaction(self, summary->record, nullptr);
                caller.complete(summary->record);
              }
              finish_op(self);
            });
  };
  // A summary is a model call like a reply: the user's daily tokens apply.
  check_token_quota(self, user, caller, [=] { ensure_window(self, caller, summarize); });
}

}  // namespace parley::conversation_detail
