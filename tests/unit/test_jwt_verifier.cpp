#define BOOST_TEST_MODULE jwt_verifier
#include <boost/test/unit_test.hpp>

#include "config/load_settings.hpp"
#include "http/jwt_verifier.hpp"
#include "support/jwt_signer.hpp"
#include "support/server_process.hpp"

#include <fstream>

using namespace parley;
using namespace parley::testing;
using nlohmann::json;

namespace {

const std::string secret = "a-test-secret-of-more-than-thirty-two-bytes";
const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
const std::int64_t now_s = 1'800'000'000;

auth_settings hs256_settings() {
  auth_settings a;
  a.mode = "jwt";
  a.jwt_secret = secret;
  return a;
}

/// Asserts a refusal, and that its words give away neither token nor key.
void expect_refused(const jwt_verifier& v, const std::string& token, const std::string& why) {
  auto r = v.verify(token, now);
  BOOST_REQUIRE_MESSAGE(!r, "accepted: " + token.substr(0, 80));
  BOOST_TEST((r.error().code == errc::unauthenticated));
  BOOST_TEST(r.error().detail.find(why) != std::string::npos, r.error().detail);
  BOOST_TEST(r.error().detail.find(secret) == std::string::npos);
  if (token.size() > 8) BOOST_TEST(r.error().detail.find(token) == std::string::npos);
}

/// An RS256 configuration whose key file lives as long as it.
struct rs256_setup {
  rsa_signer signer;
  temp_dir dir;
  auth_settings auth;
  rs256_setup() {
    auth.mode = "jwt";
    auth.jwt_public_key_file = dir.path() + "/key.pem";
    std::ofstream(auth.jwt_public_key_file) << signer.public_pem();
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_valid_hs256_token_names_its_subject) {
  jwt_verifier v(hs256_settings());
  BOOST_TEST(std::string(v.algorithm()) == "HS256");
  auto r = v.verify(jwt_hs256({{"sub", "alice"}, {"exp", now_s + 60}}, secret), now);
  BOOST_REQUIRE(r);
  BOOST_TEST(*r == "alice");
  // Neither exp nor nbf is required; sub may hold what identity providers put there.
  r = v.verify(jwt_hs256({{"sub", "auth0|5f7c8ec7c33c6c004bbafe82"}}, secret), now);
  BOOST_REQUIRE(r);
  BOOST_TEST(*r == "auth0|5f7c8ec7c33c6c004bbafe82");
}

BOOST_AUTO_TEST_CASE(alg_none_and_other_algorithms_are_refused) {
  jwt_verifier v(hs256_settings());
  json claims{{"sub", "alice"}};
  auto unsigned_token =
      base64url(json{{"alg", "none"}}.dump()) + "." + base64url(claims.dump()) + ".";
  expect_refused(v, unsigned_token, "must be signed with HS256");
  for (auto alg : {"none", "None", "HS384", "HS512", "RS256", "hs256"})
    expect_refused(v, jwt_hs256(claims, secret, {{"alg", alg}}), "must be signed with HS256");
  expect_refused(v, jwt_hs256(claims, secret, {{"typ", "JWT"}}), "must be signed with HS256");
  expect_refused(v, jwt_hs256(claims, secret, {{"alg", 256}}), "must be signed with HS256");
  expect_refused(v, jwt_hs256(claims, secret, {{"alg", "HS256"}, {"crit", {"exp"}}}), "critical");
}

BOOST_AUTO_TEST_CASE(a_wrong_key_or_a_changed_payload_fails_the_signature) {
  jwt_verifier v(hs256_settings());
  json claims{{"sub", "alice"}};
  expect_refused(v, jwt_hs256(claims, secret + "x"), "signature does not verify");
  expect_refused(v, jwt_hs256(claims, ""), "signature does not verify");
  auto token = jwt_hs256(claims, secret);
  auto forged_claims = base64url(json{{"sub", "bob"}}.dump());
  auto first = token.find('.'), second = token.rfind('.');
  auto forged = token.substr(0, first + 1) + forged_claims + token.substr(second);
  expect_refused(v, forged, "signature does not verify");
  // A truncated signature.
  expect_refused(v, token.substr(0, token.size() - 4), "signature does not verify");
}

BOOST_AUTO_TEST_CASE(exp_and_nbf_are_enforced_with_thirty_seconds_of_leeway) {
  jwt_verifier v(hs256_settings());
  auto with = [&](json claims) { return jwt_hs256(claims, secret); };
  BOOST_TEST(bool(v.verify(with({{"sub", "a"}, {"exp", now_s - 29}}), now)));
  expect_refused(v, with({{"sub", "a"}, {"exp", now_s - 31}}), "expired");
  BOOST_TEST(bool(v.verify(with({{"sub", "a"}, {"nbf", now_s + 29}}), now)));
  expect_refused(v, with({{"sub", "a"}, {"nbf", now_s + 31}}), "not valid yet");
  expect_refused(v, with({{"sub", "a"}, {"exp", "tomorrow"}}), "not a number");
  expect_refused(v, with({{"sub", "a"}, {"nbf", nullptr}}), "not a number");
}

BOOST_AUTO_TEST_CASE(issuer_and_audience_are_checked_when_configured) {
  auto a = hs256_settings();
  a.issuer = "https://id.example.com/";
  a.audience = "parley";
  jwt_verifier v(a);
  auto with = [&](json claims) { return jwt_hs256(claims, secret); };
  json good{{"sub", "alice"}, {"iss", a.issuer}, {"aud", "parley"}};
  BOOST_TEST(bool(v.verify(with(good), now)));
  // Each change to the good claims, and the refusal it earns ("" for none);
  // a null removes the claim.
  std::vector<std::pair<json, std::string>> changes{
      {{{"aud", {"other", "parley"}}}, ""},
      {{{"aud", "other"}}, "not meant for parley"},
      {{{"aud", nullptr}}, "not meant for parley"},
      {{{"aud", {"other"}}}, "not meant for parley"},
      {{{"iss", "https://evil.example.com/"}}, "not issued by"},
      {{{"iss", nullptr}}, "not issued by"},
      {{{"iss", 7}}, "not issued by"}};
  for (auto& [change, refusal] : changes) {
    auto claims = good;
    claims.merge_patch(change);
    if (refusal.empty())
      BOOST_TEST(bool(v.verify(with(claims), now)), change.dump());
    else
      expect_refused(v, with(claims), refusal);
  }
}

BOOST_AUTO_TEST_CASE(the_subject_must_be_a_usable_string) {
  jwt_verifier v(hs256_settings());
  for (json sub : {json(), json(42), json(""), json(std::string(256, 'a')), json("a\nb"),
                   json::array({"alice"})}) {
    json claims{{"exp", now_s + 60}};
    if (!sub.is_null()) claims["sub"] = sub;
    expect_refused(v, jwt_hs256(claims, secret), "sub");
  }
}

BOOST_AUTO_TEST_CASE(malformed_and_huge_tokens_are_refused) {
  jwt_verifier v(hs256_settings());
  auto token = jwt_hs256({{"sub", "alice"}}, secret);
  for (std::string bad :
       {std::string(), std::string("."), std::string(".."), std::string("abc"), std::string("a.b"),
        token + ".x", token + "=", "!!." + token.substr(token.find('.') + 1),
        base64url("not json") + "." + base64url("{}") + ".c2ln",
        base64url("[1,2]") + "." + base64url("{}") + ".c2ln",
        base64url(R"({"alg":"HS256"})") + "." + base64url("\"just a string\"") + ".c2ln"})
    expect_refused(v, bad, "not a JWT");
  // Padding and non-canonical trailing bits are not base64url as JWS has it.
  expect_refused(v, token.substr(0, token.rfind('.')) + ".AB==", "not a JWT");
  expect_refused(v, std::string(jwt_verifier::max_token_bytes + 1, 'a'), "too long");
  json big{{"sub", "alice"}, {"pad", std::string(9000, 'x')}};
  expect_refused(v, jwt_hs256(big, secret), "too long");
}

BOOST_AUTO_TEST_CASE(an_rs256_key_verifies_its_tokens_and_refuses_key_confusion) {
  rs256_setup rs;
  jwt_verifier v(rs.auth);
  BOOST_TEST(std::string(v.algorithm()) == "RS256");
  auto r = v.verify(rs.signer.sign({{"sub", "carol"}, {"exp", now_s + 60}}), now);
  BOOST_REQUIRE(r);
  BOOST_TEST(*r == "carol");
  // The classic confusion: an HS256 token keyed with the public key's PEM text.
  auto confused = jwt_hs256({{"sub", "carol"}}, rs.signer.public_pem());
  expect_refused(v, confused, "must be signed with RS256");
  // The same header lie with an RS256 signature over other claims.
  rsa_signer other;
  expect_refused(v, other.sign({{"sub", "carol"}}), "signature does not verify");
  auto token = rs.signer.sign({{"sub", "carol"}});
  auto tampered = token.substr(0, token.find('.') + 1) + base64url(json{{"sub", "dave"}}.dump()) +
                  token.substr(token.rfind('.'));
  expect_refused(v, tampered, "signature does not verify");
}

BOOST_AUTO_TEST_CASE(an_unusable_key_file_is_a_configuration_error) {
  temp_dir dir;
  auth_settings a;
  a.mode = "jwt";
  a.jwt_public_key_file = dir.path() + "/missing.pem";
  BOOST_CHECK_THROW(jwt_verifier{a}, config_error);
  a.jwt_public_key_file = dir.path() + "/garbage.pem";
  std::ofstream(a.jwt_public_key_file)
      << "-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n";
  BOOST_CHECK_THROW(jwt_verifier{a}, config_error);
}
