#include "http/request_guard.hpp"

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

outcome<std::string, problem> authenticator::authenticate(
    const credentials& given, bool token_in_query_allowed,
    std::chrono::system_clock::time_point now) const {
  if (!jwt_) {
    if (!given.user_id) return std::string("default");
    if (is_valid_user_id(*given.user_id)) return std::string(*given.user_id);
    return make_problem(401, "X-User-Id must be 1 to 128 characters of A-Z a-z 0-9 . _ @ : -");
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
  } else if (token_in_query_allowed) {
    auto q =
        restinio::try_parse_query<restinio::parse_query_traits::javascript_compatible>(given.query);
    if (q)
      if (auto in_query = q->get_param("access_token")) token = std::string(*in_query);
  }
  if (token.empty())
    return make_problem(401, token_in_query_allowed
                                 ? "an Authorization: Bearer token (or ?access_token=) is required"
                                 : "an Authorization: Bearer token is required");
  auto subject = jwt_->verify(token, now);
  if (!subject) return to_problem(subject.error());
  return *subject;
}

}  // namespace parley
