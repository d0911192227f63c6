#include "persistence/postgresql_interrupt.hpp"

#include <libpq-fe.h>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace parley {

namespace {

class postgresql_interrupt final : public interruptible {
 public:
  /// Takes ownership of both.
  postgresql_interrupt(PGcancel* cancel, int socket) : cancel_(cancel), socket_(socket) {}
  ~postgresql_interrupt() override {
    PQfreeCancel(cancel_);
    ::close(socket_);
  }
  postgresql_interrupt(const postgresql_interrupt&) = delete;
  postgresql_interrupt& operator=(const postgresql_interrupt&) = delete;

  // interruptible overrides

  void cancel() override {
    char error[256] = "";
    if (PQcancel(cancel_, error, sizeof error) != 1)
      spdlog::warn("database: the cancel request failed: {}", error);
  }

  void drop() override {
    // The socket itself, not libpq's descriptor: shutting it down wakes the
    // thread blocked reading it, and the duplicate can never name another
    // file that reused libpq's descriptor number.
    ::shutdown(socket_, SHUT_RDWR);
  }

 private:
  PGcancel* cancel_;
  int socket_;  ///< a duplicate of the connection's socket, closed with this
};

}  // namespace

std::shared_ptr<interruptible> make_postgresql_interrupt(PGconn* conn) {
  if (!conn || PQstatus(conn) != CONNECTION_OK || PQsocket(conn) < 0) return nullptr;
  PGcancel* cancel = PQgetCancel(conn);
  if (!cancel) return nullptr;
  int socket = ::fcntl(PQsocket(conn), F_DUPFD_CLOEXEC, 0);
  if (socket < 0) {
    PQfreeCancel(cancel);
    return nullptr;
  }
  return std::make_shared<postgresql_interrupt>(cancel, socket);
}

}  // namespace parley
