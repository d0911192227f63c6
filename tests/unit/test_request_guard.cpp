#define BOOST_TEST_MODULE request_guard
#include <boost/test/unit_test.hpp>

#include "base/uuid.hpp"
#include "config/settings.hpp"
#include "http/jwt_verifier.hpp"
#include "http/request_guard.hpp"
#include "support/jwt_signer.hpp"

#include <string>

using namespace parley;

BOOST_AUTO_TEST_CASE(header_tokens_compare_ignoring_ascii_case) {
  BOOST_TEST(equals_ignoring_case("Bearer", "bearer"));
  BOOST_TEST(equals_ignoring_case("application/JSON", "Application/json"));
  BOOST_TEST(equals_ignoring_case("", ""));
  BOOST_TEST(!equals_ignoring_case("bearer", "bearer "));
  BOOST_TEST(!equals_ignoring_case("websocket", "websockets"));
  BOOST_TEST(!equals_ignoring_case("", "x"));
  // Only ASCII letters fold: other bytes must match exactly.
  BOOST_TEST(!equals_ignoring_case("\xc3\xa9", "\xc3\x89"));
  BOOST_TEST(!equals_ignoring_case("[", "{"));
}

BOOST_AUTO_TEST_CASE(a_preflight_header_list_is_echoed_only_when_plain) {
  BOOST_TEST(is_header_name_list("authorization, content-type, Idempotency-Key, x_custom"));
  BOOST_TEST(is_header_name_list(""));
  BOOST_TEST(is_header_name_list(std::string(1024, 'a')));
  BOOST_TEST(!is_header_name_list(std::string(1025, 'a')));
  // Nothing that could end the header it is echoed into, or start another.
  BOOST_TEST(!is_header_name_list("content-type\r\nSet-Cookie: a=b"));
  BOOST_TEST(!is_header_name_list("content-type\n"));
  BOOST_TEST(!is_header_name_list(std::string("a\0b", 3)));
  BOOST_TEST(!is_header_name_list("x-a: b"));
  BOOST_TEST(!is_header_name_list("x-\xc3\xa9"));
  BOOST_TEST(!is_header_name_list("a\tb"));
}

