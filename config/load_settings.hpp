#pragma once

#include "config/settings.hpp"

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace parley {

/// A configuration problem the operator must fix; `parley` exits with code 2.
struct config_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// What the command line asked for.
struct command_line {
  enum class command { serve, migrate, version, help };
  command cmd = command::serve;
  std::string help_text;  ///< set for command::help
  std::optional<std::string> config_file;
  std::optional<std::string> host;
  std::optional<std::uint16_t> port;
  std::optional<std::string> database_url;
};

/// Parses `parley serve|migrate [--config FILE] [--host H] [--port N]
/// [--database-url URL]` and `parley --version`. Throws config_error.
command_line parse_command_line(int argc, const char* const* argv);

/// Environment variables as the loader sees them.
using environment = std::map<std::string, std::string>;

/// The process environment over the `KEY=VALUE` lines of `dotenv_path` (if the
/// file exists): a variable set in the real environment wins over `.env`.
environment read_environment(const std::string& dotenv_path);

/// Parses the lines of a `.env` file. Throws config_error on a malformed line.
environment parse_dotenv(const std::string& text);

/// Defaults, then the TOML file, then `env`, then flags. Throws config_error.
settings load_settings(const command_line& cli, const environment& env);

/// Parses a TOML document (the file's contents) over `base`. Throws config_error,
/// also for a key that is not a setting.
void apply_toml(settings& base, const std::string& toml_text, const std::string& origin);

/// A setting a file may hold, as the file names it ("server.port"; the keys
/// of each [[providers]] and [[models]] table as "providers.timeout_ms"), and
/// the environment variables that override it.
struct setting_key {
  std::string key;
  std::vector<std::string> env;
};

/// Every setting, in the order the loader reads them; docs/configuration.md
/// is checked against this list.
std::vector<setting_key> setting_keys();

/// Accepts sqlite://REL.db, sqlite:///ABS.db, sqlite::memory:, postgresql://…,
/// postgres://…. Throws config_error for anything else, naming `key`.
database_url parse_database_url(const std::string& url, std::string_view key = "database.url");

/// `url` with the password of its user info replaced by "***", for messages.
std::string redacted_url(const std::string& url);

}  // namespace parley
