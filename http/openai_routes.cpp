// The OpenAI-compatible routes: /v1/chat/completions over the engine's
// stateless completions, /v1/responses over conversations (or stateless when
// `store` is false). Their problems go out in OpenAI's error shape
// (call_context::openai).

#include "http/http_api.hpp"

#include "base/clock.hpp"
#include "base/uuid.hpp"
#include "http/openai_streams.hpp"

namespace parley {

namespace {

/// A finished stateless answer as the record a stream's `done` renders.
message_record reply_record(const std::string& id, const stateless_result& r) {
  message_record m;
  m.id = id;
  m.role = "assistant";
  m.content = r.text;
  m.model = r.model;
  m.finish_reason = to_string(r.reason);
  m.prompt_tokens = r.usage.prompt_tokens;
  m.completion_tokens = r.usage.completion_tokens;
  return m;
}

/// Connects a stateless call to its stream: it begins when the call is
/// accepted, gets each delta with the model named, and a stream that cut
/// its reader off calls the completion off.
void stream_to(stateless_request& request, std::shared_ptr<sse_stream> stream) {
  request.on_started = [stream] {
    conversation_event e;
    e.type = conversation_event::kind::started;
    stream->deliver(e);
  };
  request.on_delta = [stream, cancel = request.cancel](const std::string& model, std::string text) {
    message_record producing;
    producing.model = model;
    conversation_event e;
    e.type = conversation_event::kind::delta;
    e.message = &producing;
    e.text = std::move(text);
    if (!stream->deliver(e)) cancel->cancel();
  };
}

/// Ends a stateless call's stream with its answer; false when it never began.
bool finish_stream(sse_stream& stream, const outcome<stateless_result>& r, const std::string& id) {
  if (!r) return stream.fail(to_problem(r.error()));
  auto m = reply_record(id, *r);
  conversation_event done;
  done.type = conversation_event::kind::done;
  done.message = &m;
  stream.deliver(done);
  return stream.close_with({});
}

/// A 404 naming the field whose id names nothing of the caller's.
problem not_found(const char* field, const std::string& noun, const std::string& id) {
  auto p = make_problem(404, noun + " " + id + " not found");
  p.errors.push_back({field, "names no " + noun + " of yours"});
  return p;
}

/// The problem for a failed Responses call: what names a missing
/// conversation or reply names the field the caller sent.
problem response_problem(const failure& f, const response_view& view) {
  bool missing =
      f.code == errc::not_found || (f.code == errc::invalid_argument && f.field == "parent_id");
  if (missing && view.previous_response_id)
    return not_found("previous_response_id", "response", *view.previous_response_id);
  if (missing && view.conversation_id)
    return not_found("conversation", "conversation", *view.conversation_id);
  return to_problem(f);
}

/// A stored Responses call: the input's messages stored one after the other,
/// each the child of the one before (so that nothing else comes between
/// them), the last one answered. The Idempotency-Key's claim goes with the
/// last one; a call of several messages looks the key up before storing
/// any. Holds itself while a step is in flight.
class response_steps : public std::enable_shared_from_this<response_steps> {
 public:
  using answer_fn = reply_fn<exchange_answer>;
  response_steps(engine& eng, std::string user, std::vector<send_params> steps,
                 std::optional<idempotency_claim> claim, answer_fn answer)
      : engine_(eng),
        user_(std::move(user)),
        steps_(std::move(steps)),
        claim_(std::move(claim)),
        answer_(std::move(answer)) {}

  /// Stores the steps in `conversation` after `parent`, or in a new
  /// conversation made as `fresh` says when there is none.
  void start(std::optional<std::string> conversation, std::optional<std::string> parent,
             new_conversation fresh) {
    auto begin = [self = shared_from_this(), conversation, parent, fresh]() mutable {
      if (conversation)
        self->run(*conversation, 0, parent);
      else
        self->create(std::move(fresh));
    };
    if (!claim_ || steps_.size() == 1) {
      begin();
      return;
    }
    engine_.find_idempotency(user_, claim_->key,
                             [self = shared_from_this(), begin](auto found) mutable {
                               if (!found) {
                                 self->answer_(found.error());
                               } else if (*found) {
                                 exchange_answer replay;
                                 replay.replayed = std::move(**found);
                                 self->answer_(std::move(replay));
                               } else {
                                 begin();
                               }
                             });
  }

 private:
  std::optional<idempotency_claim> claim_for(std::size_t step) const {
    return step + 1 == steps_.size() ? claim_ : std::nullopt;
  }

