#include "providers/chat_protocol.hpp"

#include "base/json_text.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <utility>

namespace parley {

namespace {

using nlohmann::json;

constexpr std::size_t max_error_message_chars = 300;

failure malformed(std::string_view what) {
  return {errc::provider_error, "the provider answered with " + std::string(what)};
}

std::optional<json> parse(std::string_view text) {
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

/// A number field of `j`, if it holds one.
std::optional<std::int64_t> count_at(const json& j, const char* key) {
  auto i = j.find(key);
  if (i == j.end() || !i->is_number_integer()) return std::nullopt;
  return i->get<std::int64_t>();
}

/// A string field of `j`, or "" when absent or null.
std::string text_at(const json& j, const char* key) {
  auto i = j.find(key);
  return i != j.end() && i->is_string() ? i->get<std::string>() : std::string{};
}

failure reported_error(const json& error) {
  auto message = error.is_object() ? text_at(error, "message") : std::string{};
  if (message.size() > max_error_message_chars) message.resize(max_error_message_chars);
  return {errc::provider_error,
          "the provider reported an error" + (message.empty() ? "" : ": " + message)};
}

// --- OpenAI -------------------------------------------------------------------

std::optional<finish_reason> openai_reason(const json& choice) {
  auto r = text_at(choice, "finish_reason");
  if (r.empty()) return std::nullopt;
  return r == "length" ? finish_reason::length : finish_reason::stop;
}

void openai_usage(const json& j, decoded_piece& out) {
  auto u = j.find("usage");
  if (u == j.end() || !u->is_object()) return;
  out.prompt_tokens = count_at(*u, "prompt_tokens");
  out.completion_tokens = count_at(*u, "completion_tokens");
}

class openai_protocol final : public chat_protocol {
 public:
  // chat_protocol overrides

  std::string endpoint(const std::string& base_url) const override {
    return base_url + "/chat/completions";
  }

  std::vector<std::string> headers(const std::string& api_key) const override {
    std::vector<std::string> out{"Content-Type: application/json"};
    if (!api_key.empty()) out.push_back("Authorization: Bearer " + api_key);
    return out;
  }

  std::string request_body(const completion_request& r) const override {
    // Written out directly, not built as a json tree: the prompt may be a long
    // history, and a tree copies each message's text into nodes of its own.
    // The keys come in json's (sorted) order, so the bytes are what a tree
    // would dump.
    std::size_t size = 128 + r.upstream_model.size();
    for (auto& m : r.messages) size += m.content.size() + m.role.size() + 32;
    std::string out;
    out.reserve(size);
    out += '{';
    if (r.max_tokens > 0) {
      out += "\"max_tokens\":";
      out += std::to_string(r.max_tokens);
      out += ',';
    }
    out += "\"messages\":[";
    bool first = true;
    for (auto& m : r.messages) {
      if (!std::exchange(first, false)) out += ',';
      out += "{\"content\":";
      append_json_string(out, m.content.view());
      out += ",\"role\":";
      append_json_string(out, m.role);
      out += '}';
    }
    out += "],\"model\":";
    append_json_string(out, r.upstream_model);
    if (!r.stop.empty()) {
      out += ",\"stop\":[";
      for (std::size_t i = 0; i < r.stop.size(); ++i) {
        if (i > 0) out += ',';
        append_json_string(out, r.stop[i]);
      }
      out += ']';
    }
    if (r.stream) out += ",\"stream\":true,\"stream_options\":{\"include_usage\":true}";
    if (r.temperature) {
      out += ",\"temperature\":";
      out += json(*r.temperature).dump();
    }
    out += '}';
    return out;
  }

  outcome<decoded_piece> decode_answer(std::string_view body) const override {
    auto j = parse(body);
    if (!j || !j->is_object()) return malformed("a body that is not JSON");
    if (auto e = j->find("error"); e != j->end()) return reported_error(*e);
    auto choices = j->find("choices");
    if (choices == j->end() || !choices->is_array() || choices->empty() ||
        !(*choices)[0].is_object())
      return malformed("no choices");
    auto& choice = (*choices)[0];
    auto message = choice.find("message");
    if (message == choice.end() || !message->is_object())
      return malformed("a choice without message");
    decoded_piece out;
    out.text = text_at(*message, "content");
    out.reason = openai_reason(choice).value_or(finish_reason::stop);
    openai_usage(*j, out);
    out.end = true;
    return out;
  }

  outcome<decoded_piece> decode_event(const sse_event& event) const override {
    decoded_piece out;
    if (event.data == "[DONE]") {
      out.end = true;
      return out;
    }
    auto j = parse(event.data);
    if (!j || !j->is_object()) return malformed("a stream event that is not JSON");
    if (auto e = j->find("error"); e != j->end()) return reported_error(*e);
    if (auto choices = j->find("choices"); choices != j->end() && choices->is_array() &&
                                           !choices->empty() && (*choices)[0].is_object()) {
      auto& choice = (*choices)[0];
      if (auto delta = choice.find("delta"); delta != choice.end() && delta->is_object())
        out.text = text_at(*delta, "content");
      out.reason = openai_reason(choice);
    }
    openai_usage(*j, out);
    return out;
  }
};

// --- Anthropic ----------------------------------------------------------------

constexpr const char* anthropic_version = "2023-06-01";
/// Anthropic requires max_tokens; this is used when the request sets none.
constexpr std::uint32_t anthropic_default_max_tokens = 1024;

std::optional<finish_reason> anthropic_reason(const json& j) {
  auto r = text_at(j, "stop_reason");
  if (r.empty()) return std::nullopt;
  return r == "max_tokens" ? finish_reason::length : finish_reason::stop;
}

void anthropic_usage(const json& j, decoded_piece& out) {
  auto u = j.find("usage");
  if (u == j.end() || !u->is_object()) return;
  out.prompt_tokens = count_at(*u, "input_tokens");
  out.completion_tokens = count_at(*u, "output_tokens");
}

class anthropic_protocol final : public chat_protocol {
 public:
  // chat_protocol overrides

  std::string endpoint(const std::string& base_url) const override {
    return base_url + "/v1/messages";
  }

  std::vector<std::string> headers(const std::string& api_key) const override {
    std::vector<std::string> out{"Content-Type: application/json",
                                 std::string("anthropic-version: ") + anthropic_version};
    if (!api_key.empty()) out.push_back("x-api-key: " + api_key);
    return out;
  }

  std::string request_body(const completion_request& r) const override {
    // System text goes in the top-level `system`; consecutive turns of one
    // role are joined, since the API wants user and assistant alternating.
    std::string system;
    json messages = json::array();
    for (auto& m : r.messages) {
      if (m.role == "system") {
        system += (system.empty() ? "" : "\n\n") + m.content.str();
        continue;
      }
      if (!messages.empty() && messages.back()["role"] == m.role)
        messages.back()["content"] =
            messages.back()["content"].get<std::string>() + "\n\n" + m.content.str();
      else
        messages.push_back({{"role", m.role}, {"content", m.content.str()}});
    }
    json body{{"model", r.upstream_model},
              {"max_tokens", r.max_tokens > 0 ? r.max_tokens : anthropic_default_max_tokens},
              {"messages", std::move(messages)}};
    if (!system.empty()) body["system"] = system;
    if (!r.stop.empty()) body["stop_sequences"] = r.stop;
    // Anthropic's temperature range is 0–1; Parley accepts 0–2.
    if (r.temperature) body["temperature"] = std::min(*r.temperature, 1.0);
    if (r.stream) body["stream"] = true;
    return dump(body);
  }

  outcome<decoded_piece> decode_answer(std::string_view body) const override {
    auto j = parse(body);
    if (!j || !j->is_object()) return malformed("a body that is not JSON");
    if (text_at(*j, "type") == "error") return reported_error(j->value("error", json{}));
    auto content = j->find("content");
    if (content == j->end() || !content->is_array()) return malformed("no content");
    decoded_piece out;
    for (auto& block : *content)
      if (block.is_object() && text_at(block, "type") == "text") out.text += text_at(block, "text");
    out.reason = anthropic_reason(*j).value_or(finish_reason::stop);
    anthropic_usage(*j, out);
    out.end = true;
    return out;
  }

  outcome<decoded_piece> decode_event(const sse_event& event) const override {
    auto j = parse(event.data);
    if (!j || !j->is_object()) return malformed("a stream event that is not JSON");
    auto type = text_at(*j, "type");
    decoded_piece out;
    if (type == "error" || event.name == "error") return reported_error(j->value("error", json{}));
    if (type == "message_start") {
      if (auto m = j->find("message"); m != j->end() && m->is_object()) anthropic_usage(*m, out);
      // message_start counts one output token in advance; the real count comes last.
      out.completion_tokens.reset();
    } else if (type == "content_block_delta") {
      if (auto d = j->find("delta"); d != j->end() && d->is_object())
        out.text = text_at(*d, "text");
    } else if (type == "message_delta") {
      if (auto d = j->find("delta"); d != j->end() && d->is_object())
        out.reason = anthropic_reason(*d);
      anthropic_usage(*j, out);
    } else if (type == "message_stop") {
      out.end = true;
    }
    return out;
  }
};

}  // namespace

std::unique_ptr<chat_protocol> make_openai_protocol() {
  return std::make_unique<openai_protocol>();
}

std::unique_ptr<chat_protocol> make_anthropic_protocol() {
  return std::make_unique<anthropic_protocol>();
}

std::string upstream_error_message(std::string_view body) {
  auto j = parse(body);
  if (!j || !j->is_object()) return {};
  auto e = j->find("error");
  if (e == j->end()) return {};
  if (e->is_string()) return e->get<std::string>().substr(0, max_error_message_chars);
  auto message = e->is_object() ? text_at(*e, "message") : std::string{};
  return message.substr(0, max_error_message_chars);
}

}  // namespace parley
