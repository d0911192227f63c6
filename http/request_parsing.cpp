#include "http/request_parsing.hpp"

#include "http/field_checker.hpp"

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
  c.context_strategy = check.context_strategy().value_or(std::nullopt);
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

namespace {

/// The largest event number accepted: any run has far fewer events.
constexpr std::int64_t max_event_number = std::int64_t(1) << 53;

problem run_not_found(std::string_view run_id) {
  return make_problem(404, "run " + std::string(run_id) + " not found");
}

}  // namespace

parsed<std::optional<run_position>> parse_resume_position(
    const query_params& q, std::optional<std::string_view> last_event_id) {
  if (auto run = q.find("run_id"); run != q.end()) {
    if (!is_canonical_uuid(run->second)) return run_not_found(run->second);
    auto after = query_integer(q, "after", 0, max_event_number);
    if (!after) return after.error();
    return std::optional<run_position>(
        run_position{run->second, static_cast<std::uint64_t>(after->value_or(0))});
  }
  if (q.count("after")) return invalid_field("after", "needs run_id");
  if (!last_event_id || last_event_id->empty()) return std::optional<run_position>();
  auto colon = last_event_id->rfind(':');
  auto run = last_event_id->substr(0, colon);
  std::uint64_t after = 0;
  auto digits =
      colon == std::string_view::npos ? std::string_view() : last_event_id->substr(colon + 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), after);
  if (colon == std::string_view::npos || !is_canonical_uuid(std::string(run)) ||
      ec != std::errc{} || end != digits.data() + digits.size())
    return run_not_found(*last_event_id);
  return std::optional<run_position>(run_position{std::string(run), after});
}

parsed<std::optional<run_position>> parse_ws_resume(const json& frame) {
  auto run = frame.find("run_id");
  auto after = frame.find("after");
  if (run == frame.end() || run->is_null()) {
    if (after != frame.end() && !after->is_null()) return invalid_field("after", "needs run_id");
    return std::optional<run_position>();
  }
  if (!run->is_string()) return invalid_field("run_id", "must be a string");
  auto id = run->get<std::string>();
  if (!is_canonical_uuid(id)) return run_not_found(id);
  std::int64_t n = 0;
  if (after != frame.end() && !after->is_null()) {
    if (!after->is_number_integer() || after->get<std::int64_t>() < 0 ||
        after->get<std::int64_t>() > max_event_number)
      return invalid_field("after",
                           "must be an integer from 0 to " + std::to_string(max_event_number));
    n = after->get<std::int64_t>();
  }
  return std::optional<run_position>(run_position{id, static_cast<std::uint64_t>(n)});
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
  patch.context_strategy = check.context_strategy();
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
  request.params.cancel_on_disconnect = check.on_disconnect();
  request.stream = check.flag("stream").value_or(false);
  return check.result(std::move(request));
}

parsed<std::optional<std::string>> parse_compact(const json& body, const parse_limits& limits) {
  field_checker check(body, limits);
  auto model = check.model("model");
  return check.result(std::move(model));
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
