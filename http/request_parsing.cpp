#include "http/request_parsing.hpp"

#include "base/clock.hpp"
#include "base/uuid.hpp"
#include "http/json_mapping.hpp"
#include "providers/token_estimator.hpp"

#include <charconv>
#include <cmath>
#include <functional>
#include <limits>

namespace parley {

using nlohmann::json;

namespace {

constexpr std::size_t max_title_chars = 200;
constexpr std::size_t max_metadata_entries = 32;

/// Collects every invalid field of one request, so a client sees them all at once.
class field_checker {
 public:
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
    auto s = v->get<std::string>();
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

  void sampling(send_params& p) {
    if (auto v = find("temperature"); v && !v->is_null()) {
      if (!v->is_number())
        fail("temperature", "must be a number");
      else if (auto t = v->get<double>(); !(t >= 0 && t <= 2))
        fail("temperature", "must be between 0 and 2");
      else
        p.temperature = t;
    }
    if (auto v = find("max_tokens"); v && !v->is_null()) {
      if (!v->is_number_integer())
        fail("max_tokens", "must be an integer");
      else if (v->is_number_unsigned() ? v->get<std::uint64_t>() < 1 : v->get<std::int64_t>() < 1)
        fail("max_tokens", "must be at least 1");
      else
        p.max_tokens = static_cast<std::uint32_t>(std::min<std::uint64_t>(
            v->is_number_unsigned() ? v->get<std::uint64_t>() : v->get<std::int64_t>(),
            std::numeric_limits<std::uint32_t>::max()));
    }
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

/// An integer query parameter in [lo, hi]; none when it is not given.
parsed<std::optional<std::int64_t>> query_integer(const query_params& q, const char* name,
                                                  std::int64_t lo, std::int64_t hi) {
  auto i = q.find(name);
  if (i == q.end()) return std::optional<std::int64_t>();
  const auto& text = i->second;
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v < lo || v > hi)
    return invalid_field(
        name, "must be an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
  return std::optional<std::int64_t>(v);
}

}  // namespace

int json_depth(std::string_view text, int limit) {
  int depth = 0, deepest = 0;
  scan_json(text, 0, [&](std::size_t, char c) {
    if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
    return true;
  });
  return deepest;
}

parsed<json> parse_json_object(std::string_view body) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return json::object();
  if (json_depth(body, max_json_depth) > max_json_depth)
    return make_problem(
        400, "the JSON body is nested deeper than " + std::to_string(max_json_depth) + " levels");
  auto j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return make_problem(400, "the body is not valid JSON");
  if (!j.is_object()) return make_problem(400, "the body must be a JSON object");
  return j;
}

parsed<new_conversation> parse_create_conversation(const json& body, const std::string& user_id,
                                                   const parse_limits& limits) {
  field_checker check(body, limits);
  new_conversation c;
  c.user_id = user_id;
  c.title = check.title("title");
  c.model = check.model("model").value_or(limits.models ? limits.models->default_model().id : "");
  c.system_prompt = check.system_prompt("system_prompt");
  c.metadata_json = check.metadata("metadata").value_or("{}");
  if (auto m = check.find("message"); m && !m->is_null()) {
    if (m->is_string()) {
      json wrapped = {{"content", *m}};
      c.first_message = check.message_fields(wrapped, "message.");
    } else if (m->is_object()) {
      c.first_message = check.message_fields(*m, "message.");
    } else {
      check.fail("message", "must be a string or an object with content");
    }
  }
  return check.result(std::move(c));
}

parsed<streamable<send_params>> parse_send_message(const json& body, const parse_limits& limits) {
  field_checker check(body, limits);
  streamable<send_params> request{check.message_fields(body, "")};
  request.stream = check.flag("stream").value_or(false);
  // null is meaningful here: a new root rather than the active leaf.
  if (auto parent = check.find("parent_id"))
    request.params.parent_id = parent->is_null() ? std::nullopt : check.message_id("parent_id");
  return check.result(std::move(request));
}

parsed<send_params> parse_ws_message(json frame, const parse_limits& limits) {
  auto type = frame.find("type");
  if (type == frame.end()) return invalid_field("type", "is required");
  if (!type->is_string() || *type != "message") return invalid_field("type", "must be \"message\"");
  // Over a WebSocket the client only sends user messages, each with a reply.
  for (auto name : {"role", "reply", "stream"}) frame.erase(name);
  auto request = parse_send_message(frame, limits);
  if (!request) return request.error();
  return std::move(request->params);
}

parsed<conversation_patch> parse_conversation_patch(const json& body, const parse_limits& limits) {
  field_checker check(body, limits);
  conversation_patch patch;
  if (check.find("title")) patch.title = check.title("title");
  if (auto m = check.find("model")) {
    if (m->is_null())
      check.fail("model", "must be a string");
    else
      patch.model = check.model("model");
  }
  if (check.find("system_prompt")) patch.system_prompt = check.system_prompt("system_prompt");
  patch.metadata_json = check.metadata("metadata");
  patch.active_message_id = check.message_id("active_message_id");
  return check.result(std::move(patch));
}

parsed<std::string> parse_message_edit(const json& body, const parse_limits& limits) {
  field_checker check(body, limits);
  auto content = check.content("content", check.find("content"));
  return check.result(content.value_or(""));
}

parsed<streamable<regenerate_params>> parse_regenerate(const json& body,
                                                       const parse_limits& limits) {
  field_checker check(body, limits);
  streamable<regenerate_params> request;
  request.params.model = check.model("model");
  request.params.message_id = check.message_id("message_id");
  request.stream = check.flag("stream").value_or(false);
  return check.result(std::move(request));
}

parsed<fork_request> parse_fork(const json& body, const parse_limits& limits) {
  field_checker check(body, limits);
  fork_request request;
  if (auto id = check.message_id("message_id"))
    request.message_id = std::move(*id);
  else if (!check.find("message_id") || check.find("message_id")->is_null())
    check.fail("message_id", "is required");
  request.title = check.title("title");
  return check.result(std::move(request));
}

parsed<history_query> parse_history_query(const query_params& q) {
  history_query out;
  constexpr auto max_seq = std::numeric_limits<std::int64_t>::max();
  auto limit = query_integer(q, "limit", 1, 200);
  if (!limit) return limit.error();
  auto after = query_integer(q, "after", 0, max_seq);
  if (!after) return after.error();
  auto before = query_integer(q, "before", 1, max_seq);
  if (!before) return before.error();
  if (*after && *before) return invalid_field("before", "cannot be combined with after");
  out.limit = static_cast<unsigned>(limit->value_or(out.limit));
  out.after = after->value_or(0);
  out.before = *before;
  if (auto view = q.find("view"); view != q.end()) {
    if (view->second != "all" && view->second != "branch")
      return invalid_field("view", "must be all or branch");
    out.whole_tree = view->second == "all";
  }
  if (auto leaf = q.find("leaf_id"); leaf != q.end()) {
    if (!is_canonical_uuid(leaf->second))
      return invalid_field("leaf_id", "must be the id of a message of this conversation");
    if (out.whole_tree) return invalid_field("leaf_id", "cannot be combined with view=all");
    out.leaf_id = leaf->second;
  }
  return out;
}

parsed<list_query> parse_list_query(const query_params& q) {
  list_query out;
  auto limit = query_integer(q, "limit", 1, 100);
  if (!limit) return limit.error();
  out.limit = static_cast<unsigned>(limit->value_or(out.limit));
  if (auto i = q.find("cursor"); i != q.end() && !i->second.empty()) {
    out.cursor = decode_cursor(i->second);
    if (!out.cursor) return invalid_field("cursor", "is not a cursor this server returned");
  }
  return out;
}

parsed<usage_query> parse_usage_query(const query_params& q) {
  usage_query out;
  for (auto [name, target] : {std::pair{"from", &out.from}, std::pair{"to", &out.to}}) {
    if (auto i = q.find(name); i != q.end()) {
      if (!parse_day(i->second)) return invalid_field(name, "must be a date as YYYY-MM-DD");
      *target = i->second;
    }
  }
  if (out.from > out.to) return invalid_field("from", "must not be after to");
  return out;
}

parsed<search_request> parse_search_query(const query_params& q) {
  search_request out;
  auto text = q.find("q");
  if (text == q.end() || text->second.find_first_not_of(" \t\r\n\f\v") == std::string::npos)
    return invalid_field("q", "is required and must not be blank");
  out.expression = parse_search(text->second);
  auto limit = query_integer(q, "limit", 1, 50);
  if (!limit) return limit.error();
  out.limit = static_cast<unsigned>(limit->value_or(out.limit));
  if (auto c = q.find("conversation_id"); c != q.end()) {
    if (!is_canonical_uuid(c->second))
      return invalid_field("conversation_id", "must be a conversation id");
    out.conversation_id = c->second;
  }
  if (auto r = q.find("role"); r != q.end()) {
    if (r->second != "user" && r->second != "assistant" && r->second != "system")
      return invalid_field("role", "must be one of user, assistant, system");
    out.role = r->second;
  }
  constexpr unix_ms day_ms = 86'400'000;
  if (auto f = q.find("from"); f != q.end()) {
    auto day = parse_day(f->second);
    if (!day) return invalid_field("from", "must be a date as YYYY-MM-DD");
    out.from = *day;
  }
  if (auto t = q.find("to"); t != q.end()) {
    auto day = parse_day(t->second);
    if (!day) return invalid_field("to", "must be a date as YYYY-MM-DD");
    out.until = *day + day_ms;  // inclusive: the whole day
  }
  if (out.from >= out.until) return invalid_field("from", "must not be after to");
  if (auto c = q.find("cursor"); c != q.end() && !c->second.empty()) {
    out.after = decode_search_cursor(c->second);
    if (!out.after) return invalid_field("cursor", "is not a cursor this server returned");
  }
  return out;
}

bool is_valid_user_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '@' ||
          c == ':' || c == '-'))
      return false;
  return true;
}

}  // namespace parley
