#include "config/load_settings.hpp"

#include <toml++/toml.h>
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

extern char** environ;

namespace parley {

namespace {

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return {};
  auto e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

template <class Int>
Int parse_int(const std::string& text, const std::string& what, Int lo, Int hi) {
  long long v = 0;
  std::size_t used = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    throw config_error(what + ": '" + text + "' is not a whole number");
  }
  if (used != text.size()) throw config_error(what + ": '" + text + "' is not a whole number");
  if (v < static_cast<long long>(lo) || v > static_cast<long long>(hi))
    throw config_error(what + ": " + text + " is out of range (" + std::to_string(lo) + " to " +
                       std::to_string(hi) + ")");
  return static_cast<Int>(v);
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ','))
    if (auto t = trim(item); !t.empty()) out.push_back(t);
  return out;
}

// --- TOML access with the key named in every error ---------------------------

/// Reads one table's settings. Every key asked for is remembered, so that
/// reject_unknown() can refuse the rest (a misspelt key would otherwise be
/// ignored in silence) and the settings a file may hold can be listed.
class toml_reader {
 public:
  /// `prefix` names the keys in messages ("providers[1]."), `listed_as` in
  /// `known` ("providers."), which collects every key asked for when given.
  toml_reader(const toml::table& table, std::string prefix, std::vector<std::string>* known,
              std::string listed_as)
      : table_(table),
        prefix_(std::move(prefix)),
        known_(known),
        listed_as_(std::move(listed_as)) {}
  toml_reader(const toml::table& table, const std::string& prefix, std::vector<std::string>* known)
      : toml_reader(table, prefix, known, prefix) {}

  template <class Int>
  void get_int(const char* key, Int& out, Int lo, Int hi) {
    auto node = find(key);
    if (!node) return;
    auto v = node->value_exact<int64_t>();
    if (!v) throw config_error(name(key) + ": expected an integer");
    out = parse_int<Int>(std::to_string(*v), name(key), lo, hi);
  }

  void get_string(const char* key, std::string& out) {
    auto node = find(key);
    if (!node) return;
    auto v = node->value_exact<std::string>();
    if (!v) throw config_error(name(key) + ": expected a string");
    out = *v;
  }

  void get_double(const char* key, double& out, double lo) {
    auto node = find(key);
    if (!node) return;
    auto v = node->value<double>();  // integers are accepted as well
    if (!v || *v < lo)
      throw config_error(name(key) + ": expected a number >= " + std::to_string(lo));
    out = *v;
  }

  void get_bool(const char* key, bool& out) {
    auto node = find(key);
    if (!node) return;
    auto v = node->value_exact<bool>();
    if (!v) throw config_error(name(key) + ": expected true or false");
    out = *v;
  }

  void get_strings(const char* key, std::vector<std::string>& out) {
    auto node = find(key);
    if (!node) return;
    auto arr = node->as_array();
    if (!arr) throw config_error(name(key) + ": expected an array of strings");
    out.clear();
    for (auto& item : *arr) {
      auto v = item.value_exact<std::string>();
      if (!v) throw config_error(name(key) + ": expected an array of strings");
      out.push_back(*v);
    }
  }

  /// Throws config_error naming a key of the table nothing asked for.
  void reject_unknown() const {
    for (auto& [key, node] : table_)
      if (!asked_.contains(std::string(key.str())))
        throw config_error(prefix_ + std::string(key.str()) +
                           ": not a setting (see docs/configuration.md)");
  }

 private:
  const toml::node* find(const char* key) {
    asked_.insert(key);
    if (known_) known_->push_back(listed_as_ + key);
    return table_.get(key);
  }
  std::string name(const char* key) const { return prefix_ + key; }

  const toml::table& table_;
  std::string prefix_;
  std::vector<std::string>* known_;
  std::string listed_as_;
  std::set<std::string> asked_;
};

const toml::table* sub_table(const toml::table& root, const char* key) {
  auto node = root.get(key);
  if (!node) return nullptr;
  if (!node->is_table()) throw config_error(std::string(key) + ": expected a table");
  return node->as_table();
}

