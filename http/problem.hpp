#pragma once

#include <nlohmann/json.hpp>

#include "base/errors.hpp"

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace parley {

/// Response headers beyond the ones every response gets.
using header_list = std::vector<std::pair<std::string, std::string>>;

/// One invalid field of a 422.
struct field_error {
  std::string field;
  std::string message;
};

/// An RFC 9457 problem about to be sent.
struct problem {
  int status = 500;
  std::string detail;
  std::vector<field_error> errors;  ///< 422 only
  std::string message_id;           ///< 502/504: the stored user message
  std::optional<unsigned> retry_after_s;
  header_list headers;  ///< e.g. Allow
  /// What the OpenAI-compatible routes send as the error's `code`
  /// ("model_not_found"); empty for none.
  std::string code;
};

/// The one place where an engine failure becomes an HTTP status.
problem to_problem(const failure& f);

problem make_problem(int status, std::string detail);
problem invalid_field(std::string field, std::string message);

/// The standard reason phrase ("Not Found").
const char* reason_phrase(int status);

/// The problem+json body, as JSON (a WebSocket error event carries it whole).
nlohmann::json problem_json(const problem& p, const std::string& request_id);

/// The problem+json body, serialized.
std::string render_problem(const problem& p, const std::string& request_id);

/// The status the OpenAI-compatible routes answer `p` with: OpenAI's 400
/// where Parley answers 422.
int openai_status(const problem& p);

/// `p` in OpenAI's error shape, `{"error": {message, type, param, code}}`,
/// which OpenAI's SDKs turn into their typed errors.
nlohmann::json openai_error_json(const problem& p);

}  // namespace parley
