#include "actors/conversation_state.hpp"

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

#include <algorithm>

namespace parley::conversation_detail {

// --- alarms ----------------------------------------------------------------------

namespace {

class actor_alarm final : public pending_answer {
 public:
  actor_alarm(deadline_sweeper* sweeper, caf::actor_addr conversation, caf::message message)
      : pending_answer(sweeper),
        conversation_(std::move(conversation)),
        message_(std::move(message)) {}

 private:
  void deliver_failure(failure) override {
    detail::call_reply([&] {
      if (auto me = caf::actor_cast<caf::actor>(conversation_)) caf::anon_send(me, message_);
    });
  }

  caf::actor_addr conversation_;  ///< weak: the alarm does not keep the actor alive
  caf::message message_;
};

/// An alarm sending `message` to the actor, for the actor's sweeper.
std::shared_ptr<actor_alarm> make_alarm(self_ptr self, caf::message message) {
  return std::make_shared<actor_alarm>(self->state.ctx->deadlines, self->address(),
                                       std::move(message));
}

}  // namespace

// The errc an alarm is added with is not read: an alarm only sends its message.

deadline_alarm alarm_to(deadline_sweeper& sweeper, caf::actor_addr to, steady_time at,
                        caf::message message) {
  auto alarm = std::make_shared<actor_alarm>(&sweeper, std::move(to), std::move(message));
  sweeper.add_at(alarm, at, errc::overloaded);
  return deadline_alarm(std::move(alarm));
}

deadline_alarm alarm_at(self_ptr self, steady_time at, caf::message message) {
  return alarm_to(*self->state.ctx->deadlines, self->address(), at, std::move(message));
}

deadline_alarm alarm_after(self_ptr self, std::chrono::milliseconds delay, caf::message message) {
  auto alarm = make_alarm(self, std::move(message));
  self->state.ctx->deadlines->add(alarm, delay, errc::overloaded);
  return deadline_alarm(std::move(alarm));
}

// --- live subscribers -----------------------------------------------------------

bool publish(self_ptr self, conversation_event e,
             const std::shared_ptr<conversation_subscriber>& own) {
  using kind = conversation_event::kind;
  auto& st = self->state;
  bool of_run = e.type == kind::message || e.type == kind::delta || e.type == kind::done ||
                e.type == kind::failed || e.type == kind::compaction;
  if (auto* run = current_run(st); run && of_run)
    record_in_run(*run, e, own || (e.type != kind::failed && !st.watchers.empty()));
  if (e.type != kind::failed) tell_watchers(self, e);
  return !own || own->deliver(e);
}

void publish_message(self_ptr self, conversation_event::kind type, const message_record& m,
                     const std::shared_ptr<conversation_subscriber>& own) {
  conversation_event e;
  e.type = type;
  e.message = &m;
  publish(self, e, own);
}

void tell_watchers(self_ptr self, const conversation_event& e) {
  auto& w = self->state.watchers;
  w.erase(std::remove_if(w.begin(), w.end(), [&](auto& s) { return !s->deliver(e); }), w.end());
}

void publish_branch(self_ptr self) {
  conversation_event e;
  e.type = conversation_event::kind::branch;
  e.active_leaf_id = self->state.meta.active_leaf_id;
  publish(self, e, nullptr);
}

void close_watchers(self_ptr self, const failure& why) {
  abandon_run(self, why);
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

void abandon(self_ptr self, const failure& why) {
  auto& st = self->state;
  st.current = phase::gone;
  for (auto& op : st.queue) op.caller.fail(why);
  st.queue.clear();
  if (st.generation && st.generation->handle) st.generation->handle->cancel();
  close_watchers(self, why);
  passivate(self);
}

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
  // A request its deadline answered while it waited does not run: its client
  // was told to try again, and would find its message stored twice.
  while (!st.queue.empty() && st.queue.front().caller.answered()) st.queue.pop_front();
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

void enqueue(self_ptr self, const reply_slot& caller, std::function<void()> run, bool limited) {
  auto& st = self->state;
  caller.accept();
  if (caller.answered()) return;  // its deadline passed on the way here
  st.last_active = self->state.ctx->clock->now();
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
  // A refresh waiting (at most one) is the engine's, not a client's.
  auto clients_waiting =
      st.queue.size() - std::min<std::size_t>(st.queue.size(), st.refresh_queued);
  if (limited && clients_waiting >= st.ctx->cfg.limits.conversation_queue) {
    failure f{errc::queue_full, "conversation " + st.id + " has too many operations waiting"};
    f.retry_after_s = 1;
    caller.fail(std::move(f));
    return;
  }
  st.queue.push_back({std::move(run), caller});
}

bool foreign(self_ptr self, const std::string& user, const reply_slot& caller) {
  if (self->state.meta.user_id == user) return false;
  caller.fail(conversation_not_found(self->state.id));
  finish_op(self);
  return true;
}

}  // namespace parley::conversation_detail
