// libFuzzer target: a WebSocket text message as a session handles it
// (http/ws_session.cpp, on_text): parse_json_object, then parse_ws_message.
// Besides crashes and sanitizer reports it traps when:
//  - an accepted message breaks parse_ws_message's contract: a user message
//    with a reply, its content the client's own, of 1 to max_message_chars
//    code points and without U+0000, temperature within 0-2, max_tokens at
//    least 1, a known model;
//  - a refusal is not a 400 (not a JSON object) or a 422 naming its fields,
//    or its error event does not serialize to JSON that reads back.

#include "http/json_mapping.hpp"
#include "http/problem.hpp"
#include "http/request_parsing.hpp"
#include "providers/model_registry.hpp"
#include "providers/token_estimator.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace {

using nlohmann::json;

void check(bool holds) {
  if (!holds) __builtin_trap();
}

const parley::parse_limits& limits() {
  static auto models = parley::model_registry::build(parley::settings{});
  // Small, so that short inputs reach the limit.
  static parley::parse_limits l{256, models.get()};
  return l;
}

/// The error event the session sends for a refused message.
void check_error_event(const parley::problem& p) {
  auto event =
      parley::dump({{"type", "error"},
                    {"error", parley::problem_json(p, "0190f3c2-6b1e-7cc0-8a4e-3f2b1d0c9e8a")}});
  auto back = json::parse(event, nullptr, false);
  check(back.is_object() && back["error"].is_object() && back["error"]["status"] == p.status);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace parley;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto frame = parse_json_object(text);
  if (!frame) {
    check(frame.error().status == 400);
    check_error_event(frame.error());
    return 0;
  }
  auto& object = *frame;
  auto params = parse_ws_message(object, limits());
  if (!params) {
    auto& p = params.error();
    check(p.status == 422 && !p.errors.empty());
    for (auto& e : p.errors) check(!e.field.empty() && !e.message.empty());
    check_error_event(p);
    return 0;
  }
  auto& m = *params;
  check(object.value("type", json()) == "message");
  check(m.role == "user" && m.reply);
  // The content is the client's, unaltered, within the limits.
  check(object["content"].is_string() && object["content"].get<std::string>() == m.content);
  auto chars = count_code_points(m.content);
  check(chars >= 1 && chars <= limits().max_message_chars);
  check(m.content.str().find('\0') == std::string::npos);
  if (m.temperature) check(*m.temperature >= 0 && *m.temperature <= 2);
  if (m.max_tokens) check(*m.max_tokens >= 1);
  if (m.model) check(limits().models->find(*m.model) != nullptr);
  check(!m.cancel && !m.stream);
  // What the engine stores and sends on must serialize strictly (valid UTF-8).
  (void)json(m.content.str()).dump();
  return 0;
}
