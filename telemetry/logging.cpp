#include "telemetry/logging.hpp"

#include "base/clock.hpp"
#include "base/json_text.hpp"
#include "base/mutex.hpp"

#include <spdlog/sinks/base_sink.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <mutex>
#include <thread>

namespace parley {

namespace {

/// `{"time":"…","level":"…",` then `members` (the rest of a JSON object,
/// closing brace included) and a newline.
std::string json_line(std::chrono::system_clock::time_point time, spdlog::level::level_enum level,
                      std::string_view members) {
  using namespace std::chrono;
  auto name = spdlog::level::to_string_view(level);
  std::string line;
  line.reserve(64 + members.size());
  line.append("{\"time\":\"")
      .append(format_rfc3339(duration_cast<milliseconds>(time.time_since_epoch()).count()))
      .append("\",\"level\":\"")
      .append(name.data(), name.size())
      .append(members == "}" ? "\"" : "\",")
      .append(members)
      .append("\n");
  return line;
}

/// Writes log lines to a file descriptor from a thread of its own, so that
/// no actor or I/O thread waits for a slow reader of stderr (a pipe to a log
/// shipper) and one write(2) carries many lines. Request lines wait at most
/// `linger`; other lines (warnings, errors, the startup line) go out at once.
/// Past `max_pending_bytes` waiting, lines are dropped. Thread-safe; the
/// destructor writes everything still waiting.
class line_writer {
 public:
  explicit line_writer(int fd) : fd_(fd), thread_([this] { run(); }) {}

  ~line_writer() {
    {
      mutex_lock lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  line_writer(const line_writer&) = delete;
  line_writer& operator=(const line_writer&) = delete;

  void add(std::string_view line, bool urgent) {
    bool wake;
    {
      mutex_lock lock(mutex_);
      if (pending_.size() + line.size() > max_pending_bytes) return;
      pending_.append(line);
      wake = urgent || pending_.size() >= batch_bytes;
      urgent_ = urgent_ || urgent;
    }
    if (wake) wake_.notify_one();
  }

 private:
  static constexpr std::size_t batch_bytes = 64 * 1024;
  static constexpr std::size_t max_pending_bytes = 16 * 1024 * 1024;
  static constexpr auto linger = std::chrono::milliseconds(50);

  void run() {
    std::string out;
    for (bool last = false; !last;) {
      {
        mutex_lock lock(mutex_);
        auto until = std::chrono::steady_clock::now() + linger;
        while (!stopping_ && !urgent_ && pending_.size() < batch_bytes &&
               wake_.wait_until(mutex_, until)) {
        }
        out.swap(pending_);
        urgent_ = false;
        last = stopping_;
      }
      write_all(out);
      out.clear();
    }
  }

  void write_all(const std::string& text) const {
    std::size_t done = 0;
    while (done < text.size()) {
      auto n = ::write(fd_, text.data() + done, text.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // nowhere to write: the lines are lost, not the process
      done += static_cast<std::size_t>(n);
    }
  }

  const int fd_;
  mutex mutex_;
  condition wake_;
  std::string pending_ GUARDED_BY(mutex_);
  bool urgent_ GUARDED_BY(mutex_) = false;
  bool stopping_ GUARDED_BY(mutex_) = false;
  std::thread thread_;  // last: starts once the rest is initialised
};

/// spdlog's messages as JSON lines with "msg", through the line writer.
class json_line_sink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit json_line_sink(std::shared_ptr<line_writer> writer) : writer_(std::move(writer)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string_view text(msg.payload.data(), msg.payload.size());
    writer_->add(json_line(msg.time, msg.level, "\"msg\":" + json_quoted(text) + "}"), true);
  }
  void flush_() override {}

 private:
  std::shared_ptr<line_writer> writer_;
};

/// Shared with the sink, so the writer lasts as long as whichever of the two
/// static owners (this one, spdlog's registry) is destroyed last.
std::shared_ptr<line_writer>& the_line_writer() {
  static std::shared_ptr<line_writer> writer;
  return writer;
}

}  // namespace

std::string json_quoted(std::string_view text) {
  std::string out;
  append_json_string(out, text);
  return out;
}

void configure_logging(const log_settings& cfg) {
  the_line_writer() = std::make_shared<line_writer>(STDERR_FILENO);
  auto logger = std::make_shared<spdlog::logger>(
      "parley", std::make_shared<json_line_sink>(the_line_writer()));
  logger->set_level(spdlog::level::from_str(cfg.level));
  spdlog::set_default_logger(logger);
}

void log_event(std::string_view json_object) {
  auto& writer = the_line_writer();
  if (!writer) {
    spdlog::info("{}", json_object);
    return;
  }
  if (!spdlog::default_logger_raw()->should_log(spdlog::level::info)) return;
  if (json_object.size() < 2 || json_object.front() != '{') return;
  json_object.remove_prefix(1);
  writer->add(json_line(std::chrono::system_clock::now(), spdlog::level::info, json_object), false);
}

}  // namespace parley
