#include "http/jwt_verifier.hpp"

#include "base/base64url.hpp"
#include "config/load_settings.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <nlohmann/json.hpp>

#include <array>
#include <cstdio>
#include <optional>

namespace parley {

namespace {

struct pkey_free {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct md_ctx_free {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};
struct bio_free {
  void operator()(BIO* b) const { BIO_free(b); }
};

failure refused(std::string why) { return failure{errc::unauthenticated, std::move(why)}; }

std::optional<nlohmann::json> decode_json_object(std::string_view segment) {
  auto bytes = decode_base64url(segment);
  if (!bytes) return std::nullopt;
  auto j = nlohmann::json::parse(*bytes, nullptr, false);
  if (!j.is_object()) return std::nullopt;
  return j;
}

/// A NumericDate claim (seconds since the epoch): none when absent, refused
/// when it is not a number.
outcome<std::optional<double>> numeric_date(const nlohmann::json& claims, const char* name) {
  auto it = claims.find(name);
  if (it == claims.end()) return std::optional<double>();
  if (!it->is_number())
    return refused(std::string("the bearer token's ") + name + " is not a number");
  return std::optional<double>(it->get<double>());
}

bool is_acceptable_subject(const std::string& sub) {
  if (sub.empty() || sub.size() > 255) return false;
  for (unsigned char c : sub)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

}  // namespace

struct jwt_verifier::key {
  std::string secret;                            // HS256
  std::unique_ptr<EVP_PKEY, pkey_free> rsa_key;  // RS256

  bool signature_matches(std::string_view signed_part, const std::string& signature) const {
    if (rsa_key) {
      std::unique_ptr<EVP_MD_CTX, md_ctx_free> ctx{EVP_MD_CTX_new()};
      if (!ctx ||
          EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, rsa_key.get()) != 1)
        return false;
      return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                              signature.size(),
                              reinterpret_cast<const unsigned char*>(signed_part.data()),
                              signed_part.size()) == 1;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
              reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(), mac,
              &mac_len))
      return false;
    return signature.size() == mac_len && CRYPTO_memcmp(mac, signature.data(), mac_len) == 0;
  }
};

jwt_verifier::jwt_verifier(const auth_settings& auth)
    : key_(std::make_unique<key>()), issuer_(auth.issuer), audience_(auth.audience) {
  // load_settings has checked that exactly one of the two is set.
  if (auth.jwt_public_key_file.empty()) {
    if (auth.jwt_secret.empty()) throw config_error("auth.jwt_secret: must not be empty");
    key_->secret = auth.jwt_secret;
    return;
  }
  std::unique_ptr<BIO, bio_free> file{BIO_new_file(auth.jwt_public_key_file.c_str(), "r")};
  if (!file)
    throw config_error("auth.jwt_public_key_file: cannot read " + auth.jwt_public_key_file);
  key_->rsa_key.reset(PEM_read_bio_PUBKEY(file.get(), nullptr, nullptr, nullptr));
  if (!key_->rsa_key || EVP_PKEY_base_id(key_->rsa_key.get()) != EVP_PKEY_RSA)
    throw config_error("auth.jwt_public_key_file: " + auth.jwt_public_key_file +
                       " is not a PEM RSA public key (-----BEGIN PUBLIC KEY-----)");
}

jwt_verifier::~jwt_verifier() = default;

const char* jwt_verifier::algorithm() const { return key_->rsa_key ? "RS256" : "HS256"; }

outcome<std::string> jwt_verifier::verify(std::string_view token,
                                          std::chrono::system_clock::time_point now) const {
  if (token.size() > max_token_bytes) return refused("the bearer token is too long");
  auto first_dot = token.find('.');
  auto second_dot =
      first_dot == std::string_view::npos ? first_dot : token.find('.', first_dot + 1);
  if (second_dot == std::string_view::npos ||
      token.find('.', second_dot + 1) != std::string_view::npos)
    return refused("the bearer token is not a JWT (three base64url segments)");
  auto header = decode_json_object(token.substr(0, first_dot));
  auto claims = decode_json_object(token.substr(first_dot + 1, second_dot - first_dot - 1));
  auto signature = decode_base64url(token.substr(second_dot + 1));
  if (!header || !claims || !signature)
    return refused("the bearer token is not a JWT (three base64url segments)");

  auto alg = header->find("alg");
  if (alg == header->end() || !alg->is_string() || alg->get<std::string>() != algorithm())
    return refused(std::string("the bearer token must be signed with ") + algorithm());
  // Extensions the signer marked critical are ones this verifier does not know.
  if (header->contains("crit")) return refused("the bearer token has critical header extensions");
  if (!key_->signature_matches(token.substr(0, second_dot), *signature))
    return refused("the bearer token's signature does not verify");

  auto exp = numeric_date(*claims, "exp");
  if (!exp) return exp.error();
  auto nbf = numeric_date(*claims, "nbf");
  if (!nbf) return nbf.error();
  double seconds = std::chrono::duration<double>(now.time_since_epoch()).count();
  double slack = static_cast<double>(leeway.count());
  if (*exp && seconds > **exp + slack) return refused("the bearer token has expired");
  if (*nbf && seconds + slack < **nbf) return refused("the bearer token is not valid yet");

  if (!issuer_.empty()) {
    auto iss = claims->find("iss");
    if (iss == claims->end() || !iss->is_string() || iss->get<std::string>() != issuer_)
      return refused("the bearer token was not issued by " + issuer_);
  }
  if (!audience_.empty()) {
    auto aud = claims->find("aud");
    bool ours = false;
    if (aud != claims->end() && aud->is_string()) ours = aud->get<std::string>() == audience_;
    if (aud != claims->end() && aud->is_array())
      for (auto& a : *aud) ours = ours || (a.is_string() && a.get<std::string>() == audience_);
    if (!ours) return refused("the bearer token is not meant for " + audience_);
  }
  auto sub = claims->find("sub");
  if (sub == claims->end() || !sub->is_string() || !is_acceptable_subject(sub->get<std::string>()))
    return refused("the bearer token has no usable sub claim");
  return sub->get<std::string>();
}

}  // namespace parley
