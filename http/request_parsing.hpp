#pragma once

// Request bodies and query strings into plain structs, or the problem to
// answer. Pure functions: no I/O, no engine.

#include "actors/requests.hpp"
#include "http/problem.hpp"
#include "providers/model_registry.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <string_view>

namespace parley {

/// A request's part as a plain struct, or the problem to answer.
template <class T>
using parsed = outcome<T, problem>;

/// A request that may ask for its reply as a stream (`"stream": true`).
template <class T>
struct streamable {
  T params;
  bool stream = false;
};

/// What validation needs to know of the configuration.
struct parse_limits {
  std::uint32_t max_message_chars = 32768;
  const model_registry* models = nullptr;
};

/// Deepest JSON nesting accepted; deeper bodies are rejected before parsing so
/// that they cannot exhaust the stack.
constexpr int max_json_depth = 64;

/// Walks JSON text from `from`, calling `structural` with each character
/// outside strings (a string's opening quote included) and its position,
/// until it returns false. A template: it runs per character of every body.
template <class Structural>
void scan_json(std::string_view text, std::size_t from, Structural&& structural) {
  bool in_string = false, escaped = false;
  for (auto i = from; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    if (!structural(i, c)) return;
  }
}

/// The nesting depth of JSON text, counted no further than past `limit`.
int json_depth(std::string_view text, int limit);

/// A JSON object from a request body; an empty body is an empty object.
/// 400 for malformed JSON, for nesting deeper than max_json_depth, or for a
/// body that is not an object.
parsed<nlohmann::json> parse_json_object(std::string_view body);

/// POST /v1/conversations. `user_id` is the caller.
parsed<new_conversation> parse_create_conversation(const nlohmann::json& body,
                                                   const std::string& user_id,
                                                   const parse_limits& limits);

/// POST …/messages.
parsed<streamable<send_params>> parse_send_message(const nlohmann::json& body,
                                                   const parse_limits& limits);

/// A WebSocket client's frame: `{"type": "message", "content": …}` with
/// optional `model`, `temperature`, `max_tokens`; always a user message with a reply.
parsed<send_params> parse_ws_message(nlohmann::json frame, const parse_limits& limits);

parsed<conversation_patch> parse_conversation_patch(const nlohmann::json& body,
                                                    const parse_limits& limits);

/// PATCH …/messages/{id}: the new content.
parsed<std::string> parse_message_edit(const nlohmann::json& body, const parse_limits& limits);

/// POST …/regenerate: optional model, message_id, stream.
parsed<streamable<regenerate_params>> parse_regenerate(const nlohmann::json& body,
                                                       const parse_limits& limits);

/// POST …/fork: message_id (required), title.
parsed<fork_request> parse_fork(const nlohmann::json& body, const parse_limits& limits);

/// POST …/compact: the optional `model` (a known alias).
parsed<std::optional<std::string>> parse_compact(const nlohmann::json& body,
                                                 const parse_limits& limits);

using query_params = std::map<std::string, std::string>;

/// GET …/messages: limit 1–200 (default 50), after or before; leaf_id or view.
parsed<history_query> parse_history_query(const query_params& q);

/// GET …/stream: the run to resume and after which event, from `?run_id=…&after=n`
/// or else `Last-Event-ID: <run_id>:<n>` (what a browser's EventSource sends
/// back); none when neither names a run. An id that cannot be one of a run
/// names no run: 404.
parsed<std::optional<run_position>> parse_resume_position(
    const query_params& q, std::optional<std::string_view> last_event_id);

/// A WebSocket `{"type": "resume", "run_id"?, "after"?}` frame's position.
parsed<std::optional<run_position>> parse_ws_resume(const nlohmann::json& frame);

struct list_query {
  unsigned limit = 20;
  std::optional<conversation_cursor> cursor;
};

/// GET /v1/conversations: limit 1–100 (default 20), cursor.
parsed<list_query> parse_list_query(const query_params& q);

struct usage_query {
  std::string from = "0000-01-01";
  std::string to = "9999-12-31";
};

/// GET /v1/usage: from/to as YYYY-MM-DD, inclusive.
parsed<usage_query> parse_usage_query(const query_params& q);

/// GET /v1/search: q (required, not blank), conversation_id, role,
/// from/to (dates, inclusive), limit 1–50 (default 20), cursor. The user is
/// left for the caller to fill in.
parsed<search_request> parse_search_query(const query_params& q);

/// True for a valid X-User-Id: 1–128 chars of [A-Za-z0-9._@:-].
bool is_valid_user_id(std::string_view id);

}  // namespace parley
