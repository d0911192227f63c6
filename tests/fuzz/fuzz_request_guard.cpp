// libFuzzer target: what guards a request before its handler runs
// (http/routes.cpp, http/handlers.cpp): the X-User-Id check of authenticate,
// the path ids of path_id, the Idempotency-Key check and fingerprint of
// idempotent_exchanges::run, the header comparisons and the preflight's
// header list, and query strings as RESTinio splits them into the history,
// list and usage parsers (and the
// ?access_token= of a WebSocket). Besides crashes and sanitizer reports it
// traps when a check departs from its documented contract, when what passes
// could not be echoed into a header or a problem+json body as it is, or
// when a query parser accepts values outside its ranges.
//
// Input: the whole input is tried as each value; the checks of two values
// take it split at its first newline.

#include "base/uuid.hpp"
#include "http/idempotency.hpp"
#include "http/json_mapping.hpp"
#include "http/problem.hpp"
#include "http/request_guard.hpp"
#include "http/request_parsing.hpp"

#include <nlohmann/json.hpp>
#include <restinio/uri_helpers.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace {

using namespace parley;

void check(bool holds) {
  if (!holds) __builtin_trap();
}

// The contracts as the headers state them, spelled out in ASCII so that no
// locale can widen them.

bool ascii_alnum(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

/// 1-128 characters of A-Z a-z 0-9 . _ @ : -
bool user_id_contract(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id)
    if (!ascii_alnum(c) && std::string_view("._@:-").find(c) == std::string_view::npos)
      return false;
  return true;
}

/// 1-255 visible ASCII characters.
bool idempotency_key_contract(std::string_view key) {
  if (key.empty() || key.size() > 255) return false;
  for (unsigned char c : key)
    if (c < 0x21 || c > 0x7e) return false;
  return true;
}

/// 8-4-4-4-12 lowercase hex digits.
bool uuid_contract(std::string_view id) {
  if (id.size() != 36) return false;
  for (std::size_t i = 0; i < id.size(); ++i) {
    bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    bool hex = (id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f');
    if (dash ? id[i] != '-' : !hex) return false;
  }
  return true;
}

/// At most 1024 characters of A-Z a-z 0-9 - _ , and space: nothing that ends
/// the Access-Control-Allow-Headers it is echoed into.
bool header_name_list_contract(std::string_view v) {
  if (v.size() > 1024) return false;
  for (char c : v)
    if (!ascii_alnum(c) && std::string_view("-_, ").find(c) == std::string_view::npos) return false;
  return true;
}

bool equal_ignoring_ascii_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
  return true;
}

/// YYYY-MM-DD, as the usage range is stored and compared (as text).
bool is_day(const std::string& s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9})
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}

bool is_lower_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

/// A problem with text from the request in its detail (path_id's 404, say)
/// must still render as JSON that reads back.
void check_renders(const problem& p) {
  auto body = render_problem(p, "0190f3c2-6b1e-7cc0-8a4e-3f2b1d0c9e8a");
  auto back = nlohmann::json::parse(body, nullptr, false);
  check(back.is_object() && back.value("status", 0) == p.status);
}

void check_query(std::string_view text) {
  // As the server reads it: RESTinio's parse, the first of repeated names.
  auto q = restinio::try_parse_query<restinio::parse_query_traits::javascript_compatible>(text);
  if (!q) return;  // answered 400
  (void)q->get_param("access_token");
  query_params params;
  for (auto& [k, v] : *q) params.emplace(std::string(k), std::string(v));

  auto history = parse_history_query(params);
  if (auto* h = history ? &*history : nullptr) {
    check(h->limit >= 1 && h->limit <= 200 && h->after >= 0);
    check(!h->before || *h->before >= 1);
    check(!(params.count("after") && params.count("before")));
  } else {
    auto& p = history.error();
    check(p.status == 422 && p.errors.size() == 1);
    check_renders(p);
  }

  auto list = parse_list_query(params);
  if (auto* l = list ? &*list : nullptr) {
    check(l->limit >= 1 && l->limit <= 100);
    auto cursor = params.find("cursor");
    check(l->cursor.has_value() == (cursor != params.end() && !cursor->second.empty()));
    if (l->cursor) {
      check(l->cursor->updated_at >= 0 && is_canonical_uuid(l->cursor->id));
      auto again = decode_cursor(encode_cursor(*l->cursor));
      check(again && again->updated_at == l->cursor->updated_at && again->id == l->cursor->id);
    }
  } else {
    auto& p = list.error();
    check(p.status == 422 && p.errors.size() == 1);
    check_renders(p);
  }

  auto usage = parse_usage_query(params);
  if (auto* u = usage ? &*usage : nullptr) {
    check(is_day(u->from) && is_day(u->to) && u->from <= u->to);
  } else {
    auto& p = usage.error();
    check(p.status == 422 && p.errors.size() == 1);
    check_renders(p);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  auto newline = input.find('\n');
  auto first = input.substr(0, newline);
  auto second = newline == std::string_view::npos ? std::string_view() : input.substr(newline + 1);

  // Header values.
  check(is_valid_user_id(input) == user_id_contract(input));
  check(is_valid_idempotency_key(input) == idempotency_key_contract(input));
  check(is_header_name_list(input) == header_name_list_contract(input));
  check(equals_ignoring_case(first, second) == equal_ignoring_ascii_case(first, second));
  check(equals_ignoring_case(first, second) == equals_ignoring_case(second, first));
  check(equals_ignoring_case(input, input));

  // The fingerprint of an idempotent request: 16 hex digits, the same each time.
  auto fingerprint = request_fingerprint(first, second, input);
  check(fingerprint.size() == 16 && is_lower_hex(fingerprint));
  check(fingerprint == request_fingerprint(first, second, input));

  // A path id; a malformed one is a 404 that names it.
  check(is_canonical_uuid(input) == uuid_contract(input));
  if (!is_canonical_uuid(input))
    check_renders(make_problem(404, "conversation " + std::string(input) + " not found"));

  check_query(input);
  return 0;
}
