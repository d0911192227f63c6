#define BOOST_TEST_MODULE config
#include <boost/test/unit_test.hpp>

#include "config/load_settings.hpp"

#include <cstdio>
#include <fstream>

using namespace parley;

namespace {

command_line cli_of(std::vector<const char*> args) {
  args.insert(args.begin(), "parley");
  return parse_command_line(static_cast<int>(args.size()), args.data());
}

struct config_file {
  explicit config_file(const std::string& text) {
    char name[] = "/tmp/parley-config-XXXXXX";
    int fd = mkstemp(name);
    close(fd);
    path = name;
    std::ofstream(path) << text;
  }
  ~config_file() { std::remove(path.c_str()); }
  std::string path;
};

/// What apply_toml says of `toml`; empty when it takes it.
std::string error_of(const std::string& toml) {
  try {
    settings s;
    apply_toml(s, toml, "test.toml");
  } catch (const config_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

BOOST_AUTO_TEST_CASE(defaults_match_the_contract) {
  auto s = load_settings(cli_of({"serve"}), {});
  BOOST_TEST(s.server.host == "127.0.0.1");
  BOOST_TEST(s.server.port == 8000);
  BOOST_TEST(s.server.max_body_bytes == 1048576u);
  BOOST_TEST(s.server.threads >= 1u);
  BOOST_TEST(s.server.playground);
  BOOST_TEST(s.database.url.original == "sqlite://./parley.db");
  BOOST_TEST(s.auth.mode == "none");
  BOOST_TEST(s.limits.max_message_chars == 32768u);
  BOOST_TEST(s.limits.conversation_queue == 16u);
  BOOST_TEST(s.limits.requests_per_minute == 0u);
  BOOST_TEST(s.limits.tokens_per_day == 0u);
  BOOST_TEST(s.default_model == "echo");
  BOOST_TEST(s.streams.on_disconnect == "continue");
  BOOST_TEST(s.streams.retention_s == 600u);
  BOOST_TEST(s.context.strategy == "truncate");
  BOOST_TEST(s.context.summary_model.empty());
  BOOST_TEST(s.context.summarize_at == 0.8);
  BOOST_TEST(s.context.keep_recent_tokens == 2000u);
}

BOOST_AUTO_TEST_CASE(context_settings_are_read_and_checked) {
  config_file good(
      "[context]\nstrategy = \"summarize\"\nsummary_model = \"echo\"\nsummarize_at = 0.5\n"
      "keep_recent_tokens = 100\n");
  auto s = load_settings(cli_of({"serve", "--config", good.path.c_str()}), {});
  BOOST_TEST(s.context.strategy == "summarize");
  BOOST_TEST(s.context.summary_model == "echo");
  BOOST_TEST(s.context.summarize_at == 0.5);
  BOOST_TEST(s.context.keep_recent_tokens == 100u);
  for (auto bad : {"[context]\nstrategy = \"forget\"\n", "[context]\nsummarize_at = 1.5\n"}) {
    config_file file(bad);
    try {
      load_settings(cli_of({"serve", "--config", file.path.c_str()}), {});
      BOOST_FAIL("took " << bad);
    } catch (const config_error& e) {
      BOOST_TEST(std::string(e.what()).find("context.") != std::string::npos);
    }
  }
  BOOST_TEST(error_of("[context]\nsummarize_at = 0\n").find("context.summarize_at") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(stream_settings_are_read_and_checked) {
  config_file cancel("[streams]\non_disconnect = \"cancel\"\nretention_s = 30\n");
  auto s = load_settings(cli_of({"serve", "--config", cancel.path.c_str()}), {});
  BOOST_TEST(s.streams.on_disconnect == "cancel");
  BOOST_TEST(s.streams.retention_s == 30u);
  config_file wrong("[streams]\non_disconnect = \"explode\"\n");
  try {
    load_settings(cli_of({"serve", "--config", wrong.path.c_str()}), {});
    BOOST_FAIL("an unknown on_disconnect was taken");
  } catch (const config_error& e) {
    BOOST_TEST(std::string(e.what()).find("streams.on_disconnect") != std::string::npos);
  }
  BOOST_TEST(error_of("[streams]\nretention_s = -5\n").find("streams.retention_s") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_playground_can_be_turned_off) {
  config_file off("[server]\nplayground = false\n");
  BOOST_TEST(!load_settings(cli_of({"serve", "--config", off.path.c_str()}), {}).server.playground);
  BOOST_TEST(error_of("[server]\nplayground = \"no\"\n").find("server.playground") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_drain_delay_is_read_and_bounded) {
  BOOST_TEST(load_settings(cli_of({"serve"}), {}).server.drain_delay_ms == 0u);
  config_file five("[server]\ndrain_delay_ms = 5000\n");
  BOOST_TEST(
      load_settings(cli_of({"serve", "--config", five.path.c_str()}), {}).server.drain_delay_ms ==
      5000u);
  BOOST_TEST(error_of("[server]\ndrain_delay_ms = -1\n").find("server.drain_delay_ms") !=
             std::string::npos);
  BOOST_TEST(error_of("[server]\ndrain_delay_ms = 600001\n").find("server.drain_delay_ms") !=
             std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_read_replica_is_a_postgresql_standby_of_a_postgresql_primary) {
  BOOST_TEST(!load_settings(cli_of({"serve"}), {}).database.read_url);
  config_file both(
      "[database]\nurl = \"postgresql://p@primary/parley\"\n"
      "read_url = \"postgresql://p@replica/parley\"\n");
  auto s = load_settings(cli_of({"serve", "--config", both.path.c_str()}), {});
  BOOST_REQUIRE(s.database.read_url);
  BOOST_TEST(s.database.read_url->target == "postgresql://p@replica/parley");
  auto from_env =
      load_settings(cli_of({"serve", "--database-url", "postgresql://p@primary/parley"}),
                    {{"DATABASE_READ_URL", "postgres://p@replica/parley"}});
  BOOST_TEST((from_env.database.read_url->kind == database_url::backend::postgresql));
  // On SQLite, of SQLite, or not a URL at all: refused, naming the key.
  auto refusal = [](const std::string& toml) -> std::string {
    config_file file(toml);
    try {
      load_settings(cli_of({"serve", "--config", file.path.c_str()}), {});
    } catch (const config_error& e) {
      return e.what();
    }
    return "";
  };
  BOOST_TEST(refusal("[database]\nread_url = \"postgresql://p@replica/parley\"\n")
                 .find("database.read_url: a read replica") != std::string::npos);
  BOOST_TEST(refusal("[database]\nurl = \"postgresql://p@primary/parley\"\n"
                     "read_url = \"sqlite://replica.db\"\n")
                 .find("database.read_url: a read replica") != std::string::npos);
  BOOST_TEST(error_of("[database]\nread_url = \"mysql://replica\"\n")
                 .find("database.read_url: unknown scheme") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(file_then_environment_then_flags) {
  config_file file(R"(
[server]
host = "0.0.0.0"
port = 9000
threads = 3
[limits]
max_message_chars = 100
[database]
url = "sqlite:///tmp/from-file.db"
)");
  // File alone.
  auto s = load_settings(cli_of({"serve", "--config", file.path.c_str()}), {});
  BOOST_TEST(s.server.host == "0.0.0.0");
  BOOST_TEST(s.server.port == 9000);
  BOOST_TEST(s.server.threads == 3u);
  BOOST_TEST(s.limits.max_message_chars == 100u);
  BOOST_TEST(s.database.url.target == "/tmp/from-file.db");
  // The environment overrides the file.
  environment env{{"PORT", "9100"}, {"DATABASE_URL", "sqlite::memory:"}, {"PARLEY_THREADS", "2"}};
  s = load_settings(cli_of({"serve", "--config", file.path.c_str()}), env);
  BOOST_TEST(s.server.port == 9100);
  BOOST_TEST(s.server.threads == 2u);
  BOOST_TEST(s.database.url.target == ":memory:");
  BOOST_TEST(s.server.host == "0.0.0.0");
  // Flags override both.
  s = load_settings(cli_of({"serve", "--config", file.path.c_str(), "--port", "9200", "--host",
                            "localhost", "--database-url", "postgresql://u:p@h:5/db"}),
                    env);
  BOOST_TEST(s.server.port == 9200);
  BOOST_TEST(s.server.host == "localhost");
  BOOST_TEST((s.database.url.kind == database_url::backend::postgresql));
}

BOOST_AUTO_TEST_CASE(dotenv_lines_and_real_environment_wins) {
  auto env = parse_dotenv(
      "# comment\nPORT=1234\nexport HOST = \"10.0.0.1\"\n\nPARLEY_DEFAULT_MODEL='echo'\n");
  BOOST_TEST(env["PORT"] == "1234");
  BOOST_TEST(env["HOST"] == "10.0.0.1");
  BOOST_TEST(env["PARLEY_DEFAULT_MODEL"] == "echo");
  BOOST_CHECK_THROW(parse_dotenv("JUST_A_WORD\n"), config_error);

  config_file dotenv("PARLEY_TEST_ONLY_IN_DOTENV=from-file\nPATH=overridden\n");
  auto merged = read_environment(dotenv.path);
  BOOST_TEST(merged["PARLEY_TEST_ONLY_IN_DOTENV"] == "from-file");
  BOOST_TEST(merged["PATH"] != "overridden");
}

BOOST_AUTO_TEST_CASE(database_urls) {
  BOOST_TEST(parse_database_url("sqlite://./parley.db").target == "./parley.db");
  BOOST_TEST(parse_database_url("sqlite://data/x.db").target == "data/x.db");
  BOOST_TEST(parse_database_url("sqlite:///var/lib/x.db").target == "/var/lib/x.db");
  BOOST_TEST(parse_database_url("sqlite::memory:").target == ":memory:");
  BOOST_TEST((parse_database_url("postgres://a@b/c").kind == database_url::backend::postgresql));
  BOOST_CHECK_THROW(parse_database_url("mysql://a@b/c"), config_error);
  BOOST_CHECK_THROW(parse_database_url("sqlite://"), config_error);
  BOOST_CHECK_THROW(parse_database_url(""), config_error);
}

BOOST_AUTO_TEST_CASE(bad_values_are_named) {
  BOOST_TEST(error_of("[server]\nport = 70000\n").find("server.port") != std::string::npos);
  BOOST_TEST(error_of("[server]\nport = \"80\"\n").find("server.port") != std::string::npos);
  BOOST_TEST(error_of("[limits]\nmax_message_chars = -1\n").find("limits.max_message_chars") !=
             std::string::npos);
  BOOST_TEST(error_of("[database]\nurl = \"ftp://x\"\n").find("unknown scheme") !=
             std::string::npos);
  BOOST_TEST(error_of("this is = = not toml").find("test.toml:1") != std::string::npos);
  BOOST_TEST(error_of("[[models]]\nid = \"m\"\n").find("provider") != std::string::npos);
  BOOST_TEST(error_of("[[models]]\nid = \"m\"\nprovider = \"builtin\"\ncontext_window = 100\n"
                      "max_output_tokens = 200\n")
                 .find("max_output_tokens") != std::string::npos);
  BOOST_CHECK_THROW(load_settings(cli_of({"serve"}), {{"PORT", "eighty"}}), config_error);
  BOOST_CHECK_THROW(load_settings(cli_of({"serve"}), {{"PARLEY_AUTH_MODE", "magic"}}),
                    config_error);
  BOOST_CHECK_THROW(cli_of({"serve", "--port", "-1"}), config_error);
  BOOST_CHECK_THROW(cli_of({"serve", "--no-such-flag"}), config_error);
}

BOOST_AUTO_TEST_CASE(a_key_that_is_not_a_setting_is_refused_by_name) {
  BOOST_TEST(error_of("[server]\nprot = 80\n") ==
             "server.prot: not a setting (see docs/configuration.md)");
  BOOST_TEST(error_of("[serve]\nport = 80\n") ==
             "serve: not a setting (see docs/configuration.md)");
  BOOST_TEST(error_of("port = 80\n") == "port: not a setting (see docs/configuration.md)");
  BOOST_TEST(error_of("[[providers]]\nname = \"a\"\nkind = \"builtin\"\n[[providers]]\n"
                      "name = \"b\"\nkind = \"builtin\"\ntimeout = 5\n") ==
             "providers[1].timeout: not a setting (see docs/configuration.md)");
  BOOST_TEST(error_of("[[models]]\nid = \"m\"\nprovider = \"builtin\"\nwindow = 5\n") ==
             "models[0].window: not a setting (see docs/configuration.md)");
}

BOOST_AUTO_TEST_CASE(log_settings_from_file_and_environment) {
  settings defaults;
  BOOST_TEST(defaults.log.level == "info");
  BOOST_TEST(!defaults.log.content);
  config_file f("[log]\nlevel = \"debug\"\ncontent = true\n");
  auto from_file = load_settings(cli_of({"serve", "--config", f.path.c_str()}), {});
  BOOST_TEST(from_file.log.level == "debug");
  BOOST_TEST(from_file.log.content);
  auto from_env =
      load_settings(cli_of({"serve", "--config", f.path.c_str()}), {{"PARLEY_LOG_LEVEL", "off"}});
  BOOST_TEST(from_env.log.level == "off");
  auto error_of = [](const std::string& toml, environment env = {}) -> std::string {
    config_file bad(toml);
    try {
      load_settings(cli_of({"serve", "--config", bad.path.c_str()}), env);
    } catch (const config_error& e) {
      return e.what();
    }
    return "";
  };
  BOOST_TEST(error_of("[log]\ncontent = \"yes\"\n").find("log.content") != std::string::npos);
  BOOST_TEST(error_of("[log]\nlevel = 3\n").find("log.level") != std::string::npos);
  BOOST_TEST(error_of("[log]\nlevel = \"loud\"\n").find("log.level") != std::string::npos);
  BOOST_TEST(error_of("", {{"PARLEY_LOG_LEVEL", "INFO"}}).find("log.level") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(providers_and_models_tables) {
  settings s;
  apply_toml(s, R"(
[[providers]]
name = "slow"
kind = "builtin"
ttft_ms = 300
itl_ms = 20

[[models]]
id = "fast"
provider = "slow"
upstream = "echo"
context_window = 4096
max_output_tokens = 256
input_price_per_mtok = 0.05
output_price_per_mtok = 1
fallback = "echo"
)",
             "t.toml");
  BOOST_REQUIRE(s.providers.size() == 1u);
  BOOST_TEST(s.providers[0].ttft_ms == 300u);
  BOOST_TEST(s.providers[0].itl_ms == 20u);
  BOOST_REQUIRE(s.models.size() == 1u);
  BOOST_TEST(s.models[0].context_window == 4096u);
  BOOST_TEST(s.models[0].output_price_per_mtok == 1.0);
  BOOST_TEST(s.models[0].fallback == "echo");
}

BOOST_AUTO_TEST_CASE(command_line_commands) {
  BOOST_TEST((cli_of({"--version"}).cmd == command_line::command::version));
  BOOST_TEST((cli_of({"migrate"}).cmd == command_line::command::migrate));
  BOOST_TEST((cli_of({"serve"}).cmd == command_line::command::serve));
  BOOST_TEST((cli_of({}).cmd == command_line::command::help));
}

BOOST_AUTO_TEST_CASE(provider_keys_come_from_the_named_variable) {
  config_file f(R"(
[[providers]]
name = "groq"
kind = "openai"
base_url = "https://api.groq.com/openai/v1"
api_key_env = "MY_GROQ_KEY"
timeout_ms = 30000
connect_timeout_ms = 1500
stall_timeout_ms = 4000
max_in_flight = 64
max_retries = 4

[[providers]]
name = "local"
kind = "openai"
base_url = "http://localhost:11434/v1"
)");
  auto s = load_settings(cli_of({"serve", "--config", f.path.c_str()}),
                         {{"MY_GROQ_KEY", "gsk-secret"}, {"OPENAI_API_KEY", "sk-ignored"}});
  BOOST_REQUIRE(s.providers.size() == 2u);  // no shortcut with a config file
  BOOST_TEST(s.providers[0].api_key == "gsk-secret");
  BOOST_TEST(s.providers[0].connect_timeout_ms == 1500u);
  BOOST_TEST(s.providers[0].stall_timeout_ms == 4000u);
  BOOST_TEST(s.providers[0].max_in_flight == 64u);
  BOOST_TEST(s.providers[0].max_retries == 4u);
  BOOST_TEST(s.providers[1].api_key.empty());  // a local server needs none

  try {
    load_settings(cli_of({"serve", "--config", f.path.c_str()}), {});
    BOOST_FAIL("a missing key must stop the start");
  } catch (const config_error& e) {
    std::string what = e.what();
    BOOST_TEST(what.find("MY_GROQ_KEY") != std::string::npos);
    BOOST_TEST(what.find("groq") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(environment_shortcuts_add_providers_and_models) {
  auto none = load_settings(cli_of({"serve"}), {});
  BOOST_TEST(none.providers.empty());
  auto s = load_settings(cli_of({"serve"}), {{"OPENAI_API_KEY", "sk-1"},
                                             {"OPENAI_BASE_URL", "http://127.0.0.1:9/v1"},
                                             {"GROQ_API_KEY", "gsk-2"},
                                             {"ANTHROPIC_API_KEY", "sk-ant-3"}});
  BOOST_REQUIRE(s.providers.size() == 3u);
  BOOST_REQUIRE(s.models.size() == 3u);
  BOOST_TEST(s.providers[0].name == "openai");
  BOOST_TEST(s.providers[0].base_url == "http://127.0.0.1:9/v1");
  BOOST_TEST(s.providers[0].api_key == "sk-1");
  BOOST_TEST(s.models[0].id == "gpt-4o-mini");
  BOOST_TEST(s.providers[1].kind == "openai");
  BOOST_TEST(s.providers[1].base_url == "https://api.groq.com/openai/v1");
  BOOST_TEST(s.models[1].provider == "groq");
  BOOST_TEST(s.providers[2].kind == "anthropic");
  BOOST_TEST(s.providers[2].api_key == "sk-ant-3");
  BOOST_TEST(s.models[2].provider == "anthropic");
  BOOST_TEST(s.default_model == "echo");  // a key does not change the default
}

BOOST_AUTO_TEST_CASE(a_database_password_is_redacted_for_messages) {
  BOOST_TEST(parley::redacted_url("postgresql://parley:s3cret@db:5432/parley") ==
             "postgresql://parley:***@db:5432/parley");
  BOOST_TEST(parley::redacted_url("postgres://parley@db/parley") == "postgres://parley@db/parley");
  BOOST_TEST(parley::redacted_url("sqlite://./parley.db") == "sqlite://./parley.db");
  BOOST_TEST(parley::redacted_url("sqlite::memory:") == "sqlite::memory:");
  // An @ in the query belongs to it, not to a password.
  BOOST_TEST(parley::redacted_url("postgresql://db:5432/p?user=a@b") ==
             "postgresql://db:5432/p?user=a@b");
  // Unencoded @ and / in a password, and libpq's password parameter.
  BOOST_TEST(parley::redacted_url("postgresql://u:p@ss/w@db/parley") ==
             "postgresql://u:***@db/parley");
  BOOST_TEST(parley::redacted_url("postgresql://u@db/p?sslmode=require&password=s3cret") ==
             "postgresql://u@db/p?sslmode=require&password=***");
  BOOST_TEST(parley::redacted_url("host=db password=s3cret dbname=p") ==
             "host=db password=*** dbname=p");
}

BOOST_AUTO_TEST_CASE(an_unknown_scheme_is_reported_without_the_password) {
  try {
    parse_database_url("mysql://u:s3cret@db/p");
    BOOST_FAIL("an unknown scheme was accepted");
  } catch (const config_error& e) {
    std::string what = e.what();
    BOOST_TEST(what.find("s3cret") == std::string::npos, what);
    BOOST_TEST(what.find("mysql://u:***@db/p") != std::string::npos, what);
  }
}
