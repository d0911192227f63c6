// libFuzzer target: what an LLM provider answers, as http_provider reads it:
// a whole response body through a protocol's decode_answer, or a streamed
// one through the SSE parser into its decode_event (the pieces applied as
// http_provider applies them: until a failure or the end), and the same bytes
// through upstream_error_message, as an error body. Besides crashes and
// sanitizer reports it traps when:
//  - a stream decodes differently read whole and in pieces;
//  - a failure is not a provider_error, or its detail is unbounded (it quotes
//    at most 300 bytes of the provider's message);
//  - a whole answer decoded without failure is not complete;
//  - upstream_error_message is longer than 300 bytes;
//  - decoded text is not valid UTF-8 (clients and the database get it).
//
// Input: byte 0 picks the protocol (bit 0: OpenAI, Anthropic), the mode
// (bit 1: whole, streamed) and the size of a stream's reads (1 + bits 2-7);
// the rest is the response body.

#include "providers/chat_protocol.hpp"
#include "providers/sse_parser.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace {

using namespace parley;

void check(bool holds) {
  if (!holds) __builtin_trap();
}

/// The longest failure detail: a fixed sentence and 300 bytes quoted.
constexpr std::size_t max_detail_bytes = 100 + 300;

void check_text(const std::string& text) {
  try {
    (void)nlohmann::json(text).dump();
  } catch (const nlohmann::json::exception&) {
    check(false);
  }
}

/// A streamed answer as http_provider puts it together.
struct answer {
  std::string text;
  std::optional<finish_reason> reason;
  std::optional<std::int64_t> prompt_tokens;
  std::optional<std::int64_t> completion_tokens;
  bool complete = false;
  std::optional<std::string> failure;
  std::size_t pending_bytes = 0;

  bool operator==(const answer&) const = default;

  void take(const outcome<decoded_piece>& piece) {
    if (failure || complete) return;
    if (!piece) {
      check(piece.error().code == errc::provider_error);
      check(piece.error().detail.size() <= max_detail_bytes);
      failure = piece.error().detail;
      return;
    }
    check_text(piece->text);
    text += piece->text;
    if (piece->reason) reason = piece->reason;
    if (piece->prompt_tokens) prompt_tokens = piece->prompt_tokens;
    if (piece->completion_tokens) completion_tokens = piece->completion_tokens;
    complete = piece->end;
  }
};

answer streamed(const chat_protocol& protocol, std::string_view body, std::size_t read_size) {
  answer a;
  sse_parser parser([&](sse_event& e) { a.take(protocol.decode_event(e)); });
  for (std::size_t at = 0; at < body.size(); at += read_size)
    parser.feed(body.substr(at, read_size));
  a.pending_bytes = parser.pending_bytes();
  return a;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const auto openai = make_openai_protocol();
  static const auto anthropic = make_anthropic_protocol();
  if (size == 0) return 0;
  const chat_protocol& protocol = (data[0] & 1) ? *anthropic : *openai;
  bool stream = (data[0] & 2) != 0;
  std::size_t read_size = 1 + (data[0] >> 2);
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);

  // An error status: the provider's own explanation, quoted.
  check(upstream_error_message(body).size() <= 300);

  if (!stream) {
    auto whole = protocol.decode_answer(body);
    if (!whole) {
      check(whole.error().code == errc::provider_error);
      check(whole.error().detail.size() <= max_detail_bytes);
      return 0;
    }
    check(whole->end && whole->reason.has_value());
    check_text(whole->text);
    return 0;
  }
  auto at_once = streamed(protocol, body, body.size() + 1);
  auto in_pieces = streamed(protocol, body, read_size);
  check(at_once == in_pieces);
  return 0;
}
