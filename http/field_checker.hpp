#pragma once

// Internal to http/: the checks request bodies share (request_parsing.cpp,
// openai_mapping.cpp, import_formats.cpp).

#include "base/uuid.hpp"
#include "http/json_mapping.hpp"
#include "http/request_parsing.hpp"
#include "providers/token_estimator.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

namespace parley {

inline constexpr std::size_t max_title_chars = 200;
inline constexpr std::size_t max_metadata_entries = 32;

/// Collects every invalid field of one request, so a client sees them all at once.
class field_checker {
 public:
  using json = nlohmann::json;

  field_checker(const json& body, const parse_limits& limits) : body_(body), limits_(limits) {}

  void fail(const std::string& field, const std::string& message) {
    errors_.push_back({field, message});
  }

  const json* find(const char* field) const {
    auto i = body_.find(field);
    return i == body_.end() ? nullptr : &*i;
  }

  /// A string field: nullopt when absent (or null and `null_ok`).
  std::optional<std::string> text(const char* field, bool null_ok = true) {
    auto v = find(field);
    if (!v || (v->is_null() && null_ok)) return std::nullopt;
    if (!v->is_string()) {
      fail(field, "must be a string");
      return std::nullopt;
    }
    return storable(field, v->get<std::string>());
  }

  /// `s` if a database can store it: PostgreSQL's text cannot hold U+0000
  /// (libpq would cut the string there), so no backend gets it.
  std::optional<std::string> storable(const std::string& field, std::string s) {
    if (s.find('\0') == std::string::npos) return s;
    fail(field, "must not contain the character U+0000");
    return std::nullopt;
  }

  /// A message id: a canonical UUID string (any other text names no message).
  std::optional<std::string> message_id(const char* field) {
    auto id = text(field);
    if (id && !is_canonical_uuid(*id)) {
      fail(field, "must be the id of a message of this conversation");
      return std::nullopt;
    }
    return id;
  }

  std::optional<bool> flag(const char* field) {
    auto v = find(field);
    if (!v || v->is_null()) return std::nullopt;
    if (!v->is_boolean()) {
      fail(field, "must be a boolean");
      return std::nullopt;
    }
    return v->get<bool>();
  }

  /// Message content: a string of 1 to max_message_chars code points.
  std::optional<std::string> content(const char* field, const json* v) {
    if (!v || v->is_null()) {
      fail(field, "is required");
      return std::nullopt;
    }
    if (!v->is_string()) {
      fail(field, "must be a string");
      return std::nullopt;
    }
    return message_text(field, v->get<std::string>());
  }

  /// `s` as a message's text: 1 to max_message_chars code points, storable.
  std::optional<std::string> message_text(const std::string& field, std::string s) {
    auto n = count_code_points(s);
    if (n == 0)
      fail(field, "must not be empty");
    else if (n > limits_.max_message_chars)
      fail(field, "must be at most " + std::to_string(limits_.max_message_chars) + " characters");
    else
      return storable(field, std::move(s));
    return std::nullopt;
  }

  /// A model alias that exists.
  std::optional<std::string> model(const char* field) {
    auto v = find(field);
    if (!v || v->is_null()) return std::nullopt;
    if (!v->is_string()) {
      fail(field, "must be a string");
      return std::nullopt;
    }
    auto id = v->get<std::string>();
    if (limits_.models && !limits_.models->find(id)) {
      fail(field, "is not a known model (see GET /v1/models)");
      return std::nullopt;
    }
    return id;
  }

  std::optional<std::string> system_prompt(const char* field) {
    auto s = text(field);
    if (s && count_code_points(*s) > limits_.max_message_chars) {
      fail(field, "must be at most " + std::to_string(limits_.max_message_chars) + " characters");
      return std::nullopt;
    }
    return s;
  }

  std::optional<std::string> title(const char* field) {
    auto s = text(field);
    if (s && count_code_points(*s) > max_title_chars) {
      fail(field, "must be at most 200 characters");
      return std::nullopt;
    }
    return s;
  }