/// Calls `fn` with a reader of each table of the array `key`, then refuses
/// what it did not read.
template <class Fn>
void for_each_table_in_array(const toml::table& root, const char* key,
                             std::vector<std::string>* known, Fn fn) {
  auto node = root.get(key);
  if (!node) return;
  auto arr = node->as_array();
  if (!arr)
    throw config_error(std::string(key) + ": expected an array of tables ([[" + key + "]])");
  std::size_t index = 0;
  for (auto& item : *arr) {
    auto tbl = item.as_table();
    if (!tbl)
      throw config_error(std::string(key) + ": expected an array of tables ([[" + key + "]])");
    toml_reader r(*tbl, std::string(key) + "[" + std::to_string(index++) + "].", known,
                  std::string(key) + ".");
    fn(r);
    r.reject_unknown();
  }
}

/// An environment variable that overrides a setting of the file.
struct env_variable {
  const char* name;
  const char* key;  ///< the setting, as the file names it
  void (*apply)(settings& s, const std::string& value);
};

/// Sets a text setting of a section to the variable's value as it is.
template <auto section, auto field>
void assign_text(settings& s, const std::string& value) {
  (s.*section).*field = value;
}

/// Every variable the loader reads, in the order it applies them (where two
/// name one setting, the later wins).
constexpr env_variable env_variables[] = {
    {"HOST", "server.host", assign_text<&settings::server, &server_settings::host>},
    {"PORT", "server.port",
     [](settings& s, const std::string& v) {
       s.server.port = parse_int<std::uint16_t>(v, "PORT", 0, 65535);
     }},
    {"PARLEY_THREADS", "server.threads",
     [](settings& s, const std::string& v) {
       s.server.threads = parse_int<unsigned>(v, "PARLEY_THREADS", 1, 256);
     }},
    {"PARLEY_CORS_ORIGINS", "server.cors_origins",
     [](settings& s, const std::string& v) { s.server.cors_origins = split_commas(v); }},
    {"DATABASE_URL", "database.url",
     [](settings& s, const std::string& v) { s.database.url = parse_database_url(v); }},
    {"DATABASE_READ_URL", "database.read_url",
     [](settings& s, const std::string& v) {
       s.database.read_url = parse_database_url(v, "database.read_url");
     }},
    {"PARLEY_AUTH_MODE", "auth.mode", assign_text<&settings::auth, &auth_settings::mode>},
    {"PARLEY_JWT_SECRET", "auth.jwt_secret",
     assign_text<&settings::auth, &auth_settings::jwt_secret>},
    {"PARLEY_JWT_PUBLIC_KEY_FILE", "auth.jwt_public_key_file",
     assign_text<&settings::auth, &auth_settings::jwt_public_key_file>},
    {"PARLEY_AUTH_ISSUER", "auth.issuer", assign_text<&settings::auth, &auth_settings::issuer>},
    {"PARLEY_JWT_ISSUER", "auth.issuer", assign_text<&settings::auth, &auth_settings::issuer>},
    {"PARLEY_AUTH_AUDIENCE", "auth.audience",
     assign_text<&settings::auth, &auth_settings::audience>},
    {"PARLEY_JWT_AUDIENCE", "auth.audience",
     assign_text<&settings::auth, &auth_settings::audience>},
    {"PARLEY_DEFAULT_MODEL", "defaults.model",
     [](settings& s, const std::string& v) { s.default_model = v; }},
    {"PARLEY_LOG_LEVEL", "log.level", assign_text<&settings::log, &log_settings::level>},
};

void apply_env(settings& s, const environment& env) {
  for (auto& variable : env_variables)
    if (auto i = env.find(variable.name); i != env.end()) variable.apply(s, i->second);
}

/// A provider and its one model, added by an environment shortcut.
struct shortcut {
  const char* key_env;
  const char* base_url_env;  ///< may override the base URL; nullptr for none
  provider_settings provider;
  model_settings model;
};

std::vector<shortcut> env_shortcuts() {
  auto make = [](const char* key_env, const char* base_url_env, const char* name, const char* kind,
                 const char* base_url, const char* model, std::uint32_t window,
                 std::uint32_t max_output, double in_price, double out_price) {
    shortcut s{key_env, base_url_env, {}, {}};
    s.provider.name = name;
    s.provider.kind = kind;
    s.provider.base_url = base_url;
    s.provider.api_key_env = key_env;
    s.model.id = model;
    s.model.provider = name;
    s.model.upstream = model;
    s.model.context_window = window;
    s.model.max_output_tokens = max_output;
    s.model.input_price_per_mtok = in_price;
    s.model.output_price_per_mtok = out_price;
    return s;
  };
  return {
      make("OPENAI_API_KEY", "OPENAI_BASE_URL", "openai", "openai", "", "gpt-4o-mini", 128000, 4096,
           0.15, 0.60),
      make("GROQ_API_KEY", nullptr, "groq", "openai", "https://api.groq.com/openai/v1",
           "llama-3.1-8b-instant", 131072, 4096, 0.05, 0.08),
      make("ANTHROPIC_API_KEY", nullptr, "anthropic", "anthropic", "", "claude-3-5-haiku-latest",
           200000, 4096, 0.80, 4.00),
  };
}

