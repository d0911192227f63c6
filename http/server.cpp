#include "http/server.hpp"

#include "http/http_api.hpp"

#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <future>
#include <thread>

namespace parley {

namespace {

sigset_t stop_signal_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}

}  // namespace

void block_stop_signals() {
  auto set = stop_signal_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int run_server(const settings& cfg, engine& eng, std::function<void(std::uint16_t)> on_listening) {
  // Every thread started from here on inherits the blocked signals; this thread
  // alone takes them, with sigwait, so shutdown runs in ordinary code.
  block_stop_signals();
  auto stop_signals = stop_signal_set();

  auto api = std::make_shared<http_api>(cfg, eng);
  std::atomic<std::uint16_t> bound_port{0};
  // The engine answers every operation within its own deadlines; this only
  // stops RESTinio from cutting a long generation short.
  auto handling_timeout =
      std::chrono::milliseconds(cfg.actors.generation_timeout_ms) * 2 + std::chrono::seconds(30);
  inbound_limits parser_limits;
  parser_limits.max_url_bytes = std::uint64_t{cfg.server.max_header_bytes} * 8;
  parser_limits.max_field_name_bytes = std::uint64_t{cfg.server.max_header_bytes} * 8;
  parser_limits.max_field_value_bytes = std::uint64_t{cfg.server.max_header_bytes} * 8;
  parser_limits.max_field_count = std::uint64_t{cfg.server.max_header_count} * 8;
  parser_limits.max_body_bytes = cfg.server.max_body_bytes * 8 + 65536;
  parser_limits.large_body_path = http_api::import_path;
  parser_limits.max_large_body_bytes = cfg.limits.max_import_bytes;
  parser_limits.max_frame_bytes = cfg.server.max_body_bytes;
  screened_socket::set_limits(parser_limits);
  server_io_context io;
  restinio::http_server_t<server_traits> server{
      restinio::external_io_context(io), [&](auto& s) {
        s.address(cfg.server.host)
            .port(cfg.server.port)
            .request_handler(api->make_router())
            .connection_state_listener(
                std::make_shared<closed_connection_listener>(api->connection_watch_ptr()))
            // With room for a second request RESTinio keeps reading while a
            // request is handled, and so sees a client that hangs up (EOF).
            .max_pipelined_requests(2)
            // Streams send many small writes: without TCP_NODELAY each one
            // after the first waits for the client's delayed ACK (~40 ms).
            .socket_options_setter([](restinio::socket_options_t& options) {
              options.set_option(asio::ip::tcp::no_delay{true});
            })
            .acceptor_post_bind_hook([&](asio::ip::tcp::acceptor& acceptor) {
              bound_port = acceptor.local_endpoint().port();
            })
            // Past the configured limits the handlers answer 413, 414 or 431;
            // eight times past them the screened socket answers before the
            // parser would end the connection unanswered.
            .incoming_http_msg_limits(
                restinio::incoming_http_msg_limits_t{}
                    .max_url_size(parser_limits.max_url_bytes)
                    .max_field_name_size(parser_limits.max_field_name_bytes)
                    .max_field_value_size(parser_limits.max_field_value_bytes)
                    .max_field_count(parser_limits.max_field_count)
                    .max_body_size(
                        std::max(parser_limits.max_body_bytes, parser_limits.max_large_body_bytes)))
            .max_parallel_connections(cfg.server.max_connections)
            // A whole request, and an idle keep-alive, within read_timeout_ms:
            // a slow-loris client is cut off without holding a thread.
            .read_next_http_message_timelimit(std::chrono::milliseconds(cfg.server.read_timeout_ms))
            .write_http_response_timelimit(std::chrono::seconds(30))
            .handle_request_timeout(handling_timeout);
      }};

  std::promise<void> opened;
  asio::post(server.io_context(), [&] {
    try {
      server.open_sync();
      opened.set_value();
    } catch (...) {
      opened.set_exception(std::current_exception());
    }
  });
  std::vector<std::thread> io_threads;
  for (unsigned i = 0; i < cfg.server.threads; ++i)
    io_threads.emplace_back([&] { server.io_context().run(); });
  auto stop_io = [&] {
    server.io_context().stop();
    for (auto& t : io_threads) t.join();
  };
  try {
    opened.get_future().get();
  } catch (...) {
    stop_io();
    throw;
  }
  on_listening(bound_port.load());

  int signal = 0;
  sigwait(&stop_signals, &signal);
  spdlog::info("received signal {}, shutting down", signal);

  std::promise<void> closed;
  asio::post(server.io_context(), [&] {
    try {
      server.close_sync();
    } catch (...) {
    }
    closed.set_value();
  });
  closed.get_future().wait();
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(cfg.server.shutdown_grace_ms);
  while (api->in_flight() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (api->in_flight() > 0)
    spdlog::warn("{} requests still in flight after the grace period", api->in_flight());
  api->stop_ticking();
  eng.shutdown();
  stop_io();
  // Destroys the connections still open while the limiter they count in exists.
  io.shutdown();
  spdlog::info("stopped");
  return 0;
}

}  // namespace parley
