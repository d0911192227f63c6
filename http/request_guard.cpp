#include "http/request_guard.hpp"

#include "base/base64url.hpp"
#include "base/uuid.hpp"
#include "http/jwt_verifier.hpp"
#include "http/request_parsing.hpp"

#include <restinio/uri_helpers.hpp>

namespace parley {

std::string request_id_from(std::optional<std::string_view> given) {
  if (given && !given->empty() && given->size() <= 200 &&
      std::all_of(given->begin(), given->end(),
                  [](unsigned char c) { return c >= 0x21 && c <= 0x7e; }))
    return std::string(*given);
  return make_uuid_v7();
}

outcome<done, problem> check_body(std::size_t body_bytes,
                                  std::optional<std::string_view> content_type,
                                  std::size_t max_bytes,
                                  std::initializer_list<std::string_view> media_types) {
  if (body_bytes > max_bytes)
    return make_problem(413, "the body is larger than " + std::to_string(max_bytes) + " bytes");
  if (body_bytes == 0) return done{};
  auto media = content_type ? content_type->substr(0, content_type->find(';')) : std::string_view();
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  std::string names;
  for (auto type : media_types) {
    if (equals_ignoring_case(media, type)) return done{};
    names += (names.empty() ? "" : " or ") + std::string(type);
  }
  return make_problem(415, "request bodies here must be " + names);
}

std::optional<std::string> cors_policy::allowed_origin(
    std::optional<std::string_view> origin) const {
  if (!origin) return std::nullopt;
  if (std::find(origins_.begin(), origins_.end(), "*") != origins_.end()) return "*";
  if (std::find(origins_.begin(), origins_.end(), *origin) == origins_.end()) return std::nullopt;
  return std::string(*origin);
}

header_list cors_policy::headers(std::optional<std::string_view> origin) const {
  if (origins_.empty() || !origin) return {};
  auto allowed = allowed_origin(origin);
  if (!allowed) return {{"Vary", "Origin"}};
  return {{"Access-Control-Allow-Origin", *allowed},
          {"Vary", "Origin"},
          {"Access-Control-Expose-Headers",
           "X-Request-Id, Location, Retry-After, Idempotent-Replayed"}};
}

namespace {

/// The subprotocols of a Sec-WebSocket-Protocol value, in order.
std::vector<std::string_view> protocols_in(std::string_view offered) {
  std::vector<std::string_view> out;
  while (!offered.empty()) {
    auto comma = offered.find(',');
    auto item = offered.substr(0, comma);
    offered = comma == std::string_view::npos ? std::string_view() : offered.substr(comma + 1);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

/// The rest of the first offered subprotocol that starts with `prefix`.
std::optional<std::string_view> offered_protocol(std::optional<std::string_view> offered,
                                                 std::string_view prefix) {
  if (!offered) return std::nullopt;
  for (auto item : protocols_in(*offered))
    if (item.starts_with(prefix)) return item.substr(prefix.size());
  return std::nullopt;
}

constexpr std::string_view bearer_protocol = "parley.bearer.";
constexpr std::string_view user_protocol = "parley.user.";

}  // namespace

bool is_same_origin(std::string_view origin, std::string_view host) {
  auto scheme_end = origin.find("://");
  if (scheme_end == std::string_view::npos || host.empty()) return false;
  auto scheme = origin.substr(0, scheme_end);
  // An origin leaves out its scheme's default port; a Host header may not.
  std::string_view default_port = equals_ignoring_case(scheme, "https")  ? "443"
                                  : equals_ignoring_case(scheme, "http") ? "80"
                                                                         : "";
  auto with_port = [&](std::string_view authority) {
    auto colon = authority.rfind(':');
    bool has_port =
        colon != std::string_view::npos && authority.find(']', colon) == std::string_view::npos;
    return has_port || default_port.empty()
               ? std::string(authority)
               : std::string(authority) + ":" + std::string(default_port);
  };
  return equals_ignoring_case(with_port(origin.substr(scheme_end + 3)), with_port(host));
}

bool offers_parley_protocol(std::string_view offered) {
  auto items = protocols_in(offered);
  return std::find(items.begin(), items.end(), websocket_protocol) != items.end();
}

outcome<std::string, problem> authenticator::authenticate(
    const credentials& given, bool websocket, std::chrono::system_clock::time_point now) const {
  if (!jwt_) {
    if (given.user_id) {
      if (is_valid_user_id(*given.user_id)) return std::string(*given.user_id);
      return make_problem(401, "X-User-Id must be 1 to 128 characters of A-Z a-z 0-9 . _ @ : -");
    }
    auto encoded =
        websocket ? offered_protocol(given.websocket_protocols, user_protocol) : std::nullopt;
    if (!encoded) return std::string("default");
    auto user = decode_base64url(*encoded);
    if (user && is_valid_user_id(*user)) return std::move(*user);
    return make_problem(401,
                        "the parley.user. subprotocol must carry a user id (1 to 128 characters of "
                        "A-Z a-z 0-9 . _ @ : -) in base64url without padding");
  }
  std::string token;
  if (auto header = given.authorization) {
    auto space = header->find(' ');
    if (space == std::string_view::npos ||
        !equals_ignoring_case(header->substr(0, space), "bearer"))
      return make_problem(401, "the Authorization header must be 'Bearer <token>'");
    auto start = header->find_first_not_of(' ', space);
    if (start != std::string_view::npos) token = std::string(header->substr(start));
    while (!token.empty() && token.back() == ' ') token.pop_back();
  } else if (websocket) {
    if (auto offered = offered_protocol(given.websocket_protocols, bearer_protocol)) {
      token = std::string(*offered);
    } else {
      auto q = restinio::try_parse_query<restinio::parse_query_traits::javascript_compatible>(
          given.query);
      if (q)
        if (auto in_query = q->get_param("access_token")) token = std::string(*in_query);
    }
  }
  if (token.empty())
    return make_problem(401, websocket ? "an Authorization: Bearer token (or the subprotocol "
                                         "parley.bearer.<token>, or ?access_token=) is required"
                                       : "an Authorization: Bearer token is required");
  auto subject = jwt_->verify(token, now);
  if (!subject) return to_problem(subject.error());
  return *subject;
}

}  // namespace parley
