// libFuzzer target: bearer tokens through the JWT verifier. The input is
// tried as a token, and also as a header and claims (split at the first NUL)
// that get a valid HS256 signature, so the claim checks are reached too.

#include "http/jwt_verifier.hpp"
#include "support/jwt_signer.hpp"

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace parley;
  static const std::string secret = "fuzzing-secret-of-thirty-two-bytes!!";
  static const jwt_verifier verifier([] {
    auth_settings a;
    a.mode = "jwt";
    a.jwt_secret = secret;
    a.issuer = "iss";
    a.audience = "aud";
    return a;
  }());
  std::string input(reinterpret_cast<const char*>(data), size);
  auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'800'000'000));
  (void)verifier.verify(input, now);

  auto nul = input.find('\0');
  if (nul == std::string::npos) return 0;
  auto header = input.substr(0, nul), claims = input.substr(nul + 1);
  auto signed_part = testing::base64url(header) + "." + testing::base64url(claims);
  auto token = testing::jwt_hs256_signed(signed_part, secret);
  (void)verifier.verify(token, now);
  return 0;
}
