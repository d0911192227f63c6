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

/// Waits until no request is in flight and no exchange runs, or `deadline`.
bool settle(const http_api& api, const engine& eng,
            std::chrono::steady_clock::time_point deadline) {
  auto busy = [&] { return api.in_flight() > 0 || eng.running_exchanges() > 0; };
  while (busy() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return !busy();
}

/// The steps from SIGTERM to a stop that loses nothing and leaves every
/// client knowing where to go (docs/deployment.md).
void drain(const settings& cfg, http_api& api, engine& eng, const std::function<void()>& close) {
  using std::chrono::milliseconds;
  using clock = std::chrono::steady_clock;
  // 1. Balancers probing /ready take the instance out; requests are still served.
  api.begin_drain();
  std::this_thread::sleep_for(milliseconds(cfg.server.drain_delay_ms));
  // 2. No new messages on open WebSockets, and no new connections (in this
  //    order: a client that finds the listener closed is refused too).
  api.refuse_socket_messages();
  close();
  // 3. What was accepted finishes: requests are answered, exchanges (an
  //    HTTP stream's or a WebSocket's) store their replies...
  if (!settle(api, eng, clock::now() + milliseconds(cfg.server.shutdown_grace_ms))) {
    // ...or, past the grace period, are stopped and stored as cancelled
    // (again and again: an exchange queued behind one may start meanwhile).
    spdlog::warn("{} requests and {} exchanges still running after the grace period; cancelling",
                 api.in_flight(), eng.running_exchanges());
    auto deadline = clock::now() + milliseconds(2 * cfg.database.timeout_ms + 1000);
    do eng.cancel_running();
    while (!settle(api, eng, std::min(deadline, clock::now() + milliseconds(100))) &&
           clock::now() < deadline);
    if (api.in_flight() > 0 || eng.running_exchanges() > 0)
      spdlog::warn("{} requests still in flight; stopping anyway", api.in_flight());
  }
  // 4. Open WebSockets and streams are told to reconnect elsewhere; their
  //    last frames get a moment to be written before the I/O stops.
  api.send_clients_elsewhere();
  std::this_thread::sleep_for(milliseconds(200));
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
  spdlog::info("received signal {}, draining", signal);
  drain(cfg, *api, eng, [&] {
    std::promise<void> closed;
    asio::post(server.io_context(), [&] {
      try {
        server.close_sync();
      } catch (...) {
      }
      closed.set_value();
    });
    closed.get_future().wait();
  });
  api->stop_ticking();
  eng.shutdown();
  stop_io();
  // Destroys the connections still open while the limiter they count in exists.
  io.shutdown();
  spdlog::info("stopped");
  return 0;
}

}  // namespace parley
