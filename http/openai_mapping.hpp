#pragma once

// The OpenAI-compatible routes' bodies: requests into the engine's values,
// answers into OpenAI's JSON. Pure functions: no I/O, no engine.

#include "actors/requests.hpp"
#include "http/request_parsing.hpp"

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

namespace parley {

/// POST /v1/chat/completions.
struct chat_completion_call {
  stateless_request request;  ///< without its user, cancellation and delta sink
  bool stream = false;
  bool include_usage = false;  ///< stream_options.include_usage
};

/// 400 naming the field (`param`) for an invalid body, 404 with code
/// `model_not_found` for an unknown model, 400 `context_length_exceeded`
/// when the messages do not fit the model's context window.
parsed<chat_completion_call> parse_chat_completion(const nlohmann::json& body,
                                                   const parse_limits& limits);

/// POST /v1/responses.
struct response_call {
  std::optional<std::string> model;
  /// The input's user and assistant messages, in order.
  std::vector<chat_message> input;
  /// `instructions` and the input's system and developer messages, joined.
  std::optional<std::string> instructions;
  std::optional<std::string> conversation;
  std::optional<std::string> previous_response_id;
  bool store = true;
  bool stream = false;
  std::optional<double> temperature;
  std::optional<std::uint32_t> max_output_tokens;
  std::optional<std::string> metadata_json;
};

parsed<response_call> parse_response_request(const nlohmann::json& body,
                                             const parse_limits& limits);

/// The 404 of an unknown model, with OpenAI's code.
problem model_not_found(const std::string& model);

/// `chat.completion` for a whole answer.
nlohmann::json chat_completion_json(const std::string& id, unix_ms created,
                                    const stateless_result& r);

/// One `chat.completion.chunk`: `delta` for the choice, `finish_reason` (or
/// null), and `usage` for the last chunk of a stream that asked for it (its
/// choices are then empty).
nlohmann::json chat_chunk_json(const std::string& id, unix_ms created, const std::string& model,
                               nlohmann::json delta, const char* finish_reason,
                               const completion_usage* usage = nullptr);

/// OpenAI's finish reason for Parley's (`stop`, `length`, `cancelled`).
const char* openai_finish_reason(std::string_view parley_reason);

/// A Response's status for the finish reason of its reply.
const char* response_status(std::string_view parley_reason);

/// What a Response object says, whether stored or not.
struct response_view {
  std::string id;
  unix_ms created_at = 0;
  std::string status = "completed";  ///< in_progress, completed, incomplete, cancelled, failed
  std::string model;
  std::string text;
  completion_usage usage;
  std::string finish_reason = "stop";  ///< Parley's: stop, length, cancelled
  std::optional<std::string> conversation_id;
  std::optional<std::string> previous_response_id;
  std::optional<std::string> instructions;
  std::string metadata_json = "{}";
  std::optional<double> temperature;
  std::optional<std::uint32_t> max_output_tokens;
  bool store = true;
  std::optional<problem> error;  ///< status failed
};

/// `view` with what the reply says: its id, time (when stored), model,
/// text, usage, finish reason, status and conversation (when stored).
response_view with_reply(response_view view, const message_record& reply);

/// A stored reply as GET /v1/responses/{id} shows it: what is stored (the
/// call's own parameters, such as instructions, are not).
response_view response_of(const message_record& reply, const conversation_record& conversation);

nlohmann::json response_json(const response_view& r);

}  // namespace parley
