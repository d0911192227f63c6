#include "config/logging.hpp"

#include "config/clock.hpp"

#include <spdlog/async.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <chrono>

namespace parley {

namespace {

/// Formats a record as one JSON line. Records of the event logger already are
/// JSON objects and get "time" and "level" merged in; any other message
/// becomes the "msg" string.
class json_line_formatter : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    using namespace std::chrono;
    auto ms = duration_cast<milliseconds>(msg.time.time_since_epoch()).count();
    std::string_view payload(msg.payload.data(), msg.payload.size());
    std::string_view logger(msg.logger_name.data(), msg.logger_name.size());
    auto level = spdlog::level::to_string_view(msg.level);
    std::string line = "{\"time\":\"" + format_rfc3339(ms) + "\",\"level\":\"" +
                       std::string(level.data(), level.size()) + "\"";
    if (logger == event_logger_name && payload.size() >= 2 && payload.front() == '{') {
      payload.remove_prefix(1);
      if (payload != "}") line += ",";
      line += payload;
    } else {
      line += ",\"msg\":" + json_quoted(payload) + "}";
    }
    line += "\n";
    dest.append(line.data(), line.data() + line.size());
  }

  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<json_line_formatter>();
  }

  static constexpr std::string_view event_logger_name = "event";
};

std::shared_ptr<spdlog::logger>& event_logger() {
  static std::shared_ptr<spdlog::logger> logger;
  return logger;
}

/// The thread that writes event lines. Destroyed at exit, after it has
/// written every line queued before.
std::shared_ptr<spdlog::details::thread_pool>& event_writer() {
  static std::shared_ptr<spdlog::details::thread_pool> pool;
  return pool;
}

constexpr std::size_t event_queue_lines = 16384;

}  // namespace

std::string json_quoted(std::string_view text) {
  return nlohmann::json(std::string(text))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void configure_logging(const log_settings& cfg) {
  auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  sink->set_formatter(std::make_unique<json_line_formatter>());
  auto level = spdlog::level::from_str(cfg.level);
  auto main_logger = std::make_shared<spdlog::logger>("parley", sink);
  main_logger->set_level(level);
  // The sink writes to unbuffered stderr: nothing waits in a buffer.
  spdlog::set_default_logger(main_logger);
  // Request lines are written on a thread of their own: they are logged from
  // actor and I/O threads, which a slow reader of stderr (a pipe to a log
  // shipper) must not stall. Past a full queue the oldest lines are dropped.
  event_writer() = std::make_shared<spdlog::details::thread_pool>(event_queue_lines, 1);
  auto events = std::make_shared<spdlog::async_logger>(
      std::string(json_line_formatter::event_logger_name), sink, event_writer(),
      spdlog::async_overflow_policy::overrun_oldest);
  events->set_level(level);
  event_logger() = events;
}

void log_event(std::string_view json_object) {
  auto& logger = event_logger();
  if (logger)
    logger->info("{}", json_object);
  else
    spdlog::info("{}", json_object);
}

}  // namespace parley
