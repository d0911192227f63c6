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
  // A malformed id cannot name anything.
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
  view.conversation_id = named;
  view.previous_response_id = previous;
  view.instructions = call->instructions;
  view.metadata_json = call->metadata_json.value_or("{}");
  view.temperature = call->temperature;
  view.max_output_tokens = call->max_output_tokens;
  view.store = call->store;
  if (call->store) {
    run_stored_response(c, *body, std::move(*call), std::move(view), *slot);
    return;
  }
  if (!named && !previous) {
    run_unstored_response(c, std::move(*call), std::move(view), *slot);
    return;
  }
  // The conversation read first: the Response names its model, and what
  // cannot be found names the field that asked for it.
  auto go_on = [self = shared_from_this(), c, call = std::move(*call), view,
                slot = *slot](const conversation_record& conversation) mutable {
    view.model = call.model.value_or(conversation.model);
    view.conversation_id = conversation.id;
    self->run_unstored_response(c, std::move(call), std::move(view), slot);
  };
  auto missing = [c, view](const failure& f) { send_problem(c, response_problem(f, view)); };
  if (named) {
    engine_.get_conversation(c.user_id, *named,
                             tracked<conversation_record>([go_on, missing](auto r) mutable {
                               if (r)
                                 go_on(*r);
                               else
                                 missing(r.error());
                             }));
    return;
  }
  engine_.locate_message(c.user_id, *previous,
                         tracked<located_message>([go_on, missing](auto r) mutable {
                           if (r && r->message.role == "assistant")
                             go_on(r->conversation);
                           else if (r)
                             missing(failure{errc::not_found, "not a response"});
                           else
                             missing(r.error());
                         }));
}

void http_api::run_unstored_response(const call_context& c, response_call call, response_view view,
                                     std::shared_ptr<void> slot) {
  stateless_request request;
  request.user_id = c.user_id;
  request.model = view.model;
  if (view.conversation_id) request.context = {*view.conversation_id, view.previous_response_id};
  request.system = call.instructions;
  request.messages = std::move(call.input);
  request.temperature = call.temperature;
  request.max_tokens = call.max_output_tokens;
  request.cancel = cancelled_when_gone(c);
  request.hold = std::move(slot);
  // Nothing is stored: the Response belongs to no conversation (the one
  // read stays named for the problems).
  auto shown = view;
  shown.conversation_id.reset();
  std::shared_ptr<sse_stream> stream;
  if (call.stream) {
    stream = open_stream(c, response_event_format(std::make_shared<response_view>(shown)));
    stream_to(request, stream);
  }
  engine_.complete(std::move(request), tracked<stateless_result>([c, stream, view, shown](auto r) {
                     if (stream && finish_stream(*stream, r, view.id)) return;
                     if (!r)
                       send_problem(c, response_problem(r.error(), view));
                     else
                       send_json(c, 200,
                                 response_json(with_reply(shown, reply_record(view.id, *r))));
                   }));
}

void http_api::run_stored_response(const call_context& c, const nlohmann::json& body,
                                   response_call call, response_view asked,
                                   std::shared_ptr<void> slot) {
  // Filled in as the conversation is read (its model, its metadata), before
  // the exchange runs and so before its stream's first event.
  auto view = std::make_shared<response_view>(std::move(asked));
  std::shared_ptr<sse_stream> stream;
  if (call.stream) stream = open_stream(c, response_event_format(view));
  // One exchange: the input's last message, after the ones before it.
  send_params p;
  auto& last = call.input.back();
  p.role = last.role;
  p.content = last.content;
  p.preceding.assign(call.input.begin(), call.input.end() - 1);
  p.model = call.model;
  p.temperature = call.temperature;
  p.max_tokens = call.max_output_tokens;
  p.instructions = call.instructions;
  p.reply_id = view->id;
  p.cancel = cancel_on_disconnect(c, std::nullopt);
  p.stream = stream;
  // What is answered, first or replayed for the same Idempotency-Key: the
  // Response of the stored reply, and problems naming the caller's fields.
  exchange_rendering how;
  how.success = [view](const call_context& c, const exchange_result& r, header_list headers) {
    if (!r.reply) {
      send_problem(c, make_problem(409, "the call stored no reply to answer with"));
      return;
    }
    send(c, 200, dump(response_json(with_reply(*view, *r.reply))), "application/json", headers);
  };
  how.problem_of = [view](const failure& f) { return response_problem(f, *view); };
  // The conversation is read in the exchange's turn, after the key is
  // claimed: a repeat whose conversation is gone since still gets the stored answer.
  exchanges_->run(
      c, body, std::move(how), stream, slot,
      [self = shared_from_this(), user = c.user_id, p = std::move(p), view, model = call.model](
          auto claim, auto reply) mutable {
        auto send_after = [self, user, p, view, model, claim, reply](
                              const conversation_record& row,
                              std::optional<std::string> parent) mutable {
          view->model = model.value_or(row.model);
          view->conversation_id = row.id;
          // What a stored Response shows is what is stored: its conversation's metadata.
          view->metadata_json = row.metadata_json;
          if (parent) p.parent_id = std::optional<std::string>(*parent);
          self->engine_.send_message(user, row.id, std::move(p), std::move(claim),
                                     std::move(reply));
        };
        if (view->previous_response_id) {
          auto id = *view->previous_response_id;
          self->engine_.locate_message(user, id, [send_after, reply, id](auto r) mutable {
            if (r && r->message.role == "assistant")
              send_after(r->conversation, id);
            else
              reply(r ? failure{errc::not_found, "not a response"} : r.error());
          });
        } else if (view->conversation_id) {
          self->engine_.get_conversation(user, *view->conversation_id,
                                         [send_after, reply](auto r) mutable {
                                           if (r)
                                             send_after(*r, std::nullopt);
                                           else
                                             reply(r.error());
                                         });
        } else {
          new_conversation fresh;
          fresh.user_id = user;
          fresh.model = view->model;
          fresh.metadata_json = view->metadata_json;
          fresh.first_message = std::move(p);
          self->engine_.create_conversation(std::move(fresh), std::move(claim), std::move(reply));
        }
      });
}

void http_api::get_response(const call_context& c, const route_params& params) {
  auto id = std::string(params["id"]);
  // A malformed id, a user message and another user's reply name no response alike.
  auto missing = make_problem(404, "response " + id + " not found");
  if (!is_canonical_uuid(id)) {
    send_problem(c, missing);
    return;
  }
  engine_.locate_message(c.user_id, id, tracked<located_message>([c, missing](auto r) {
                           if (!r && r.error().code != errc::not_found) {
                             send_problem(c, to_problem(r.error()));
                             return;
                           }
                           if (!r || r->message.role != "assistant") {
                             send_problem(c, missing);
                             return;
                           }
                           send_json(c, 200,
                                     response_json(response_of(r->message, r->conversation)));
                         }));
}

}  // namespace parley