  void run(std::string conversation, std::size_t next, std::optional<std::string> parent) {
    auto p = steps_[next];
    if (parent) p.parent_id = std::optional<std::string>(*parent);
    engine_.send_message(user_, conversation, std::move(p), claim_for(next),
                         [self = shared_from_this(), conversation, next](auto r) {
                           self->after(conversation, next, std::move(r));
                         });
  }

  void create(new_conversation fresh) {
    fresh.first_message = steps_[0];
    engine_.create_conversation(std::move(fresh), claim_for(0),
                                [self = shared_from_this()](outcome<exchange_answer> r) {
                                  auto id = r && r->conversation ? r->conversation->id : "";
                                  self->after(id, 0, std::move(r));
                                });
  }

  void after(const std::string& conversation, std::size_t done, outcome<exchange_answer> r) {
    if (!r || r->replayed || done + 1 == steps_.size()) {
      answer_(std::move(r));
      return;
    }
    run(conversation, done + 1, r->message->id);
  }

  engine& engine_;
  const std::string user_;
  const std::vector<send_params> steps_;
  const std::optional<idempotency_claim> claim_;
  answer_fn answer_;
};

}  // namespace

void http_api::chat_completions(const call_context& c, const route_params&) {
  auto body = json_body(c);
  if (!body) return;
  auto call = valid(c, parse_chat_completion(*body, limits_));
  if (!call) return;
  auto slot = generation_slot(c);
  if (!slot) return;
  auto id = "chatcmpl-" + make_uuid_v7();
  auto created = now_ms();
  auto& request = call->request;
  request.user_id = c.user_id;
  request.cancel = cancelled_when_gone(c);
  request.hold = *slot;
  std::shared_ptr<sse_stream> stream;
  if (call->stream) {
    stream = open_stream(c, chat_chunk_format(id, created, request.model, call->include_usage));
    stream_to(request, stream);
  }
  engine_.complete(std::move(request), tracked<stateless_result>([c, stream, id, created](auto r) {
                     if (stream && finish_stream(*stream, r, id)) return;
                     if (!r)
                       send_problem(c, to_problem(r.error()));
                     else
                       send_json(c, 200, chat_completion_json(id, created, *r));
                   }));
}

void http_api::create_response(const call_context& c, const route_params&) {
  auto body = json_body(c);
  if (!body) return;
  auto call = valid(c, parse_response_request(*body, limits_));
  if (!call) return;
  // A malformed id cannot name anything. (Copies: the call moves on below.)
  auto named = call->conversation;
  auto previous = call->previous_response_id;
  if (named && !is_canonical_uuid(*named)) {
    send_problem(c, not_found("conversation", "conversation", *named));
    return;
  }
  if (previous && !is_canonical_uuid(*previous)) {
    send_problem(c, not_found("previous_response_id", "response", *previous));
    return;
  }
  auto slot = generation_slot(c);
  if (!slot) return;
  response_view view;
  view.id = make_uuid_v7();
  view.created_at = now_ms();
  view.model = call->model.value_or(engine_.models().default_model().id);
  view.instructions = call->instructions;
  view.metadata_json = call->metadata_json.value_or("{}");
  view.temperature = call->temperature;
  view.max_output_tokens = call->max_output_tokens;
  view.store = call->store;
  if (!named && !previous) {
    run_response(c, std::move(*call), std::move(view), std::nullopt, *slot);
    return;
  }
  // The conversation continued, read first: the Response names its model,
  // and what it cannot find names the field that asked for it.
  auto go_on = [self = shared_from_this(), c, call = std::move(*call), view, slot = *slot](
                   const conversation_record& conversation,
                   std::optional<std::string> parent) mutable {
    view.model = call.model.value_or(conversation.model);
    view.conversation_id = conversation.id;
    // What a stored call shows is what is stored: the conversation's metadata.
    if (view.store) view.metadata_json = conversation.metadata_json;
    self->run_response(c, std::move(call), std::move(view), std::move(parent), slot);
  };
  if (named) {
    auto id = *named;
    engine_.get_conversation(c.user_id, id,
                             tracked<conversation_record>([c, id, go_on](auto r) mutable {
                               if (!r && r.error().code == errc::not_found)
                                 send_problem(c, not_found("conversation", "conversation", id));
                               else if (!r)
                                 send_problem(c, to_problem(r.error()));
                               else
                                 go_on(*r, std::nullopt);
                             }));
    return;
  }
  auto id = *previous;
  engine_.locate_message(c.user_id, id, tracked<located_message>([c, id, go_on](auto r) mutable {
                           if (!r && r.error().code != errc::not_found)
                             send_problem(c, to_problem(r.error()));
                           else if (!r || r->message.role != "assistant")
                             send_problem(c, not_found("previous_response_id", "response", id));
                           else
                             go_on(r->conversation, id);
                         }));
}

void http_api::run_response(const call_context& c, response_call call, response_view view,
                            std::optional<std::string> parent, std::shared_ptr<void> slot) {
  view.previous_response_id = parent;
  if (call.store) {
    run_stored_response(c, std::move(call), std::move(view), std::move(parent), std::move(slot));
    return;
  }
  stateless_request request;
  request.user_id = c.user_id;
  request.model = view.model;
  if (view.conversation_id) request.context = {*view.conversation_id, parent};
  request.system = call.instructions;
  request.messages = std::move(call.input);
  request.temperature = call.temperature;
  request.max_tokens = call.max_output_tokens;
  request.cancel = cancelled_when_gone(c);
  request.hold = std::move(slot);
  // Nothing is stored: the Response belongs to no conversation.
  view.conversation_id.reset();
  std::shared_ptr<sse_stream> stream;
  if (call.stream) {
    stream = open_stream(c, response_event_format(view));
    stream_to(request, stream);
  }
  auto context = request.context;
  engine_.complete(std::move(request),
                   tracked<stateless_result>([c, stream, view, context](auto r) mutable {
                     if (stream && finish_stream(*stream, r, view.id)) return;
                     if (!r) {
                       auto asked = view;
                       if (context) asked.conversation_id = context->conversation_id;
                       send_problem(c, response_problem(r.error(), asked));
                       return;
                     }
                     send_json(c, 200, response_json(with_reply(view, reply_record(view.id, *r))));
                   }));
}

void http_api::run_stored_response(const call_context& c, response_call call, response_view view,
                                   std::optional<std::string> parent, std::shared_ptr<void> slot) {
  std::shared_ptr<sse_stream> stream;
  if (call.stream) stream = open_stream(c, response_event_format(view));
  std::vector<send_params> steps;
  for (auto& m : call.input) {
    send_params p;
    p.role = m.role;
    p.content = m.content;
    p.reply = false;
    steps.push_back(std::move(p));
  }
  // The last message is answered, with what the call asked.
  auto& last = steps.back();
  last.reply = true;
  last.model = call.model;
  last.temperature = call.temperature;
  last.max_tokens = call.max_output_tokens;
  last.instructions = call.instructions;
  last.reply_id = view.id;
  last.cancel = cancelled_when_gone(c);
  last.stream = stream;
  // What is answered, first or replayed for the same Idempotency-Key: the
  // Response of the stored reply, and problems naming the caller's fields.
  exchange_rendering how;
  how.success = [view](const call_context& c, const exchange_result& r, header_list headers) {
    if (!r.reply) {
      send_problem(c, make_problem(409, "the call stored no reply to answer with"));
      return;
    }
    auto shown = view;
    shown.id = r.reply->id;
    shown.created_at = r.reply->created_at;
    send(c, 200, dump(response_json(with_reply(std::move(shown), *r.reply))), "application/json",
         headers);
  };
  how.problem_of = [view](const failure& f) { return response_problem(f, view); };
  new_conversation fresh;
  fresh.user_id = c.user_id;
  fresh.model = view.model;
  fresh.metadata_json = view.metadata_json;
  auto body = parse_json_object(c.req->body());  // parsed before: it is an object
  exchanges_->run(
      c, body ? *body : nlohmann::json::object(), std::move(how), stream, slot,
      [this, user = c.user_id, steps = std::move(steps), conversation = view.conversation_id,
       parent = std::move(parent), fresh = std::move(fresh)](auto claim, auto reply) mutable {
        std::make_shared<response_steps>(engine_, user, std::move(steps), std::move(claim),
                                         std::move(reply))
            ->start(conversation, parent, std::move(fresh));
      });
}

void http_api::get_response(const call_context& c, const route_params& params) {
  auto id = std::string(params["id"]);
  if (!is_canonical_uuid(id)) {
    send_problem(c, make_problem(404, "response " + id + " not found"));
    return;
  }
  engine_.locate_message(c.user_id, id, tracked<located_message>([c, id](auto r) {
                           if (!r && r.error().code != errc::not_found) {
                             send_problem(c, to_problem(r.error()));
                             return;
                           }
                           if (!r || r->message.role != "assistant") {
                             send_problem(c, make_problem(404, "response " + id + " not found"));
                             return;
                           }
                           send_json(c, 200,
                                     response_json(response_of(r->message, r->conversation)));
                         }));
}

}  // namespace parley
