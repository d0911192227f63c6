// libFuzzer target: a provider's text/event-stream body, split at a point the
// input chooses, through the SSE parser and both protocols' event decoders.

#include "providers/chat_protocol.hpp"
#include "providers/sse_parser.hpp"

#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace parley;
  static auto openai = make_openai_protocol();
  static auto anthropic = make_anthropic_protocol();
  if (size == 0) return 0;
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto split = size > 1 ? data[0] % size : 0;
  sse_parser parser([](sse_event& e) {
    (void)openai->decode_event(e);
    (void)anthropic->decode_event(e);
  });
  parser.feed(body.substr(0, split));
  parser.feed(body.substr(split));
  (void)openai->decode_answer(body);
  (void)anthropic->decode_answer(body);
  (void)upstream_error_message(body);
  return 0;
}
