#include "support/ws_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <sys/socket.h>
#include <sys/time.h>

#include <stdexcept>

namespace parley::testing {

namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = boost::asio::ip::tcp;

struct ws_client::impl {
  boost::asio::io_context io;
  websocket::stream<tcp::socket> ws{io};
  std::string accepted_protocol;

  void set_read_timeout(std::chrono::milliseconds timeout) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    setsockopt(ws.next_layer().native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
};

namespace {

/// Connects `ws` and sends the upgrade; `res` gets the server's answer.
void handshake(websocket::stream<tcp::socket>& ws, boost::asio::io_context& io, std::uint16_t port,
               const std::string& path, const std::string& user_id, const std::string& protocols,
               websocket::response_type& res, beast::error_code& ec) {
  tcp::resolver resolver(io);
  boost::asio::connect(ws.next_layer(), resolver.resolve("127.0.0.1", std::to_string(port)));
  ws.set_option(
      websocket::stream_base::decorator([user_id, protocols](websocket::request_type& req) {
        if (!user_id.empty()) req.set("X-User-Id", user_id);
        if (!protocols.empty()) req.set(beast::http::field::sec_websocket_protocol, protocols);
      }));
  ws.handshake(res, "127.0.0.1:" + std::to_string(port), path, ec);
}

}  // namespace

ws_client::ws_client(std::uint16_t port, const std::string& path, const std::string& user_id,
                     const std::string& protocols)
    : impl_(std::make_unique<impl>()) {
  websocket::response_type res;
  beast::error_code ec;
  handshake(impl_->ws, impl_->io, port, path, user_id, protocols, res, ec);
  if (ec)
    throw std::runtime_error("upgrade of " + path + " refused: HTTP " +
                             std::to_string(res.result_int()) + " " + ec.message());
  impl_->accepted_protocol = std::string(res[beast::http::field::sec_websocket_protocol]);
}

const std::string& ws_client::accepted_protocol() const { return impl_->accepted_protocol; }

ws_client::~ws_client() {
  beast::error_code ec;
  impl_->ws.next_layer().close(ec);
}

void ws_client::send_json(const nlohmann::json& j) { send_text(j.dump()); }

void ws_client::send_text(const std::string& text) {
  impl_->ws.text(true);
  impl_->ws.write(boost::asio::buffer(text));
}

void ws_client::send_binary(const std::string& bytes) {
  impl_->ws.binary(true);
  impl_->ws.write(boost::asio::buffer(bytes));
}

void ws_client::ping() { impl_->ws.ping({}); }

nlohmann::json ws_client::read_json(std::chrono::milliseconds timeout) {
  impl_->set_read_timeout(timeout);
  beast::flat_buffer buffer;
  beast::error_code ec;
  impl_->ws.read(buffer, ec);
  if (ec == websocket::error::closed)
    throw std::runtime_error(
        "the server closed the WebSocket: " + std::to_string(impl_->ws.reason().code) + " " +
        std::string(impl_->ws.reason().reason.c_str()));
  if (ec) throw std::runtime_error("WebSocket read failed: " + ec.message());
  return nlohmann::json::parse(beast::buffers_to_string(buffer.data()), nullptr, false);
}

ws_close ws_client::read_until_closed(std::chrono::milliseconds timeout) {
  impl_->set_read_timeout(timeout);
  for (;;) {
    beast::flat_buffer buffer;
    beast::error_code ec;
    impl_->ws.read(buffer, ec);
    if (ec == websocket::error::closed)
      return {static_cast<int>(impl_->ws.reason().code),
              std::string(impl_->ws.reason().reason.c_str())};
    if (ec) throw std::runtime_error("WebSocket read failed before a close: " + ec.message());
  }
}

long upgrade_status(std::uint16_t port, const std::string& path, const std::string& user_id,
                    std::string* body, const std::string& protocols, const std::string& origin) {
  // A hand-made upgrade request, so that a refusal's whole answer is read.
  boost::asio::io_context io;
  tcp::socket socket(io);
  tcp::resolver resolver(io);
  boost::asio::connect(socket, resolver.resolve("127.0.0.1", std::to_string(port)));
  beast::http::request<beast::http::empty_body> req{beast::http::verb::get, path, 11};
  req.set(beast::http::field::host, "127.0.0.1:" + std::to_string(port));
  req.set(beast::http::field::connection, "Upgrade");
  req.set(beast::http::field::upgrade, "websocket");
  req.set(beast::http::field::sec_websocket_version, "13");
  req.set(beast::http::field::sec_websocket_key, "dGhlIHNhbXBsZSBub25jZQ==");
  if (!user_id.empty()) req.set("X-User-Id", user_id);
  if (!protocols.empty()) req.set(beast::http::field::sec_websocket_protocol, protocols);
  if (!origin.empty()) req.set(beast::http::field::origin, origin);
  beast::http::write(socket, req);
  beast::flat_buffer buffer;
  beast::http::response_parser<beast::http::string_body> parser;
  // A 101 has no body: the header is all there is to read.
  beast::http::read_header(socket, buffer, parser);
  if (parser.get().result_int() != 101) beast::http::read(socket, buffer, parser);
  if (body) *body = parser.get().body();
  beast::error_code ec;
  socket.close(ec);
  return parser.get().result_int();
}

}  // namespace parley::testing
