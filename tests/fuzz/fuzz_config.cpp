// libFuzzer target: a configuration file, a .env file and a database URL as
// the loader reads them. config_error is the only failure allowed.

#include "config/load_settings.hpp"
#include "providers/model_registry.hpp"

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace parley;
  std::string text(reinterpret_cast<const char*>(data), size);
  try {
    settings s;
    apply_toml(s, text, "fuzz.toml");
    (void)model_registry::build(s);
  } catch (const config_error&) {
  }
  try {
    (void)parse_dotenv(text);
  } catch (const config_error&) {
  }
  try {
    (void)parse_database_url(text);
  } catch (const config_error&) {
  }
  return 0;
}
