#include "actors/conversation_state.hpp"

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <atomic>
#include <cassert>

namespace parley::conversation_detail {

namespace {

/// Hands the finished generation `gen` to its continuation, once.
void complete_generation(self_ptr self, std::uint64_t gen, outcome<completion_result> result) {
  auto& st = self->state;
  if (!st.generation || st.generation->id != gen)
    return;  // a late answer to a generation already given up on
  auto done = std::move(*st.generation);
  st.generation.reset();
  done.alarm.reset();  // its deadline is no longer needed
  done.then(std::move(result), std::move(done.text));
}

}  // namespace

void generate(self_ptr self, const model_info& model, prompt messages, const sampling& params,
              steady_time deadline, const std::shared_ptr<cancellation>& cancel,
              const std::shared_ptr<conversation_subscriber>& stream, bool live,
              std::function<void(outcome<completion_result>, std::string)> then) {
  auto& st = self->state;
  auto gen = ++st.generations_started;
  st.generation =
      active_generation{gen, {}, nullptr, stream, live, cancel != nullptr, std::move(then)};
  completion_request request;
  request.upstream_model = model.upstream;
  auto estimated_prompt = messages.estimated_tokens();
  request.messages = std::move(messages);
  request.temperature = params.temperature;
  request.max_tokens = std::min<std::uint32_t>(params.max_tokens.value_or(model.max_output_tokens),
                                               model.max_output_tokens);
  // Providers keep time by the machine's clock: the deadline goes to them as
  // what is left of it.
  request.deadline = std::chrono::steady_clock::now() + (deadline - st.ctx->clock->now());
  // Someone reads the reply as it is written: ask for it piece by piece.
  request.stream = live;
  auto me = caf::actor_cast<conversation_actor>(self);
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
  // POST …/cancel came before the model was asked (or before this fallback).
  if (auto* run = current_run(st); run && run->cancel_requested) st.generation->handle->cancel();
  // A provider that answered within start() needs no deadline.
  if (!finished->load()) {
    // Also when the engine stops: a generation must not go on without a
    // deadline, and a conversation that is gone is simply not found.
    st.generation->alarm = alarm_at(self, deadline, caf::make_message(deadline_atom::value, gen));
  }
}

void on_delta(self_ptr self, std::uint64_t gen, std::string& text) {
  auto& st = self->state;
  if (!st.generation || st.generation->id != gen) return;
  st.generation->text += text;
  // A watcher that came during an exchange begun without any gets its
  // message and done, not deltas ahead of the message.
  if (!st.generation->live) return;
  conversation_event e;
  e.type = conversation_event::kind::delta;
  e.text = std::move(text);
  if (!publish(self, std::move(e), st.generation->stream)) {
    // The exchange's own client was cut off (an SSE stream whose reader
    // fell too far behind). When its hanging up would cancel, so does
    // this, so the text so far is stored as cancelled: its connection
    // stays open, so the connection watch would not fire until the client
    // closes it. Otherwise the reply goes on for the client to resume.
    st.generation->stream = nullptr;
    if (st.generation->cancel_when_gone && st.generation->handle) st.generation->handle->cancel();
  }
}

void on_generated(self_ptr self, std::uint64_t gen, outcome<completion_result>& result,
                  std::string& gathered) {
  auto& st = self->state;
  if (st.generation && st.generation->id == gen) {
    if (st.generation->text.empty())
      st.generation->text = std::move(gathered);
    else
      st.generation->text += gathered;
  }
  complete_generation(self, gen, std::move(result));
}

void on_cancel(self_ptr self, std::uint64_t gen) {
  auto& st = self->state;
  // The provider then finishes with finish_reason::cancelled and the text so far.
  if (st.generation && st.generation->id == gen && st.generation->handle)
    st.generation->handle->cancel();
}

void on_deadline(self_ptr self, std::uint64_t gen) {
  auto& st = self->state;
  if (!st.generation || st.generation->id != gen) return;
  if (st.generation->handle) st.generation->handle->cancel();
  complete_generation(self, gen,
                      failure{errc::provider_timeout, "the model did not answer in time"});
}

}  // namespace parley::conversation_detail