/// Without a config file, each provider key in the environment adds its
/// provider and model.
void apply_env_shortcuts(settings& s, const environment& env) {
  for (auto& sc : env_shortcuts()) {
    auto key = env.find(sc.key_env);
    if (key == env.end() || key->second.empty()) continue;
    if (sc.base_url_env)
      if (auto url = env.find(sc.base_url_env); url != env.end() && !url->second.empty())
        sc.provider.base_url = url->second;
    s.providers.push_back(sc.provider);
    s.models.push_back(sc.model);
  }
}

/// Reads each provider's key from the variable its api_key_env names.
void resolve_api_keys(settings& s, const environment& env) {
  for (auto& p : s.providers) {
    if (p.api_key_env.empty()) continue;
    auto key = env.find(p.api_key_env);
    if (key == env.end() || key->second.empty())
      throw config_error("providers: '" + p.name + "' reads its API key from " + p.api_key_env +
                         ", which is not set");
    p.api_key = key->second;
  }
}

void validate(const settings& s) {
  if (s.server.host.empty()) throw config_error("server.host: must not be empty");
  if (s.context.strategy != "truncate" && s.context.strategy != "summarize")
    throw config_error("context.strategy: '" + s.context.strategy +
                       "' is not one of truncate, summarize");
  if (s.context.summarize_at > 1)
    throw config_error("context.summarize_at: expected a share of the budget, at most 1");
  if (s.streams.on_disconnect != "continue" && s.streams.on_disconnect != "cancel")
    throw config_error("streams.on_disconnect: '" + s.streams.on_disconnect +
                       "' is not one of continue, cancel");
  if (s.auth.mode != "none" && s.auth.mode != "jwt")
    throw config_error("auth.mode: '" + s.auth.mode + "' is not one of none, jwt");
  if (s.auth.mode == "jwt" && s.auth.jwt_secret.empty() == s.auth.jwt_public_key_file.empty())
    throw config_error(
        "auth: jwt mode needs exactly one of auth.jwt_secret (HS256) or auth.jwt_public_key_file "
        "(RS256)");
  if (s.default_model.empty()) throw config_error("defaults.model: must not be empty");
  using backend = database_url::backend;
  if (s.database.read_url && (s.database.read_url->kind != backend::postgresql ||
                              s.database.url.kind != backend::postgresql))
    throw config_error(
        "database.read_url: a read replica is a PostgreSQL standby of database.url, which must be "
        "on PostgreSQL too");
  static const std::set<std::string> levels{"trace", "debug",    "info", "warn",
                                            "error", "critical", "off"};
  if (!levels.count(s.log.level))
    throw config_error("log.level: '" + s.log.level +
                       "' is not one of trace, debug, info, warn, error, critical, off");
}

}  // namespace

// --- command line -------------------------------------------------------------

command_line parse_command_line(int argc, const char* const* argv) {
  CLI::App app{"Parley, a conversation engine for LLM applications", "parley"};
  command_line out;
  bool version = false;
  app.add_flag("--version", version, "print the version and exit");
  app.require_subcommand(0, 1);

  auto add_common = [&](CLI::App* sub) {
    sub->add_option_function<std::string>(
        "--config", [&](const std::string& v) { out.config_file = v; }, "TOML configuration file");
    sub->add_option_function<std::string>(
        "--database-url", [&](const std::string& v) { out.database_url = v; }, "database URL");
  };
  auto serve = app.add_subcommand("serve", "run the HTTP server");
  add_common(serve);
  serve->add_option_function<std::string>(
      "--host", [&](const std::string& v) { out.host = v; }, "address to listen on");
  serve->add_option_function<std::string>(
      "--port",
      [&](const std::string& v) { out.port = parse_int<std::uint16_t>(v, "--port", 0, 65535); },
      "port to listen on (0 picks a free one)");
  auto migrate = app.add_subcommand("migrate", "apply the database schema and exit");
  add_common(migrate);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp&) {
    out.cmd = command_line::command::help;
    out.help_text = app.help();
    return out;
  } catch (const CLI::ParseError& e) {
    throw config_error(e.what());
  }
  if (version)
    out.cmd = command_line::command::version;
  else if (migrate->parsed())
    out.cmd = command_line::command::migrate;
  else if (serve->parsed())
    out.cmd = command_line::command::serve;
  else {
    out.cmd = command_line::command::help;
    out.help_text = app.help();
  }
  return out;
}

