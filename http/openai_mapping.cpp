#include "http/openai_mapping.hpp"

#include "http/field_checker.hpp"

namespace parley {

using nlohmann::json;

namespace {

/// OpenAI accepts up to four stop sequences.
constexpr std::size_t max_stop_sequences = 4;

/// A message's content: a string, or a list of text parts (`text` and, in
/// the Responses API, `input_text` and `output_text`), joined. Nullopt after
/// recording why not.
std::optional<std::string> content_text(field_checker& check, const std::string& field,
                                        const json* v) {
  if (!v || v->is_null()) {
    check.fail(field, "is required");
    return std::nullopt;
  }
  if (v->is_string()) return check.storable(field, v->get<std::string>());
  if (!v->is_array()) {
    check.fail(field, "must be a string or a list of text parts");
    return std::nullopt;
  }
  std::string out;
  for (std::size_t i = 0; i < v->size(); ++i) {
    auto& part = (*v)[i];
    auto where = field + "[" + std::to_string(i) + "]";
    auto type = part.is_object() ? part.find("type") : part.end();
    auto text = part.is_object() ? part.find("text") : part.end();
    bool known = type != part.end() && type->is_string() &&
                 (*type == "text" || *type == "input_text" || *type == "output_text");
    if (!known || text == part.end() || !text->is_string()) {
      check.fail(where, "must be a text part ({\"type\": \"text\", \"text\": …})");
      return std::nullopt;
    }
    out += text->get<std::string>();
  }
  return check.storable(field, std::move(out));
}

/// A role of a prompt's message; `developer` is OpenAI's newer name for system.
std::optional<std::string> prompt_role(field_checker& check, const std::string& field,
                                       const json& item) {
  auto r = item.find("role");
  if (r == item.end() || !r->is_string()) {
    check.fail(field, "must be one of system, developer, user, assistant");
    return std::nullopt;
  }
  auto role = r->get<std::string>();
  if (role == "developer") return std::string("system");
  if (role == "system" || role == "user" || role == "assistant") return role;
  check.fail(field, "must be one of system, developer, user, assistant");
  return std::nullopt;
}

/// One message of a prompt list at `at` (`messages[i]`, `input[i]`):
/// an object with a role and content. Nullopt after recording why not.
std::optional<chat_message> prompt_message(field_checker& check, const std::string& at,
                                           const json& item) {
  if (!item.is_object()) {
    check.fail(at, "must be an object with role and content");
    return std::nullopt;
  }
  auto role = prompt_role(check, at + ".role", item);
  auto it = item.find("content");
  auto text = content_text(check, at + ".content", it == item.end() ? nullptr : &*it);
  if (!role || !text) return std::nullopt;
  return chat_message(std::move(*role), std::move(*text));
}

/// Token counts as chat completions name them.
json chat_usage_json(const completion_usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

/// The model field: required or not; an unknown one is answered 404.
outcome<std::optional<std::string>, problem> model_field(field_checker& check,
                                                         const parse_limits& limits,
                                                         bool required) {
  auto v = check.find("model");
  if (!v || v->is_null()) {
    if (required) check.fail("model", "is required");
    return std::optional<std::string>();
  }
  if (!v->is_string()) {
    check.fail("model", "must be a string");
    return std::optional<std::string>();
  }
  auto id = v->get<std::string>();
  if (limits.models && !limits.models->find(id)) return model_not_found(id);
  return std::optional<std::string>(id);
}

std::vector<std::string> stop_sequences(field_checker& check) {
  auto v = check.find("stop");
  if (!v || v->is_null()) return {};
  if (v->is_string() && !v->get<std::string>().empty()) return {v->get<std::string>()};
  bool ok = v->is_array() && v->size() <= max_stop_sequences;
  if (ok)
    for (auto& s : *v) ok = ok && s.is_string() && !s.get<std::string>().empty();
  if (!ok) {
    check.fail("stop", "must be a string or a list of up to 4 non-empty strings");
    return {};
  }
  return v->get<std::vector<std::string>>();
}

/// A conversation id field: a string, or an object with `id` (as the SDK sends it).
std::optional<std::string> conversation_field(field_checker& check) {
  auto v = check.find("conversation");
  if (!v || v->is_null()) return std::nullopt;
  const json* id = v;
  if (v->is_object()) {
    auto i = v->find("id");
    id = i == v->end() ? nullptr : &*i;
  }
  if (!id || !id->is_string()) {
    check.fail("conversation", "must be a conversation id or {\"id\": …}");
    return std::nullopt;
  }
  return id->get<std::string>();
}

}  // namespace

problem model_not_found(const std::string& model) {
  auto p = make_problem(404, "The model `" + model + "` does not exist (see GET /v1/models)");
  p.code = "model_not_found";
  p.errors.push_back({"model", "is not a known model"});
  return p;
}

parsed<chat_completion_call> parse_chat_completion(const json& body, const parse_limits& limits) {
  field_checker check(body, limits);
  chat_completion_call out;
  auto model = model_field(check, limits, true);
  if (!model) return model.error();
  auto messages = check.find("messages");
  if (!messages || !messages->is_array()) {
    check.fail("messages", "is required: a list of messages");
  } else if (messages->empty()) {
    check.fail("messages", "must not be empty");
  } else {
    for (std::size_t i = 0; i < messages->size(); ++i)
      if (auto m = prompt_message(check, "messages[" + std::to_string(i) + "]", (*messages)[i]))
        out.request.messages.push_back(std::move(*m));
  }
  out.request.temperature = check.temperature();
  out.request.max_tokens = check.token_count("max_completion_tokens");
  if (!out.request.max_tokens) out.request.max_tokens = check.token_count("max_tokens");
  out.request.stop = stop_sequences(check);
  out.stream = check.flag("stream").value_or(false);
  if (auto o = check.find("stream_options"); o && !o->is_null()) {
    auto usage = o->is_object() ? o->find("include_usage") : o->end();
    if (!o->is_object() || (usage != o->end() && !usage->is_boolean()))
      check.fail("stream_options", "must be an object with a boolean include_usage");
    else
      out.include_usage = usage != o->end() && usage->get<bool>();
  }
  if (auto u = check.find("user"); u && !u->is_null() && !u->is_string())
    check.fail("user", "must be a string");
  auto checked = check.result(std::move(out));
  if (!checked) return checked;
  checked->request.model = **model;
  if (!limits.models) return checked;
  // What cannot fit is refused here, as OpenAI does, rather than cut.
  auto& info = *limits.models->find(checked->request.model);
  std::int64_t tokens = 0;
  for (auto& m : checked->request.messages) tokens += m.tokens;
  if (tokens > info.context_budget()) {
    auto p = invalid_field(
        "messages", "need about " + std::to_string(tokens) + " tokens; model " + info.id +
                        " takes " + std::to_string(info.context_budget()) + " besides its reply");
    p.code = "context_length_exceeded";
    return p;
  }
  return checked;
}

parsed<response_call> parse_response_request(const json& body, const parse_limits& limits) {
  field_checker check(body, limits);
  response_call out;
  auto model = model_field(check, limits, false);
  if (!model) return model.error();
  out.model = *model;
  std::string system;
  if (auto i = check.system_prompt("instructions")) system = *i;
  auto add_message = [&](chat_message m, const std::string& at) {
    if (m.role == "system") {
      system += (system.empty() ? "" : "\n\n") + m.content.str();
      return;
    }
    if (auto checked = check.message_text(at, m.content.str()))
      out.input.emplace_back(std::move(m.role), std::move(*checked));
  };
  auto input = check.find("input");
  if (!input || input->is_null()) {
    check.fail("input", "is required: a string or a list of messages");
  } else if (input->is_string()) {
    if (auto text = check.storable("input", input->get<std::string>()))
      add_message(chat_message("user", std::move(*text)), "input");
  } else if (!input->is_array() || input->empty()) {
    check.fail("input", "must be a string or a non-empty list of messages");
  } else {
    for (std::size_t i = 0; i < input->size(); ++i) {
      auto& item = (*input)[i];
      auto at = "input[" + std::to_string(i) + "]";
      if (auto t = item.is_object() ? item.find("type") : item.end();
          t != item.end() && !(t->is_string() && t->get<std::string>() == "message")) {
        check.fail(at + ".type", "must be message (other input items are not supported)");
        continue;
      }
      if (auto m = prompt_message(check, at, item)) add_message(std::move(*m), at + ".content");
    }
  }
  if (input && input->is_array() && !input->empty() && out.input.empty())
    check.fail("input", "must hold a user or assistant message");
  if (!system.empty()) out.instructions = system;
  out.conversation = conversation_field(check);
  if (auto v = check.find("previous_response_id"); v && !v->is_null()) {
    if (!v->is_string())
      check.fail("previous_response_id", "must be a string");
    else if (out.conversation)
      check.fail("previous_response_id", "cannot be used together with conversation");
    else
      out.previous_response_id = v->get<std::string>();
  }
  out.store = check.flag("store").value_or(true);
  out.stream = check.flag("stream").value_or(false);
  out.temperature = check.temperature();
  out.max_output_tokens = check.token_count("max_output_tokens");
  out.metadata_json = check.metadata("metadata");
  return check.result(std::move(out));
}

const char* openai_finish_reason(std::string_view parley_reason) {
  return parley_reason == "length" ? "length" : "stop";
}

const char* response_status(std::string_view parley_reason) {
  return parley_reason == "length"      ? "incomplete"
         : parley_reason == "cancelled" ? "cancelled"
                                        : "completed";
}

json chat_completion_json(const std::string& id, unix_ms created, const stateless_result& r) {
  return {{"id", id},
          {"object", "chat.completion"},
          {"created", created / 1000},
          {"model", r.model},
          {"choices",
           json::array(
               {{{"index", 0},
                 {"message", {{"role", "assistant"}, {"content", r.text}, {"refusal", nullptr}}},
                 {"logprobs", nullptr},
                 {"finish_reason", openai_finish_reason(to_string(r.reason))}}})},
          {"usage", chat_usage_json(r.usage)}};
}

json chat_chunk_json(const std::string& id, unix_ms created, const std::string& model, json delta,
                     const char* finish_reason, const completion_usage* usage) {
  json chunk{{"id", id},
             {"object", "chat.completion.chunk"},
             {"created", created / 1000},
             {"model", model}};
  if (usage) {
    chunk["choices"] = json::array();
    chunk["usage"] = chat_usage_json(*usage);
    return chunk;
  }
  chunk["choices"] =
      json::array({{{"index", 0},
                    {"delta", std::move(delta)},
                    {"logprobs", nullptr},
                    {"finish_reason", finish_reason ? json(finish_reason) : json()}}});
  return chunk;
}

response_view with_reply(response_view view, const message_record& reply) {
  // The reply is the Response: its id, and a stored one's time, whenever it is shown.
  if (!reply.id.empty()) view.id = reply.id;
  if (reply.created_at) view.created_at = reply.created_at;
  if (reply.model) view.model = *reply.model;
  view.text = reply.content.str();
  view.usage = {reply.prompt_tokens.value_or(0), reply.completion_tokens.value_or(0)};
  view.finish_reason = reply.finish_reason.value_or("stop");
  view.status = response_status(view.finish_reason);
  if (view.store && !reply.conversation_id.empty()) view.conversation_id = reply.conversation_id;
  return view;
}

response_view response_of(const message_record& reply, const conversation_record& conversation) {
  response_view r;
  r.id = reply.id;
  r.created_at = reply.created_at;
  r.model = conversation.model;
  r.metadata_json = conversation.metadata_json;
  r.conversation_id = conversation.id;
  return with_reply(std::move(r), reply);
}

json response_json(const response_view& r) {
  // The message is output once the reply is over (a failed or cancelled
  // one only when it produced text).
  bool has_output = r.status != "in_progress" &&
                    (!r.text.empty() || r.status == "completed" || r.status == "incomplete");
  json output = json::array();
  if (has_output)
    output.push_back({{"type", "message"},
                      {"id", r.id},
                      {"status", "completed"},
                      {"role", "assistant"},
                      {"content", json::array({{{"type", "output_text"},
                                                {"text", r.text},
                                                {"annotations", json::array()}}})}});
  json out{{"id", r.id},
           {"object", "response"},
           {"created_at", r.created_at / 1000},
           {"status", r.status},
           {"model", r.model},
           {"output", std::move(output)},
           {"output_text", r.text},
           {"usage",
            {{"input_tokens", r.usage.prompt_tokens},
             {"output_tokens", r.usage.completion_tokens},
             {"total_tokens", r.usage.prompt_tokens + r.usage.completion_tokens}}},
           {"conversation", r.conversation_id ? json{{"id", *r.conversation_id}} : json()},
           {"instructions", r.instructions ? json(*r.instructions) : json()},
           {"metadata", json::parse(r.metadata_json, nullptr, false)},
           {"temperature", r.temperature ? json(*r.temperature) : json()},
           {"max_output_tokens", r.max_output_tokens ? json(*r.max_output_tokens) : json()},
           {"store", r.store},
           {"error", nullptr},
           {"incomplete_details", nullptr},
           {"parallel_tool_calls", false},
           {"tool_choice", "auto"},
           {"tools", json::array()},
           {"text", {{"format", {{"type", "text"}}}}}};
  if (r.previous_response_id) out["previous_response_id"] = *r.previous_response_id;
  if (r.status == "incomplete") out["incomplete_details"] = {{"reason", "max_output_tokens"}};
  if (r.error) {
    auto e = openai_error_json(*r.error)["error"];
    out["error"] = {{"code", e["code"].is_null() ? e["type"] : e["code"]},
                    {"message", e["message"]}};
  }
  if (r.status == "in_progress") out["usage"] = nullptr;
  return out;
}

}  // namespace parley
