#include "actors/conversation_state.hpp"

#include "providers/token_estimator.hpp"

#include <spdlog/spdlog.h>

namespace parley::conversation_detail {

namespace {

/// Reads a conversation and its active branch's most recent messages that
/// fit its budget. Runs on a reader.
loaded_conversation load_conversation(store& db, const engine_context& ctx, const std::string& id) {
  loaded_conversation out;
  out.row = db.find_conversation(id);
  if (out.row)
    out.branch = load_branch(db, id, out.row->active_leaf_id, budget_for(ctx, *out.row), false);
  return out;
}

}  // namespace

loaded_branch load_branch(store& db, const std::string& conversation_id,
                          const std::optional<std::string>& leaf, std::int64_t budget,
                          bool count_length) {
  constexpr unsigned page_size = 64;
  loaded_branch out;
  if (!leaf) return out;
  std::vector<message_record> newest_first;
  std::int64_t tokens = 0;
  // A page at a time from the end, each walk starting where the last stopped.
  for (auto from = *leaf;;) {
    auto page = db.walk_branch(conversation_id, from, page_size);
    for (auto& m : page) {
      auto t = estimate_message_tokens(m.content);
      if (!newest_first.empty() && tokens + t > budget) {
        out.older_exist = true;
        break;
      }
      tokens += t;
      newest_first.push_back(std::move(m));
    }
    // A short page: the walk reached the root.
    if (out.older_exist || page.size() < page_size || !newest_first.back().parent_id) break;
    from = *newest_first.back().parent_id;
  }
  out.recent.assign(std::make_move_iterator(newest_first.rbegin()),
                    std::make_move_iterator(newest_first.rend()));
  if (count_length) out.length = db.branch_length(conversation_id, *leaf);
  out.summary = summary_on_branch(db, conversation_id, leaf);
  return out;
}

const model_info& model_of(const engine_context& ctx, const std::string& alias) {
  auto m = ctx.models->find(alias);
  return m ? *m : ctx.models->default_model();
}

std::int64_t budget_for(const engine_context& ctx, const conversation_record& meta) {
  return message_budget(model_of(ctx, meta.model).context_budget(), meta.system_prompt);
}

// --- database access ------------------------------------------------------------

void load_state(self_ptr self, std::function<void(const std::vector<message_record>&)> then,
                std::function<void(const failure&)> failed) {
  auto ctx = self->state.ctx;
  auto id = self->state.id;
  auto on_error = [=](caf::error& e) { failed(to_failure(e, errc::db_unavailable)); };
  // Flush the writer first: it works through its mailbox in order, so once it
  // answers, every write handed to it before (perhaps by this conversation's
  // previous actor, which died before its answer came) is committed or failed, and
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
                      st.window.reset(loaded.branch.recent, budget_for(*st.ctx, st.meta),
                                      loaded.branch.older_exist);
                      st.summary = use_summary(std::move(loaded.branch.summary));
                      st.current = phase::ready;
                      then(loaded.branch.recent);
                    },
                    on_error);
          },
          on_error);
}

void commit(self_ptr self, write_set writes, reply_slot caller, std::function<void()> then) {
  // Held once: `then` carries the operation's records, which copies of it
  // into each handler below would copy string by string.
  auto committed = std::make_shared<std::function<void()>>(std::move(then));
  self->request(self->state.ctx->db.writer, persistence_wait, write_atom::value, std::move(writes))
      .then([committed](ok_atom) { (*committed)(); },
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
              st.ctx->conflicts.add();
              spdlog::info("conversation {} changed in the database meanwhile; reloading", st.id);
              reload_telling_watchers(
                  self, caller, [self] { std::function<void()>(self->state.running)(); }, give_up);
            });
}

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
        st.window.reset(loaded.branch.recent, budget_for(*st.ctx, st.meta),
                        loaded.branch.older_exist);
        st.summary = use_summary(std::move(loaded.branch.summary));
        then();
      });
}

}  // namespace parley::conversation_detail
