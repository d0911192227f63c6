#include "http/json_mapping.hpp"

#include "config/uuid.hpp"

#include <charconv>

namespace parley {

using nlohmann::json;

namespace {

json optional_string(const std::optional<std::string>& s) { return s ? json(*s) : json(nullptr); }

}  // namespace

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json to_json(const conversation_record& c) {
  auto metadata = json::parse(c.metadata_json, nullptr, false);
  if (!metadata.is_object()) metadata = json::object();
  return {
      {"id", c.id},
      {"user_id", c.user_id},
      {"title", optional_string(c.title)},
      {"model", c.model},
      {"system_prompt", optional_string(c.system_prompt)},
      {"metadata", std::move(metadata)},
      {"created_at", format_rfc3339(c.created_at)},
      {"updated_at", format_rfc3339(c.updated_at)},
      {"message_count", c.message_count},
      {"usage",
       {{"prompt_tokens", c.usage.prompt_tokens},
        {"completion_tokens", c.usage.completion_tokens},
        {"total_tokens", c.usage.prompt_tokens + c.usage.completion_tokens},
        {"cost_usd", c.usage.cost_usd}}},
  };
}

json to_json(const message_record& m) {
  json j = {
      {"id", m.id},
      {"conversation_id", m.conversation_id},
      {"seq", m.seq},
      {"role", m.role},
      {"content", m.content.str()},
      {"created_at", format_rfc3339(m.created_at)},
      {"edited_at", m.edited_at ? json(format_rfc3339(*m.edited_at)) : json(nullptr)},
  };
  if (m.model) {
    j["model"] = *m.model;
    j["finish_reason"] = optional_string(m.finish_reason);
    j["usage"] = {{"prompt_tokens", m.prompt_tokens.value_or(0)},
                  {"completion_tokens", m.completion_tokens.value_or(0)}};
  }
  return j;
}

json to_json(const exchange_result& r) {
  json j = r.conversation ? to_json(*r.conversation) : json::object();
  if (r.message) j["message"] = to_json(*r.message);
  if (r.reply) j["reply"] = to_json(*r.reply);
  return j;
}

json to_json(const message_page& page) {
  json data = json::array();
  for (auto& m : page.data) data.push_back(to_json(m));
  return {{"data", std::move(data)}, {"has_more", page.has_more}};
}

json to_json(const conversation_page& page) {
  json data = json::array();
  for (auto& c : page.rows) data.push_back(to_json(c));
  return {{"data", std::move(data)},
          {"next_cursor", page.next ? json(encode_cursor(*page.next)) : json(nullptr)}};
}

json to_json(const model_registry& models) {
  json data = json::array();
  for (auto& m : models.all())
    data.push_back({{"id", m.id},
                    {"provider", m.provider},
                    {"context_window", m.context_window},
                    {"max_output_tokens", m.max_output_tokens},
                    {"input_price_per_mtok", m.input_price_per_mtok},
                    {"output_price_per_mtok", m.output_price_per_mtok},
                    {"default", m.is_default}});
  return {{"data", std::move(data)}};
}

json usage_to_json(const std::string& user_id, const std::string& from, const std::string& to,
                   const std::vector<usage_row>& rows) {
  auto totals = [](const usage_row& u) {
    return json{{"requests", u.requests},
                {"prompt_tokens", u.prompt_tokens},
                {"completion_tokens", u.completion_tokens},
                {"total_tokens", u.prompt_tokens + u.completion_tokens},
                {"cost_usd", u.cost_usd}};
  };
  usage_row total;
  json by_model = json::array();
  for (auto& r : rows) {
    total.requests += r.requests;
    total.prompt_tokens += r.prompt_tokens;
    total.completion_tokens += r.completion_tokens;
    total.cost_usd += r.cost_usd;
    auto entry = totals(r);
    entry["model"] = r.model;
    by_model.push_back(std::move(entry));
  }
  return {{"user_id", user_id},
          {"from", from},
          {"to", to},
          {"total", totals(total)},
          {"by_model", std::move(by_model)}};
}

// A cursor is "<updated_at>_<id>": the keyset position of the last row served.
std::string encode_cursor(const conversation_cursor& c) {
  return std::to_string(c.updated_at) + "_" + c.id;
}

std::optional<conversation_cursor> decode_cursor(const std::string& text) {
  auto sep = text.find('_');
  if (sep == std::string::npos || sep == 0) return std::nullopt;
  conversation_cursor c;
  auto [end, ec] = std::from_chars(text.data(), text.data() + sep, c.updated_at);
  if (ec != std::errc{} || end != text.data() + sep || c.updated_at < 0) return std::nullopt;
  c.id = text.substr(sep + 1);
  if (!is_canonical_uuid(c.id)) return std::nullopt;
  return c;
}

}  // namespace parley
