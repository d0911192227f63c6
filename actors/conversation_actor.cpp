#include "actors/conversation_state.hpp"

#include <spdlog/spdlog.h>
#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>

namespace parley {

namespace {

using namespace conversation_detail;

// --- behavior ------------------------------------------------------------------------

/// How often an actor checks whether it has been idle long enough: a quarter
/// of the idle timeout, so that one lane of the sweeper holds every actor's
/// check (O(1) to add) and an actor outlives its timeout by at most a quarter.
std::chrono::milliseconds idle_check_interval(const engine_context& ctx) {
  return std::max(std::chrono::milliseconds(ctx.cfg.actors.idle_timeout_s * 1000 / 4),
                  std::chrono::milliseconds(1));
}

void schedule_idle_check(self_ptr self) {
  // The engine stops its sweeper only once every actor is done, so a check
  // is never set on a stopped sweeper (which would fire it at once).
  self->state.idle_check = alarm_after(self, idle_check_interval(*self->state.ctx),
                                       caf::make_message(idle_atom::value, false));
}

/// Runs `serve` now, or once the conversation is loaded (before that its
/// owner is not known), for requests that need not wait their turn.
void when_loaded(self_ptr self, const reply_slot& caller, std::function<void()> serve) {
  if (self->state.current == phase::ready) {
    caller.accept();
    self->state.last_active = self->state.ctx->clock->now();
    serve();
    return;
  }
  enqueue(self, caller, [self, serve] {
    serve();
    finish_op(self);
  });
}

conversation_actor::behavior_type conversation(self_ptr self, engine_context* ctx, std::string id,
                                               bool fresh) {
  auto& st = self->state;
  st.ctx = ctx;
  st.id = id;
  st.last_active = self->state.ctx->clock->now();
  st.busy = true;
  st.current = fresh ? phase::creating : phase::loading;
  schedule_idle_check(self);
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
        self, [self](auto&) { start_next(self); },
        [self](const failure& why) { abandon(self, why); });
  return {
      // --- requests: each answers its caller, queued behind the operations before it ---
      [=](create_atom, new_conversation& request, std::optional<idempotency_claim>& claim,
          const completion<exchange_answer>& caller) {
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
        when_loaded(self, caller, [=] { answer_history(self, user, q, caller); });
      },
      [=](send_atom, const std::string& user, const send_params& p,
          const std::optional<idempotency_claim>& claim,
          const completion<exchange_answer>& caller) {
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
          const completion<exchange_answer>& caller) {
        enqueue(self, caller, [=] { op_regenerate(self, user, p, claim, caller); });
      },
      [=](compact_atom, const std::string& user, const std::optional<std::string>& model,
          const completion<summary_record>& caller) {
        enqueue(self, caller, [=] { op_compact(self, user, model, caller); });
      },
      [=](fork_atom, const std::string& user, const fork_request& request,
          const std::optional<idempotency_claim>& claim,
          const completion<exchange_answer>& caller) {
        enqueue(self, caller, [=] { op_fork(self, user, request, claim, caller); });
      },
      // --- live subscribers ---
      [=](watch_atom, const std::string& user, const std::shared_ptr<conversation_subscriber>& s,
          const completion<done>& caller) {
        when_loaded(self, caller, [self, user, s, caller] {
          auto& st = self->state;
          if (st.meta.user_id != user) {
            caller.fail(conversation_not_found(st.id));
            return;
          }
          st.watchers.push_back(s);
          watching_run(st, s.get());
          caller.complete(done{});
        });
      },
      // --- runs: served at once, not in turn, since the run they name is the turn ---
      [=](resume_atom, const std::string& user, const std::optional<run_position>& from,
          const std::shared_ptr<conversation_subscriber>& s, bool follow,
          const completion<resume_outcome>& caller) {
        when_loaded(self, caller, [=] {
          if (self->state.meta.user_id != user)
            caller.fail(conversation_not_found(self->state.id));
          else
            resume_run(self, from, s, follow, caller);
        });
      },
      [=](stop_atom, const std::string& user, const completion<message_record>& caller) {
        when_loaded(self, caller, [=] {
          if (self->state.meta.user_id != user)
            caller.fail(conversation_not_found(self->state.id));
          else
            cancel_run(self, caller);
        });
      },
      // --- the engine's own requests ---
      [=](halt_atom, const completion<message_record>& caller) {
        // Shutting down: the running exchange stores what it has, as POST …/cancel does.
        when_loaded(self, caller, [=] { cancel_run(self, caller); });
      },
      [=](changed_atom, std::int64_t version, const completion<done>& caller) {
        auto& st = self->state;
        caller.accept();
        if (st.current == phase::ready && version > 0 && version <= st.meta.version) {
          caller.complete(done{});  // its own write, or read already
          return;
        }
        // One refresh waits at a time, reading the newest version told of, so
        // that notices never fill the queue that requests wait in.
        st.refresh_version =
            version < 0 || st.refresh_version < 0 ? -1 : std::max(st.refresh_version, version);
        if (st.refresh_queued) {
          caller.complete(done{});
          return;
        }
        st.refresh_queued = true;
        enqueue(
            self, caller, [=] { op_refresh(self, caller); }, false);
        if (caller.answered() && st.refresh_queued) st.refresh_queued = false;  // refused
      },
      [=](unwatch_atom, const std::shared_ptr<conversation_subscriber>& s) {
        auto& w = self->state.watchers;
        w.erase(std::remove(w.begin(), w.end(), s), w.end());
        stopped_watching(self->state, s.get());
        self->state.last_active = self->state.ctx->clock->now();
      },
      // --- the provider's answers ---
      [=](delta_atom, std::uint64_t gen, std::string& text) { on_delta(self, gen, text); },
      [=](generated_atom, std::uint64_t gen, outcome<completion_result>& result,
          std::string& gathered) { on_generated(self, gen, result, gathered); },
      [=](cancel_atom, std::uint64_t gen) { on_cancel(self, gen); },
      [=](deadline_atom, std::uint64_t gen) { on_deadline(self, gen); },
      // --- housekeeping ---
      [=](idle_atom, bool run_next) {
        if (run_next) {
          start_next(self);
          return;
        }
        auto& st = self->state;
        auto idle_for = std::chrono::seconds(st.ctx->cfg.actors.idle_timeout_s);
        auto quiet = self->state.ctx->clock->now() - st.last_active;
        if (!st.busy && st.queue.empty() && st.watchers.empty() && quiet >= idle_for)
          passivate(self);
        else
          schedule_idle_check(self);
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

conversation_actor spawn_loading_conversation(caf::actor_system& sys, engine_context* ctx,
                                              const std::string& id) {
  return sys.spawn<caf::lazy_init>(conversation, ctx, id, false);
}

conversation_actor spawn_new_conversation(caf::actor_system& sys, engine_context* ctx,
                                          const std::string& id) {
  return sys.spawn<caf::lazy_init>(conversation, ctx, id, true);
}

}  // namespace parley