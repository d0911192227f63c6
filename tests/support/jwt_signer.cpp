#include "support/jwt_signer.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <stdexcept>

namespace parley::testing {

std::string base64url(std::string_view bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  for (unsigned char c : bytes) {
    bits = (bits << 8) | c;
    count += 8;
    while (count >= 6) {
      count -= 6;
      out.push_back(alphabet[(bits >> count) & 63]);
    }
  }
  if (count > 0) out.push_back(alphabet[(bits << (6 - count)) & 63]);
  return out;
}

namespace {

std::string signing_input(const nlohmann::json& header, const nlohmann::json& claims) {
  return base64url(header.dump()) + "." + base64url(claims.dump());
}

}  // namespace

std::string jwt_hs256(const nlohmann::json& claims, const std::string& secret,
                      const nlohmann::json& header) {
  return jwt_hs256_signed(signing_input(header, claims), secret);
}

std::string jwt_hs256_signed(const std::string& input, const std::string& secret) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
  return input + "." + base64url(std::string_view(reinterpret_cast<char*>(mac), len));
}

struct rsa_signer::key {
  EVP_PKEY* pkey = nullptr;
  ~key() { EVP_PKEY_free(pkey); }
};

rsa_signer::rsa_signer() : key_(std::make_unique<key>()) {
  key_->pkey = EVP_RSA_gen(2048);
  if (!key_->pkey) throw std::runtime_error("rsa_signer: cannot generate a key");
}

rsa_signer::~rsa_signer() = default;

std::string rsa_signer::public_pem() const {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key_->pkey);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<std::size_t>(len));
  BIO_free(bio);
  return pem;
}

std::string rsa_signer::sign(const nlohmann::json& claims, const nlohmann::json& header) const {
  auto input = signing_input(header, claims);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  std::size_t len = 0;
  std::string signature;
  if (EVP_DigestSignInit(ctx, nullptr, EVP_sha256(), nullptr, key_->pkey) == 1 &&
      EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()),
                     input.size()) == 1) {
    signature.resize(len);
    EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(signature.data()), &len,
                   reinterpret_cast<const unsigned char*>(input.data()), input.size());
    signature.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  if (signature.empty()) throw std::runtime_error("rsa_signer: signing failed");
  return input + "." + base64url(signature);
}

}  // namespace parley::testing
