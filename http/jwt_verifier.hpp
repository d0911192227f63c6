#pragma once

#include "base/errors.hpp"
#include "config/settings.hpp"

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

namespace parley {

/// Checks the bearer tokens of `auth.mode = "jwt"`: a JWS in compact form
/// signed with HS256 (`auth.jwt_secret`) or RS256 (`auth.jwt_public_key_file`).
/// The algorithm is pinned to the configured key: a token naming any other one
/// (`none`, or HS256 against an RSA key) is refused before its signature is
/// looked at. Signatures are checked by OpenSSL. Thread-safe once built.
class jwt_verifier {
 public:
  /// Longer tokens are refused unread.
  static constexpr std::size_t max_token_bytes = 8192;
  /// Clock skew forgiven on `exp` and `nbf`.
  static constexpr std::chrono::seconds leeway{30};

  /// Loads the key the settings name: the PEM file when one is named, else the
  /// secret. Throws config_error when the file is unreadable or not an RSA
  /// public key.
  explicit jwt_verifier(const auth_settings& auth);
  ~jwt_verifier();
  jwt_verifier(const jwt_verifier&) = delete;
  jwt_verifier& operator=(const jwt_verifier&) = delete;

  /// The caller (`sub`) of a valid token at `now`, or an `unauthenticated`
  /// failure saying why in words that never quote the token or the key.
  outcome<std::string> verify(std::string_view token,
                              std::chrono::system_clock::time_point now) const;

  /// "HS256" or "RS256".
  const char* algorithm() const;

 private:
  struct key;
  std::unique_ptr<key> key_;
  std::string issuer_;
  std::string audience_;
};

}  // namespace parley
