#include "persistence/stored_answer.hpp"

#include "base/json_text.hpp"
#include "persistence/store.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>

namespace parley {

namespace {

using nlohmann::json;

/// The code named `name` (to_string's names, which are stable: a stored answer
/// outlives the build that wrote it by a day, and errc may be reordered meanwhile).
errc code_named(const std::string& name) {
  for (auto c = std::uint8_t{0}; c <= static_cast<std::uint8_t>(errc::internal); ++c)
    if (name == to_string(static_cast<errc>(c))) return static_cast<errc>(c);
  throw store_error(errc::internal, "a stored answer names an unknown error: " + name);
}

template <class T>
void put_optional(json& j, const char* name, const std::optional<T>& value) {
  if (value) j[name] = *value;
}

template <class T>
std::optional<T> get_optional(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end()) return std::nullopt;
  return it->template get<T>();
}

json encode(const conversation_record& c) {
  json j{{"id", c.id},
         {"user_id", c.user_id},
         {"model", c.model},
         {"metadata", c.metadata_json},
         {"created_at", c.created_at},
         {"updated_at", c.updated_at},
         {"message_count", c.message_count},
         {"last_seq", c.last_seq},
         {"prompt_tokens", c.usage.prompt_tokens},
         {"completion_tokens", c.usage.completion_tokens},
         {"cost_usd", c.usage.cost_usd},
         {"version", c.version}};
  put_optional(j, "title", c.title);
  put_optional(j, "system_prompt", c.system_prompt);
  put_optional(j, "active_leaf_id", c.active_leaf_id);
  put_optional(j, "forked_from_conversation_id", c.forked_from_conversation_id);
  put_optional(j, "forked_from_message_id", c.forked_from_message_id);
  put_optional(j, "context_strategy", c.context_strategy);
  return j;
}

conversation_record decode_conversation(const json& j) {
  conversation_record c;
  c.id = j.at("id").get<std::string>();
  c.user_id = j.at("user_id").get<std::string>();
  c.title = get_optional<std::string>(j, "title");
  c.model = j.at("model").get<std::string>();
  c.system_prompt = get_optional<std::string>(j, "system_prompt");
  c.metadata_json = j.at("metadata").get<std::string>();
  c.created_at = j.at("created_at").get<unix_ms>();
  c.updated_at = j.at("updated_at").get<unix_ms>();
  c.message_count = j.at("message_count").get<std::int64_t>();
  c.last_seq = j.at("last_seq").get<std::int64_t>();
  c.usage.prompt_tokens = j.at("prompt_tokens").get<std::int64_t>();
  c.usage.completion_tokens = j.at("completion_tokens").get<std::int64_t>();
  c.usage.cost_usd = j.at("cost_usd").get<double>();
  c.version = j.at("version").get<std::int64_t>();
  // Absent from answers stored before messages formed a tree.
  c.active_leaf_id = get_optional<std::string>(j, "active_leaf_id");
  c.forked_from_conversation_id = get_optional<std::string>(j, "forked_from_conversation_id");
  c.forked_from_message_id = get_optional<std::string>(j, "forked_from_message_id");
  c.context_strategy = get_optional<std::string>(j, "context_strategy");
  return c;
}

json encode(const message_record& m) {
  json j{{"id", m.id},     {"conversation_id", m.conversation_id}, {"seq", m.seq},
         {"role", m.role}, {"content", m.content.view()},          {"created_at", m.created_at}};
  put_optional(j, "edited_at", m.edited_at);
  put_optional(j, "model", m.model);
  put_optional(j, "finish_reason", m.finish_reason);
  put_optional(j, "prompt_tokens", m.prompt_tokens);
  put_optional(j, "completion_tokens", m.completion_tokens);
  put_optional(j, "parent_id", m.parent_id);
  j["sibling_index"] = m.sibling_index;
  j["sibling_count"] = m.sibling_count;
  return j;
}

message_record decode_message(const json& j) {
  message_record m;
  m.id = j.at("id").get<std::string>();
  m.conversation_id = j.at("conversation_id").get<std::string>();
  m.seq = j.at("seq").get<std::int64_t>();
  m.role = j.at("role").get<std::string>();
  m.content = shared_text(j.at("content").get<std::string>());
  m.created_at = j.at("created_at").get<unix_ms>();
  m.edited_at = get_optional<unix_ms>(j, "edited_at");
  m.model = get_optional<std::string>(j, "model");
  m.finish_reason = get_optional<std::string>(j, "finish_reason");
  m.prompt_tokens = get_optional<std::int64_t>(j, "prompt_tokens");
  m.completion_tokens = get_optional<std::int64_t>(j, "completion_tokens");
  m.parent_id = get_optional<std::string>(j, "parent_id");
  m.sibling_index = j.value("sibling_index", std::int64_t{1});
  m.sibling_count = j.value("sibling_count", std::int64_t{1});
  return m;
}

}  // namespace

std::string encode_answer(const outcome<exchange_result>& answer) {
  if (!answer) {
    auto& f = answer.error();
    json j{{"code", to_string(f.code)}, {"detail", f.detail}};
    if (!f.field.empty()) j["field"] = f.field;
    if (!f.message_id.empty()) j["message_id"] = f.message_id;
    put_optional(j, "retry_after_s", f.retry_after_s);
    return dump(json{{"failure", std::move(j)}});
  }
  json j = json::object();
  if (answer->conversation) j["conversation"] = encode(*answer->conversation);
  if (answer->message) j["message"] = encode(*answer->message);
  if (answer->reply) j["reply"] = encode(*answer->reply);
  return dump(json{{"result", std::move(j)}});
}

decoded_answer decode_answer(std::string_view text) {
  try {
    auto j = json::parse(text);
    if (auto l = j.find("legacy"); l != j.end())
      return {failure{},
              legacy_answer{l->at("status").get<int>(), l->at("body").get<std::string>()}};
    if (auto f = j.find("failure"); f != j.end()) {
      failure why{code_named(f->at("code").get<std::string>()), f->at("detail").get<std::string>()};
      why.field = f->value("field", "");
      why.message_id = f->value("message_id", "");
      why.retry_after_s = get_optional<unsigned>(*f, "retry_after_s");
      return {why, std::nullopt};
    }
    auto& r = j.at("result");
    if (!r.is_object()) throw store_error(errc::internal, "a stored answer's result is no object");
    exchange_result out;
    if (auto c = r.find("conversation"); c != r.end()) out.conversation = decode_conversation(*c);
    if (auto m = r.find("message"); m != r.end()) out.message = decode_message(*m);
    if (auto m = r.find("reply"); m != r.end()) out.reply = decode_message(*m);
    return {out, std::nullopt};
  } catch (const json::exception& e) {
    throw store_error(errc::internal, std::string("a stored answer cannot be read: ") + e.what());
  }
}

}  // namespace parley