  /// An object of at most 32 string values, as compact JSON text.
  std::optional<std::string> metadata(const char* field) {
    auto v = find(field);
    if (!v) return std::nullopt;
    if (v->is_null()) return std::string("{}");
    if (!v->is_object()) {
      fail(field, "must be an object of string values");
      return std::nullopt;
    }
    if (v->size() > max_metadata_entries) {
      fail(field, "must have at most 32 entries");
      return std::nullopt;
    }
    for (auto& [key, value] : v->items())
      if (!value.is_string()) {
        fail(std::string(field) + "." + key, "must be a string");
        return std::nullopt;
      }
    return dump(*v);
  }

  /// `temperature`: a number from 0 to 2.
  std::optional<double> temperature() {
    auto v = find("temperature");
    if (!v || v->is_null()) return std::nullopt;
    if (!v->is_number())
      fail("temperature", "must be a number");
    else if (auto t = v->get<double>(); !(t >= 0 && t <= 2))
      fail("temperature", "must be between 0 and 2");
    else
      return t;
    return std::nullopt;
  }

  /// A count of tokens: an integer of at least 1 (kept within 32 bits).
  std::optional<std::uint32_t> token_count(const char* field) {
    auto v = find(field);
    if (!v || v->is_null()) return std::nullopt;
    if (!v->is_number_integer())
      fail(field, "must be an integer");
    else if (v->is_number_unsigned() ? v->get<std::uint64_t>() < 1 : v->get<std::int64_t>() < 1)
      fail(field, "must be at least 1");
    else
      return static_cast<std::uint32_t>(std::min<std::uint64_t>(
          v->get<std::uint64_t>(), std::numeric_limits<std::uint32_t>::max()));
    return std::nullopt;
  }

  /// `context_strategy`: "truncate" or "summarize"; an inner none for null.
  std::optional<std::optional<std::string>> context_strategy() {
    auto v = find("context_strategy");
    if (!v) return std::nullopt;
    if (v->is_null()) return std::optional<std::string>();
    if (!v->is_string() || (*v != "truncate" && *v != "summarize")) {
      fail("context_strategy", "must be truncate, summarize or null");
      return std::nullopt;
    }
    return std::optional<std::string>(v->get<std::string>());
  }

  /// `on_disconnect`: true for "cancel", false for "continue", none when absent.
  std::optional<bool> on_disconnect() {
    auto v = text("on_disconnect");
    if (!v) return std::nullopt;
    if (*v != "continue" && *v != "cancel") {
      fail("on_disconnect", "must be continue or cancel");
      return std::nullopt;
    }
    return *v == "cancel";
  }

  void sampling(send_params& p) {
    p.temperature = temperature();
    p.max_tokens = token_count("max_tokens");
  }

  /// The fields of a message to send, at `prefix` (for errors) within `obj`.
  send_params message_fields(const json& obj, const std::string& prefix) {
    field_checker inner(obj, limits_);
    send_params p;
    if (auto c = inner.content((prefix + "content").c_str(), inner.find("content")))
      p.content = std::move(*c);
    if (auto role = inner.text("role")) {
      if (*role != "user" && *role != "assistant" && *role != "system")
        inner.fail(prefix + "role", "must be one of user, assistant, system");
      else
        p.role = *role;
    }
    p.reply = inner.flag("reply").value_or(p.role == "user");
    p.model = inner.model("model");
    inner.sampling(p);
    p.cancel_on_disconnect = inner.on_disconnect();
    for (auto& e : inner.errors_) {
      if (e.field.rfind(prefix, 0) != 0) e.field = prefix + e.field;
      errors_.push_back(e);
    }
    return p;
  }

  template <class T>
  parsed<T> result(T value) {
    if (errors_.empty()) return value;
    problem p = make_problem(
        422, "the request is invalid: " + errors_.front().field + " " + errors_.front().message);
    p.errors = std::move(errors_);
    return p;
  }

 private:
  const json& body_;
  const parse_limits& limits_;
  std::vector<field_error> errors_;
};

}  // namespace parley
