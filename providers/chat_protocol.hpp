#pragma once

#include "providers/provider.hpp"
#include "providers/sse_parser.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace parley {

/// What a protocol read from a whole answer, or from one event of a stream.
/// Fields a piece does not carry stay empty.
struct decoded_piece {
  std::string text;  ///< text to append
  std::optional<finish_reason> reason;
  std::optional<std::int64_t> prompt_tokens;
  std::optional<std::int64_t> completion_tokens;
  bool end = false;  ///< the answer is complete
};

/// One wire protocol of chat completions. Pure mapping, no I/O, so each is
/// tested against recorded examples; stateless and thread-safe.
class chat_protocol {
 public:
  virtual ~chat_protocol() = default;
  /// The completion endpoint under the provider's base URL.
  virtual std::string endpoint(const std::string& base_url) const = 0;
  /// Request headers ("Name: value"), with the key when there is one.
  virtual std::vector<std::string> headers(const std::string& api_key) const = 0;
  /// The JSON body; streamed when `request.stream`.
  virtual std::string request_body(const completion_request& request) const = 0;
  /// A whole answer; a body that is not the protocol's fails with provider_error.
  virtual outcome<decoded_piece> decode_answer(std::string_view body) const = 0;
  /// One event of a streamed answer; an error event fails with provider_error.
  virtual outcome<decoded_piece> decode_event(const sse_event& event) const = 0;
};

/// OpenAI's `/chat/completions`, as OpenAI, Groq, Together, OpenRouter, vLLM,
/// Ollama and llama.cpp's server speak it.
std::unique_ptr<chat_protocol> make_openai_protocol();

/// Anthropic's Messages API (`/v1/messages`).
std::unique_ptr<chat_protocol> make_anthropic_protocol();

/// The provider's own explanation in an error body (`error.message`, as both
/// protocols put it), cut to a readable length; "" when there is none.
std::string upstream_error_message(std::string_view body);

}  // namespace parley