// --- environment --------------------------------------------------------------

environment parse_dotenv(const std::string& text) {
  environment out;
  std::stringstream in(text);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    auto t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    if (t.rfind("export ", 0) == 0) t = trim(t.substr(7));
    auto eq = t.find('=');
    if (eq == std::string::npos || eq == 0)
      throw config_error(".env line " + std::to_string(number) + ": expected KEY=VALUE");
    auto key = trim(t.substr(0, eq));
    auto value = trim(t.substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
        value.back() == value.front())
      value = value.substr(1, value.size() - 2);
    out[key] = value;
  }
  return out;
}

environment read_environment(const std::string& dotenv_path) {
  environment out;
  if (std::ifstream file{dotenv_path}) {
    std::stringstream buf;
    buf << file.rdbuf();
    out = parse_dotenv(buf.str());
  }
  for (char** e = environ; e && *e; ++e) {
    std::string entry = *e;
    auto eq = entry.find('=');
    if (eq != std::string::npos) out[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  return out;
}

// --- database URL -------------------------------------------------------------

std::string redacted_url(const std::string& url) {
  constexpr auto npos = std::string::npos;
  std::string out = url;
  if (auto scheme_end = out.find("://"); scheme_end != npos) {
    auto authority = scheme_end + 3;
    // The last @ before the query ends the user info, also when the password
    // holds an unencoded @ or /; redacting too much is the safe mistake.
    auto query = out.find('?', authority);
    auto at = out.rfind('@', query);
    auto colon = out.find(':', authority);
    if (at != npos && at >= authority && colon < at) out.replace(colon + 1, at - colon - 1, "***");
  }
  // libpq also takes it as a parameter: ?password=... or password=... .
  for (auto p = out.find("password="); p != npos; p = out.find("password=", p)) {
    p += 9;
    auto end = out.find_first_of("& ", p);
    out.replace(p, end == npos ? npos : end - p, "***");
    p += 3;
  }
  return out;
}

database_url parse_database_url(const std::string& url, std::string_view key) {
  database_url out;
  out.original = url;
  if (url == "sqlite::memory:") {
    out.target = ":memory:";
    return out;
  }
  if (url.rfind("sqlite://", 0) == 0) {
    auto rest = url.substr(9);  // "/abs/path.db" or "rel/path.db"
    if (rest.empty() || rest == "/")
      throw config_error(std::string(key) + ": '" + url + "' names no file");
    out.target = rest;
    return out;
  }
  if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0) {
    out.kind = database_url::backend::postgresql;
    out.target = url;  // libpq takes the URI as it is
    return out;
  }
  throw config_error(std::string(key) + ": unknown scheme in '" + redacted_url(url) +
                     "' (expected sqlite://, sqlite::memory:, postgresql:// or postgres://)");
}

// --- TOML ---------------------------------------------------------------------

namespace {

/// Reads `root` over `s`, refusing any key that is not a setting; adds each
/// key it asks for to `known` when given.
void read_toml(settings& s, const toml::table& root, std::vector<std::string>* known) {
  // The tables read, so that any other top-level name is refused at the end.
  std::set<std::string> tables{"providers", "models"};
  // A table that is absent reads as empty, so that every key is asked for.
  const toml::table none;
  auto section = [&](const char* name, auto read) {
    tables.insert(name);
    auto t = sub_table(root, name);
    toml_reader r(t ? *t : none, std::string(name) + ".", known);
    read(r);
    r.reject_unknown();
  };
  section("server", [&](toml_reader& r) {
    r.get_string("host", s.server.host);
    r.get_int<std::uint16_t>("port", s.server.port, 0, 65535);
    r.get_int<unsigned>("threads", s.server.threads, 1, 256);
    r.get_int<std::uint64_t>("max_body_bytes", s.server.max_body_bytes, 1, 1ull << 30);
    r.get_strings("cors_origins", s.server.cors_origins);
    r.get_int<unsigned>("shutdown_grace_ms", s.server.shutdown_grace_ms, 0, 600000);
    r.get_int<unsigned>("drain_delay_ms", s.server.drain_delay_ms, 0, 600000);
    r.get_int<unsigned>("sse_keepalive_ms", s.server.sse_keepalive_ms, 100, 3600000);
    r.get_int<unsigned>("ws_ping_interval_ms", s.server.ws_ping_interval_ms, 100, 3600000);
    r.get_int<std::uint64_t>("stream_queue_bytes", s.server.stream_queue_bytes, 1024, 1ull << 30);
    r.get_int<unsigned>("read_timeout_ms", s.server.read_timeout_ms, 100, 3600000);
    r.get_int<unsigned>("max_connections", s.server.max_connections, 1, 10000000);
    r.get_int<unsigned>("max_header_bytes", s.server.max_header_bytes, 256, 1u << 20);
    r.get_int<unsigned>("max_header_count", s.server.max_header_count, 8, 10000);
    r.get_bool("playground", s.server.playground);
  });
  section("database", [&](toml_reader& r) {
    std::string url;
    r.get_string("url", url);
    if (!url.empty()) s.database.url = parse_database_url(url);
    std::string read_url;
    r.get_string("read_url", read_url);
    if (!read_url.empty()) s.database.read_url = parse_database_url(read_url, "database.read_url");
    r.get_int<unsigned>("batch_max_requests", s.database.batch_max_requests, 1, 100000);
    r.get_int<unsigned>("batch_delay_ms", s.database.batch_delay_ms, 0, 10000);
    r.get_int<unsigned>("read_pool_size", s.database.read_pool_size, 1, 64);
    r.get_int<unsigned>("timeout_ms", s.database.timeout_ms, 100, 600000);
  });
  section("auth", [&](toml_reader& r) {
    r.get_string("mode", s.auth.mode);
    r.get_string("jwt_secret", s.auth.jwt_secret);
    r.get_string("jwt_public_key_file", s.auth.jwt_public_key_file);
    r.get_string("issuer", s.auth.issuer);
    r.get_string("audience", s.auth.audience);
  });
  section("limits", [&](toml_reader& r) {
    r.get_int<std::uint32_t>("max_message_chars", s.limits.max_message_chars, 1, 10000000);
    r.get_int<std::uint32_t>("conversation_queue", s.limits.conversation_queue, 1, 100000);
    r.get_int<std::uint32_t>("requests_per_minute", s.limits.requests_per_minute, 0, 100000000);
    r.get_int<std::uint32_t>("concurrent_generations", s.limits.concurrent_generations, 0, 1000000);
    r.get_int<std::uint64_t>("tokens_per_day", s.limits.tokens_per_day, 0,
                             std::numeric_limits<std::int64_t>::max());
    r.get_int<std::uint64_t>("max_import_bytes", s.limits.max_import_bytes, 1, 1ull << 32);
  });
  section("actors", [&](toml_reader& r) {
    r.get_int<unsigned>("idle_timeout_s", s.actors.idle_timeout_s, 1, 86400 * 7);
    r.get_int<std::uint64_t>("max_live", s.actors.max_live, 1, 100000000);
    r.get_int<unsigned>("generation_timeout_ms", s.actors.generation_timeout_ms, 100, 3600000);
  });
  section("streams", [&](toml_reader& r) {
    r.get_string("on_disconnect", s.streams.on_disconnect);
    r.get_int<unsigned>("retention_s", s.streams.retention_s, 0, 86400 * 7);
  });
  section("context", [&](toml_reader& r) {
    r.get_string("strategy", s.context.strategy);
    r.get_string("summary_model", s.context.summary_model);
    r.get_double("summarize_at", s.context.summarize_at, 0.01);
    r.get_int<std::uint32_t>("keep_recent_tokens", s.context.keep_recent_tokens, 0, 100000000);
  });
  section("log", [&](toml_reader& r) {
    r.get_string("level", s.log.level);
    r.get_bool("content", s.log.content);
  });
  section("defaults", [&](toml_reader& r) { r.get_string("model", s.default_model); });
  for_each_table_in_array(root, "providers", known, [&](toml_reader& r) {
    provider_settings p;
    r.get_string("name", p.name);
    r.get_string("kind", p.kind);
    r.get_string("base_url", p.base_url);
    r.get_string("api_key_env", p.api_key_env);
    r.get_int<unsigned>("timeout_ms", p.timeout_ms, 1, 3600000);
    r.get_int<unsigned>("connect_timeout_ms", p.connect_timeout_ms, 1, 600000);
    r.get_int<unsigned>("first_byte_timeout_ms", p.first_byte_timeout_ms, 0, 3600000);
    r.get_int<unsigned>("stall_timeout_ms", p.stall_timeout_ms, 0, 3600000);
    r.get_int<unsigned>("max_in_flight", p.max_in_flight, 1, 100000);
    r.get_int<unsigned>("max_retries", p.max_retries, 0, 10);
    r.get_int<unsigned>("ttft_ms", p.ttft_ms, 0, 600000);
    r.get_int<unsigned>("itl_ms", p.itl_ms, 0, 60000);
    if (p.name.empty() || p.kind.empty())
      throw config_error("providers: every [[providers]] needs a name and a kind");
    s.providers.push_back(std::move(p));
  });
  for_each_table_in_array(root, "models", known, [&](toml_reader& r) {
    model_settings m;
    r.get_string("id", m.id);
    r.get_string("provider", m.provider);
    r.get_string("upstream", m.upstream);
    r.get_int<std::uint32_t>("context_window", m.context_window, 16, 100000000);
    r.get_int<std::uint32_t>("max_output_tokens", m.max_output_tokens, 1, 100000000);
    r.get_double("input_price_per_mtok", m.input_price_per_mtok, 0);
    r.get_double("output_price_per_mtok", m.output_price_per_mtok, 0);
    r.get_string("fallback", m.fallback);
    if (m.id.empty() || m.provider.empty())
      throw config_error("models: every [[models]] needs an id and a provider");
    if (m.max_output_tokens >= m.context_window)
      throw config_error("models: '" + m.id + "' has max_output_tokens >= context_window");
    s.models.push_back(std::move(m));
  });
  for (auto& [key, node] : root)
    if (!tables.contains(std::string(key.str())))
      throw config_error(std::string(key.str()) + ": not a setting (see docs/configuration.md)");
}

}  // namespace

std::vector<setting_key> setting_keys() {
  // One provider and one model, so that their tables are read too.
  auto sample = toml::parse(
      "[[providers]]\nname = \"p\"\nkind = \"builtin\"\n"
      "[[models]]\nid = \"m\"\nprovider = \"p\"\n");
  std::vector<std::string> keys;
  settings ignored;
  read_toml(ignored, sample, &keys);
  std::vector<setting_key> out;
  for (auto& key : keys) {
    setting_key k{key, {}};
    for (auto& variable : env_variables)
      if (variable.key == key) k.env.emplace_back(variable.name);
    out.push_back(std::move(k));
  }
  return out;
}

void apply_toml(settings& s, const std::string& toml_text, const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(toml_text, origin);
  } catch (const toml::parse_error& e) {
    std::ostringstream msg;
    msg << origin << ":" << e.source().begin.line << ":" << e.source().begin.column << ": "
        << e.description();
    throw config_error(msg.str());
  }
  read_toml(s, root, nullptr);
}

settings load_settings(const command_line& cli, const environment& env) {
  settings s;
  s.database.url = parse_database_url("sqlite://./parley.db");
  if (cli.config_file) {
    std::ifstream file{*cli.config_file};
    if (!file) throw config_error("cannot read config file '" + *cli.config_file + "'");
    std::stringstream buf;
    buf << file.rdbuf();
    apply_toml(s, buf.str(), *cli.config_file);
    s.source = *cli.config_file;
  }
  apply_env(s, env);
  if (!cli.config_file) apply_env_shortcuts(s, env);
  resolve_api_keys(s, env);
  if (cli.host) s.server.host = *cli.host;
  if (cli.port) s.server.port = *cli.port;
  if (cli.database_url) s.database.url = parse_database_url(*cli.database_url);
  if (s.server.threads == 0) s.server.threads = std::max(1u, std::thread::hardware_concurrency());
  validate(s);
  return s;
}

}  // namespace parley
