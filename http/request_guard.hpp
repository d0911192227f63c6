#pragma once

// What the server's request prelude checks before a handler runs
// (http/routes.cpp): the request id, header and body limits, CORS and the
// caller's identity. Plain values in, a problem or a value out, no RESTinio,
// so that unit tests reach them (and tests/fuzz/fuzz_request_guard.cpp the
// header checks above the request id).

#include "http/problem.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace parley {

/// ASCII case-insensitive equality, as header names and tokens compare
/// ("Bearer", "application/json", "websocket").
inline bool equals_ignoring_case(std::string_view a, std::string_view b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) ==
           std::tolower(static_cast<unsigned char>(y));
  });
}

/// A list of header names, as a preflight's Access-Control-Request-Headers holds.
inline bool is_header_name_list(std::string_view v) {
  if (v.size() > 1024) return false;
  for (unsigned char ch : v)
    if (!(std::isalnum(ch) || ch == '-' || ch == '_' || ch == ',' || ch == ' ')) return false;
  return true;
}

/// The request id every answer carries: the client's X-Request-Id when it is
/// 1 to 200 visible ASCII characters, else a new UUIDv7.
std::string request_id_from(std::optional<std::string_view> given);

/// How large a request's head may be (server.max_header_bytes, max_header_count).
struct header_limits {
  std::size_t max_bytes = 0;
  std::size_t max_count = 0;
};

/// 414 for a request target past the limit, 431 for too many headers or one
/// (name and value) past it. An overlong Authorization is let through: it is
/// bad credentials, which the authenticator answers with 401. `fields` is a
/// range of header fields with name() and value().
template <class Fields>
outcome<done, problem> check_header_size(std::string_view target, std::size_t field_count,
                                         const Fields& fields, const header_limits& limits) {
  if (target.size() > limits.max_bytes)
    return make_problem(
        414, "the request target is longer than " + std::to_string(limits.max_bytes) + " bytes");
  if (field_count > limits.max_count)
    return make_problem(
        431, "a request may have at most " + std::to_string(limits.max_count) + " headers");
  for (auto& f : fields) {
    std::string_view name = f.name(), value = f.value();
    if (name.size() + value.size() > limits.max_bytes &&
        !equals_ignoring_case(name, "Authorization"))
      return make_problem(431, "the " + std::string(name.substr(0, 64)) +
                                   " header is longer than " + std::to_string(limits.max_bytes) +
                                   " bytes");
  }
  return done{};
}

/// 413 for a body past `max_bytes`; 415 for a body whose Content-Type is not
/// one of `media_types` (parameters such as charset aside). No body, no check of its type.
outcome<done, problem> check_body(
    std::size_t body_bytes, std::optional<std::string_view> content_type, std::size_t max_bytes,
    std::initializer_list<std::string_view> media_types = {"application/json"});

/// Cross-origin access as server.cors_origins allows it.
class cors_policy {
 public:
  explicit cors_policy(std::vector<std::string> origins) : origins_(std::move(origins)) {}

  /// What Access-Control-Allow-Origin says to `origin`: the origin itself
  /// when listed, "*" when "*" is; none for another origin or none at all.
  std::optional<std::string> allowed_origin(std::optional<std::string_view> origin) const;
  /// The CORS headers of an answer to a request from `origin`: none when
  /// CORS is off or the request has no Origin; only Vary for a refused
  /// origin, which a browser takes as the refusal.
  header_list headers(std::optional<std::string_view> origin) const;

 private:
  std::vector<std::string> origins_;
};

class jwt_verifier;

/// The WebSocket subprotocol a client offers alongside its credentials
/// (`parley.bearer.…`, `parley.user.…`) and the server accepts, since a
/// browser refuses an upgrade that accepts none of the offered ones.
inline constexpr std::string_view websocket_protocol = "parley";

/// Whether `offered` (a Sec-WebSocket-Protocol value, comma-separated)
/// names websocket_protocol.
bool offers_parley_protocol(std::string_view offered);

/// Whether the Origin header `origin` ("scheme://host[:port]") names the
/// server the request was sent to (its Host header `host`). A WebSocket
/// upgrade is not subject to CORS: credentials offered as subprotocols count
/// only from this server's own pages and the origins of server.cors_origins,
/// so that another site's page cannot speak for a user (in none mode it would
/// need no secret).
bool is_same_origin(std::string_view origin, std::string_view host);

/// Who calls a /v1 route.
class authenticator {
 public:
  /// `jwt` null: callers name themselves with X-User-Id.
  explicit authenticator(const jwt_verifier* jwt) : jwt_(jwt) {}

  struct credentials {
    std::optional<std::string_view> authorization;
    std::optional<std::string_view> user_id;  ///< X-User-Id
    std::string_view query;                   ///< the raw query string
    /// Sec-WebSocket-Protocol of a WebSocket upgrade from this server's
    /// pages or an allowed origin (else nullopt): a browser's WebSocket
    /// cannot send headers, but can offer subprotocols.
    std::optional<std::string_view> websocket_protocols;
  };

  /// The caller, or the 401 to answer. With a verifier: the `sub` of a valid
  /// `Authorization: Bearer` token, or, on a WebSocket upgrade
  /// (`websocket`), of the token offered as the subprotocol
  /// `parley.bearer.<token>` or given as `?access_token=`. Without: X-User-Id,
  /// or on a WebSocket the subprotocol `parley.user.<base64url of the id>`;
  /// "default" when absent.
  outcome<std::string, problem> authenticate(const credentials& given, bool websocket,
                                             std::chrono::system_clock::time_point now) const;

 private:
  const jwt_verifier* jwt_;
};

}  // namespace parley
