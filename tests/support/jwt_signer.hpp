#pragma once

#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>

namespace parley::testing {

/// Base64url without padding, as JWTs encode their segments.
std::string base64url(std::string_view bytes);

/// `signing_input` (base64url header "." base64url claims) with its HS256
/// signature appended: a compact JWS.
std::string jwt_hs256_signed(const std::string& signing_input, const std::string& secret);

/// A compact JWS of `header` and `claims`, HMAC-SHA256 signed with `secret`
/// whatever `header` says (so tests can lie in it).
std::string jwt_hs256(const nlohmann::json& claims, const std::string& secret,
                      const nlohmann::json& header = {{"alg", "HS256"}, {"typ", "JWT"}});

/// A fresh RSA key pair that signs RS256 tokens, for tests of that mode.
class rsa_signer {
 public:
  rsa_signer();  ///< 2048 bits
  ~rsa_signer();
  rsa_signer(const rsa_signer&) = delete;
  rsa_signer& operator=(const rsa_signer&) = delete;

  /// The public key, PEM ("-----BEGIN PUBLIC KEY-----").
  std::string public_pem() const;
  std::string sign(const nlohmann::json& claims,
                   const nlohmann::json& header = {{"alg", "RS256"}, {"typ", "JWT"}}) const;

 private:
  struct key;
  std::unique_ptr<key> key_;
};

}  // namespace parley::testing
