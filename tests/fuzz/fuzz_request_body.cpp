// libFuzzer target: a request body (or WebSocket frame, or query string) as
// the HTTP layer validates it. Any outcome but a value or a problem (a crash,
// an exception, a sanitizer report) is a finding.

#include "config/settings.hpp"
#include "http/openai_mapping.hpp"
#include "http/request_parsing.hpp"
#include "providers/model_registry.hpp"

#include <cstdint>
#include <string_view>

namespace {

const parley::parse_limits& limits() {
  static auto models = parley::model_registry::build(parley::settings{});
  static parley::parse_limits l{64, models.get()};
  return l;
}

/// `a=b&c=d` into query parameters, as RESTinio hands them over.
parley::query_params query_of(std::string_view text) {
  parley::query_params q;
  while (!text.empty()) {
    auto amp = text.find('&');
    auto pair = text.substr(0, amp);
    auto eq = pair.find('=');
    q[std::string(pair.substr(0, eq))] =
        eq == std::string_view::npos ? "" : std::string(pair.substr(eq + 1));
    text = amp == std::string_view::npos ? std::string_view() : text.substr(amp + 1);
  }
  return q;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace parley;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto q = query_of(input);
  (void)parse_history_query(q);
  (void)parse_list_query(q);
  (void)parse_usage_query(q);
  (void)is_valid_user_id(input);

  auto body = parse_json_object(input);
  if (!body) return 0;
  auto* json = &*body;
  (void)parse_create_conversation(*json, "fuzzer", limits());
  (void)parse_send_message(*json, limits());
  (void)parse_ws_message(*json, limits());
  (void)parse_conversation_patch(*json, limits());
  (void)parse_message_edit(*json, limits());
  (void)parse_regenerate(*json, limits());
  // The OpenAI-compatible bodies, and the errors they are refused with.
  if (auto chat = parse_chat_completion(*json, limits()); !chat)
    (void)openai_error_json(chat.error()).dump();
  if (auto call = parse_response_request(*json, limits()); !call)
    (void)openai_error_json(call.error()).dump();
  // Whatever was accepted must also serialize (invalid UTF-8 would throw here).
  (void)json->dump();
  return 0;
}
