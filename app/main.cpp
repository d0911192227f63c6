// parley: wires configuration, engine and HTTP server together. Nothing else.

#include "actors/engine.hpp"
#include "base/version.hpp"
#include "config/load_settings.hpp"
#include "http/server.hpp"
#include "persistence/store.hpp"
#include "providers/model_registry.hpp"
#include "telemetry/logging.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <iostream>

namespace {

constexpr int exit_config_error = 2;
constexpr int exit_runtime_error = 1;

std::string backend_name(const parley::database_url& url) {
  return url.kind == parley::database_url::backend::sqlite ? "sqlite" : "postgresql";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace parley;
  // Before any thread starts, so that only run_server's sigwait takes them.
  block_stop_signals();
  // A write to a closed pipe (stderr's reader gone) fails, instead of ending
  // the process: sockets and libpq guard their own writes, the log does not.
  std::signal(SIGPIPE, SIG_IGN);
  command_line cli;
  settings cfg;
  std::shared_ptr<const model_registry> models;
  try {
    cli = parse_command_line(argc, argv);
    if (cli.cmd == command_line::command::version) {
      std::cout << "parley " << version() << "\n";
      return 0;
    }
    if (cli.cmd == command_line::command::help) {
      std::cout << cli.help_text;
      return 0;
    }
    cfg = load_settings(cli, read_environment(".env"));
    // Logs go to stderr; stdout carries only what scripts read (the listening line).
    configure_logging(cfg.log);
    models = model_registry::build(cfg);
  } catch (const config_error& e) {
    std::cerr << "parley: " << e.what() << "\n";
    return exit_config_error;
  }

  try {
    if (cli.cmd == command_line::command::migrate) {
      engine::migrate(cfg);
      std::cout << "parley: schema of " << backend_name(cfg.database.url)
                << " database is up to date\n";
      return 0;
    }
    auto eng = engine::start(cfg, models);
    // Names and kinds only: keys stay out of logs.
    bool builtin_overridden = std::any_of(cfg.providers.begin(), cfg.providers.end(),
                                          [](auto& p) { return p.name == "builtin"; });
    std::string provider_list = builtin_overridden ? "" : "builtin (builtin)";
    for (auto& p : cfg.providers)
      provider_list += (provider_list.empty() ? "" : ", ") + p.name + " (" + p.kind + ")";
    std::string model_list;
    for (auto& m : models->all())
      model_list += (model_list.empty() ? "" : ", ") + m.id + " (" + m.provider + ")";
    spdlog::info(
        "parley {} starting: config {}, database {}, auth {}, providers {}, models {}", version(),
        cfg.source,
        backend_name(cfg.database.url) + (cfg.database.read_url ? " with a read replica" : ""),
        cfg.auth.mode, provider_list, model_list);
    return run_server(cfg, *eng, [&](std::uint16_t port) {
      // Tests and scripts read this line to find an ephemeral port.
      std::printf("parley listening on http://%s:%u\n", cfg.server.host.c_str(), port);
      std::fflush(stdout);
    });
  } catch (const config_error& e) {
    // The JWT key file is read when the server starts.
    std::cerr << "parley: " << e.what() << "\n";
    return exit_config_error;
  } catch (const store_error& e) {
    std::cerr << "parley: database " << redacted_url(cfg.database.url.original) << ": " << e.what()
              << "\n";
    return exit_runtime_error;
  } catch (const std::exception& e) {
    std::cerr << "parley: " << e.what() << "\n";
    return exit_runtime_error;
  }
}