namespace {

struct field {
  std::string n, v;
  const std::string& name() const { return n; }
  const std::string& value() const { return v; }
};

const header_limits limits{64, 3};

outcome<done, problem> header_check(std::string_view target, const std::vector<field>& fields) {
  return check_header_size(target, fields.size(), fields, limits);
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_request_id_is_the_clients_when_it_is_plain) {
  BOOST_TEST(request_id_from(std::string_view("req-42")) == "req-42");
  BOOST_TEST(request_id_from(std::string_view(std::string(200, 'x'))) == std::string(200, 'x'));
  for (std::optional<std::string_view> bad :
       {std::optional<std::string_view>(), std::optional<std::string_view>(""),
        std::optional<std::string_view>("has space"), std::optional<std::string_view>("tab\t"),
        std::optional<std::string_view>("\xc3\xa9")}) {
    auto id = request_id_from(bad);
    BOOST_TEST(is_canonical_uuid(id), id);
  }
  BOOST_TEST(is_canonical_uuid(request_id_from(std::string(201, 'x'))));
}

BOOST_AUTO_TEST_CASE(an_oversized_head_is_414_or_431) {
  BOOST_TEST(bool(header_check("/v1/x", {{"Host", "a"}, {"Accept", "b"}})));
  BOOST_TEST(header_check(std::string(65, 'a'), {}).error().status == 414);
  BOOST_TEST(bool(header_check(std::string(64, 'a'), {})));
  BOOST_TEST(header_check("/", {{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}}).error().status ==
             431);
  auto long_one = header_check("/", {{"X-Long", std::string(60, 'v')}});
  BOOST_REQUIRE(!long_one);
  BOOST_TEST(long_one.error().status == 431);
  BOOST_TEST(long_one.error().detail.find("X-Long") != std::string::npos);
  // Credentials too long are the authenticator's to refuse, with 401.
  BOOST_TEST(bool(header_check("/", {{"authorization", std::string(100, 't')}})));
  // A long header name is cut in the detail, which echoes it.
  auto named = header_check("/", {{std::string(100, 'N'), ""}});
  BOOST_REQUIRE(!named);
  BOOST_TEST(named.error().detail.find(std::string(65, 'N')) == std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_body_must_be_small_enough_and_json) {
  BOOST_TEST(bool(check_body(0, std::nullopt, 10)));
  BOOST_TEST(bool(check_body(0, std::string_view("text/plain"), 10)));
  BOOST_TEST(bool(check_body(5, std::string_view("application/json"), 10)));
  BOOST_TEST(bool(check_body(5, std::string_view("Application/JSON; charset=utf-8"), 10)));
  BOOST_TEST(bool(check_body(5, std::string_view("application/json ;charset=utf-8"), 10)));
  BOOST_TEST(check_body(11, std::string_view("application/json"), 10).error().status == 413);
  BOOST_TEST(check_body(5, std::nullopt, 10).error().status == 415);
  BOOST_TEST(check_body(5, std::string_view("text/plain"), 10).error().status == 415);
  BOOST_TEST(check_body(5, std::string_view("application/jsonx"), 10).error().status == 415);
}

BOOST_AUTO_TEST_CASE(cors_answers_only_the_listed_origins) {
  cors_policy off({});
  BOOST_TEST(off.headers(std::string_view("https://a.example")).empty());
  cors_policy some({"https://a.example"});
  BOOST_TEST(some.headers(std::nullopt).empty());
  BOOST_TEST(*some.allowed_origin(std::string_view("https://a.example")) == "https://a.example");
  BOOST_TEST(!some.allowed_origin(std::string_view("https://b.example")));
  auto refused = some.headers(std::string_view("https://b.example"));
  BOOST_REQUIRE(refused.size() == 1u);
  BOOST_TEST(refused[0].first == "Vary");
  auto allowed = some.headers(std::string_view("https://a.example"));
  BOOST_REQUIRE(allowed.size() == 3u);
  BOOST_TEST(allowed[0].second == "https://a.example");
  cors_policy any({"*"});
  BOOST_TEST(*any.allowed_origin(std::string_view("https://c.example")) == "*");
  BOOST_TEST(!any.allowed_origin(std::nullopt));
}

BOOST_AUTO_TEST_CASE(without_tokens_the_caller_names_itself) {
  authenticator by_header(nullptr);
  auto now = std::chrono::system_clock::now();
  BOOST_TEST(*by_header.authenticate({}, false, now) == "default");
  BOOST_TEST(*by_header.authenticate({std::nullopt, std::string_view("alice@example.com"), ""},
                                     false, now) == "alice@example.com");
  auto bad = by_header.authenticate({std::nullopt, std::string_view("al ice"), ""}, false, now);
  BOOST_REQUIRE(!bad);
  BOOST_TEST(bad.error().status == 401);
  // A token is no identity in this mode.
  BOOST_TEST(*by_header.authenticate({std::string_view("Bearer abc"), std::nullopt, ""}, false,
                                     now) == "default");
}

BOOST_AUTO_TEST_CASE(with_tokens_the_caller_is_the_verified_subject) {
  auth_settings a;
  a.mode = "jwt";
  a.jwt_secret = "a-test-secret-of-more-than-thirty-two-bytes";
  jwt_verifier verifier(a);
  authenticator by_token(&verifier);
  auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  auto token = testing::jwt_hs256({{"sub", "bob"}, {"exp", 1'800'000'600}}, a.jwt_secret);
  auto subject = [&](authenticator::credentials c, bool query_allowed = false) {
    auto r = by_token.authenticate(c, query_allowed, now);
    return r ? *r : "401: " + r.error().detail;
  };
  auto bearer = "Bearer " + token;
  BOOST_TEST(subject({bearer}) == "bob");
  auto lower = "bearer   " + token + "  ";
  BOOST_TEST(subject({lower}) == "bob");
  // X-User-Id is no identity in this mode.
  BOOST_TEST(subject({std::nullopt, std::string_view("alice"), ""}).starts_with("401: "));
  BOOST_TEST(subject({std::string_view("Basic abc")}) ==
             "401: the Authorization header must be 'Bearer <token>'");
  BOOST_TEST(subject({std::string_view("Bearer")}) ==
             "401: the Authorization header must be 'Bearer <token>'");
  BOOST_TEST(subject({std::string_view("Bearer   ")}) ==
             "401: an Authorization: Bearer token is required");
  BOOST_TEST(subject({std::string_view("Bearer not.a.token")}).starts_with("401: "));
  // ?access_token= only where a browser cannot send headers.
  auto query = "x=1&access_token=" + token;
  BOOST_TEST(subject({std::nullopt, std::nullopt, query}, true) == "bob");
  BOOST_TEST(subject({std::nullopt, std::nullopt, query}) ==
             "401: an Authorization: Bearer token is required");
  BOOST_TEST(subject({std::nullopt, std::nullopt, ""}, true) ==
             "401: an Authorization: Bearer token (or the subprotocol parley.bearer.<token>, or "
             "?access_token=) is required");
  // A browser's WebSocket offers the token as a subprotocol, so that it is in
  // no URL; the header wins over it, and it over the query.
  auto offered = "parley, parley.bearer." + token;
  BOOST_TEST(subject({std::nullopt, std::nullopt, "", std::string_view(offered)}, true) == "bob");
  auto other = testing::jwt_hs256({{"sub", "carol"}, {"exp", 1'800'000'600}}, a.jwt_secret);
  auto other_offered = "parley,parley.bearer." + other;
  BOOST_TEST(subject({bearer, std::nullopt, "", std::string_view(other_offered)}, true) == "bob");
  BOOST_TEST(subject({std::nullopt, std::nullopt, query, std::string_view(other_offered)}, true) ==
             "carol");
  BOOST_TEST(
      subject({std::nullopt, std::nullopt, "", std::string_view("parley, parley.bearer.x.y.z")},
              true)
          .starts_with("401: "));
  // Only on a WebSocket upgrade.
  BOOST_TEST(subject({std::nullopt, std::nullopt, "", std::string_view(offered)}) ==
             "401: an Authorization: Bearer token is required");
}

BOOST_AUTO_TEST_CASE(a_websocket_names_its_user_in_a_subprotocol) {
  authenticator by_header(nullptr);
  auto now = std::chrono::system_clock::now();
  auto user = [&](std::optional<std::string_view> id, std::string_view offered) {
    auto r = by_header.authenticate({std::nullopt, id, "", offered}, true, now);
    return r ? *r : "401: " + r.error().detail;
  };
  // "alice@example.com" in base64url: '@' is no token character.
  BOOST_TEST(user(std::nullopt, "parley, parley.user.YWxpY2VAZXhhbXBsZS5jb20") ==
             "alice@example.com");
  BOOST_TEST(user(std::string_view("bob"), "parley, parley.user.YWxpY2VAZXhhbXBsZS5jb20") == "bob");
  BOOST_TEST(user(std::nullopt, "parley") == "default");
  BOOST_TEST(user(std::nullopt, "parley, parley.user.***")
                 .starts_with("401: the parley.user. subprotocol must carry a user id"));
  // "al ice"
  BOOST_TEST(user(std::nullopt, "parley.user.YWwgaWNl").starts_with("401: "));
  // Only on a WebSocket upgrade.
  auto plain = by_header.authenticate(
      {std::nullopt, std::nullopt, "", std::string_view("parley.user.Ym9i")}, false, now);
  BOOST_TEST(*plain == "default");
}

BOOST_AUTO_TEST_CASE(an_origin_is_the_same_when_it_names_the_host) {
  BOOST_TEST(is_same_origin("http://127.0.0.1:8000", "127.0.0.1:8000"));
  BOOST_TEST(is_same_origin("https://Chat.Example.com", "chat.example.com"));
  BOOST_TEST(!is_same_origin("http://127.0.0.1:8000", "127.0.0.1:8001"));
  BOOST_TEST(!is_same_origin("https://evil.example", "chat.example.com"));
  BOOST_TEST(!is_same_origin("https://chat.example.com.evil.example", "chat.example.com"));
  BOOST_TEST(!is_same_origin("null", "chat.example.com"));
  BOOST_TEST(!is_same_origin("http://a", ""));
  // Default ports written or not.
  BOOST_TEST(is_same_origin("https://chat.example.com", "chat.example.com:443"));
  BOOST_TEST(is_same_origin("http://chat.example.com:80", "chat.example.com"));
  BOOST_TEST(!is_same_origin("http://chat.example.com", "chat.example.com:443"));
  BOOST_TEST(is_same_origin("http://[::1]:8000", "[::1]:8000"));
  BOOST_TEST(!is_same_origin("http://[::1]", "[::1]:8000"));
}

BOOST_AUTO_TEST_CASE(the_parley_subprotocol_is_recognised_among_others) {
  BOOST_TEST(offers_parley_protocol("parley"));
  BOOST_TEST(offers_parley_protocol("chat, parley ,parley.bearer.abc"));
  BOOST_TEST(!offers_parley_protocol("parley.bearer.abc"));
  BOOST_TEST(!offers_parley_protocol("parleyx, chat"));
  BOOST_TEST(offers_parley_protocol("parleyx, parley"));
  BOOST_TEST(!offers_parley_protocol(""));
}
