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

/// Delivers a stateless call's delta to its stream, the model named; a
/// stream that cut its reader off calls the completion off.
std::function<void(const std::string&, std::string)> deltas_to(
    std::shared_ptr<sse_stream> stream, std::shared_ptr<cancellation> cancel) {
  return [stream, cancel](const std::string& model, std::string text) {
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
  std::shared_ptr<sse_stream> stream;
  if (call->stream) {
    stream = open_stream(c, chat_chunk_format(id, created, request.model, call->include_usage));
    request.on_delta = deltas_to(stream, request.cancel);
  }
  engine_.complete(std::move(request),
                   tracked<stateless_result>([c, stream, slot = *slot, id, created](auto r) {
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
  if (call->conversation && !is_canonical_uuid(*call->conversation)) {
    send_problem(c, not_found("conversation", "conversation", *call->conversation));
    return;
  }
  auto& previous = call->previous_response_id;
  if (previous && !is_canonical_uuid(*previous)) {
    send_problem(c, not_found("previous_response_id", "response", *previous));
    return;
  }
  auto slot = generation_slot(c);
  if (!slot) return;
  if (!previous) {
    auto conversation = call->conversation;
    run_response(c, std::move(*call), std::move(conversation), std::nullopt, *slot);
    return;
  }
  // The conversation is the one that holds the reply continued from.
  auto id = *previous;
  engine_.locate_message(
      c.user_id, id,
      tracked<located_message>([self = shared_from_this(), c, call = std::move(*call), id,
                                slot = *slot](outcome<located_message> r) mutable {
        if (!r && r.error().code != errc::not_found) {
          send_problem(c, to_problem(r.error()));
          return;
        }
        if (!r || r->message.role != "assistant") {
          send_problem(c, not_found("previous_response_id", "response", id));
          return;
        }
        self->run_response(c, std::move(call), r->conversation.id, id, slot);
      }));
}

void http_api::run_response(const call_context& c, response_call call,
                            std::optional<std::string> conversation,
                            std::optional<std::string> parent, std::shared_ptr<void> slot) {
  response_view view;
  view.id = make_uuid_v7();
  view.created_at = now_ms();
  view.model = call.model.value_or(conversation ? "" : engine_.models().default_model().id);
  view.conversation_id = conversation;
  view.previous_response_id = parent;
  view.instructions = call.instructions;
  view.metadata_json = call.metadata_json.value_or("{}");
  view.temperature = call.temperature;
  view.max_output_tokens = call.max_output_tokens;
  view.store = call.store;
  if (call.store) {
    run_stored_response(c, std::move(call), std::move(conversation), std::move(parent),
                        std::move(view), std::move(slot));
    return;
  }
  stateless_request request;
  request.user_id = c.user_id;
  request.model = call.model.value_or("");
  if (conversation) request.context = {*conversation, parent};
  request.system = call.instructions;
  request.messages = std::move(call.input);
  request.temperature = call.temperature;
  request.max_tokens = call.max_output_tokens;
  request.cancel = cancelled_when_gone(c);
  std::shared_ptr<sse_stream> stream;
  if (call.stream) {
    stream = open_stream(c, response_event_format(view));
    request.on_delta = deltas_to(stream, request.cancel);
  }
  engine_.complete(std::move(request),
                   tracked<stateless_result>([c, stream, view, slot](auto r) mutable {
                     if (stream && finish_stream(*stream, r, view.id)) return;
                     if (!r) {
                       auto p = to_problem(r.error());
                       if (r.error().code == errc::not_found)
                         p = not_found("conversation", "conversation", *view.conversation_id);
                       send_problem(c, p);
                       return;
                     }
                     view.model = r->model;
                     view.text = r->text;
                     view.usage = r->usage;
                     view.finish_reason = to_string(r->reason);
                     view.status = r->reason == finish_reason::length ? "incomplete" : "completed";
                     send_json(c, 200, response_json(view));
                   }));
}

void http_api::run_stored_response(const call_context& c, response_call call,
                                   std::optional<std::string> conversation,
                                   std::optional<std::string> parent, response_view view,
                                   std::shared_ptr<void> slot) {
  // The input's messages before the last are stored without a reply, one
  // after the other; the last one gets the reply.
  auto steps = std::make_shared<std::vector<chat_message>>(std::move(call.input));
  std::shared_ptr<sse_stream> stream;
  if (call.stream) stream = open_stream(c, response_event_format(view));
  auto cancel = cancelled_when_gone(c);
  auto params_for = [call, view, stream, cancel, steps](std::size_t i) {
    send_params p;
    auto& m = (*steps)[i];
    p.role = m.role;
    p.content = m.content;
    bool last = i + 1 == steps->size();
    p.reply = last;
    if (last) {
      p.model = call.model;
      p.temperature = call.temperature;
      p.max_tokens = call.max_output_tokens;
      p.instructions = call.instructions;
      p.reply_id = view.id;
      p.cancel = cancel;
      p.stream = stream;
    }
    return p;
  };
  auto answer = [c, stream, view, slot](outcome<exchange_answer> r) mutable {
    if (stream && stream->finish(r)) return;
    if (!r) {
      auto p = to_problem(r.error());
      if (r.error().code == errc::not_found && view.conversation_id)
        p = not_found("conversation", "conversation", *view.conversation_id);
      send_problem(c, p);
      return;
    }
    auto& reply = *r->reply;
    view.conversation_id = reply.conversation_id;
    view.model = reply.model.value_or(view.model);
    view.text = reply.content.str();
    view.usage = {reply.prompt_tokens.value_or(0), reply.completion_tokens.value_or(0)};
    view.finish_reason = reply.finish_reason.value_or("stop");
    view.status = view.finish_reason == "length" ? "incomplete" : "completed";
    send_json(c, 200, response_json(view));
  };
  // Sends step `i` onto `id`, then the next; the last one's answer is the call's.
  auto send_from = std::make_shared<std::function<void(std::string, std::size_t)>>();
  *send_from = [this, c, steps, params_for, answer, parent, send_from](std::string id,
                                                                       std::size_t i) {
    auto p = params_for(i);
    if (i == 0 && parent) p.parent_id = std::optional<std::string>(*parent);
    bool last = i + 1 == steps->size();
    engine_.send_message(c.user_id, id, std::move(p), std::nullopt,
                         tracked<exchange_answer>([answer, send_from, id, i, last](auto r) mutable {
                           if (last || !r) {
                             answer(std::move(r));
                             *send_from = nullptr;  // the chain's last holder lets go
                             return;
                           }
                           (*send_from)(id, i + 1);
                         }));
  };
  if (conversation) {
    (*send_from)(*conversation, 0);
    return;
  }
  new_conversation created;
  created.user_id = c.user_id;
  created.model = call.model.value_or(engine_.models().default_model().id);
  created.metadata_json = call.metadata_json.value_or("{}");
  created.first_message = params_for(0);
  bool last = steps->size() == 1;
  engine_.create_conversation(
      std::move(created), std::nullopt,
      tracked<exchange_answer>([answer, send_from, last](outcome<exchange_answer> r) mutable {
        if (last || !r) {
          answer(std::move(r));
          *send_from = nullptr;
          return;
        }
        (*send_from)(r->conversation->id, 1);
      }));
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
