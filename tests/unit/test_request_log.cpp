#define BOOST_TEST_MODULE request_log
#include "http/request_log.hpp"
#include "support/prometheus_text.hpp"
#include "telemetry/logging.hpp"
#include "telemetry/metrics.hpp"

#include <spdlog/spdlog.h>
#include <boost/test/unit_test.hpp>
#include <nlohmann/json.hpp>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

using namespace parley;
using parley::testing::prometheus_scrape;

namespace {

/// Sends this process's stderr to a file for the life of the object.
class captured_stderr {
 public:
  captured_stderr() {
    std::snprintf(path_, sizeof path_, "/tmp/parley-request-log-XXXXXX");
    int fd = ::mkstemp(path_);
    BOOST_REQUIRE(fd >= 0);
    saved_ = ::dup(STDERR_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
  }
  ~captured_stderr() {
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    std::remove(path_);
  }

  /// The JSON lines written so far, waiting up to 2 s for `count` of them.
  std::vector<nlohmann::json> lines(std::size_t count) const {
    std::vector<nlohmann::json> out;
    for (int attempt = 0; attempt < 100; ++attempt) {
      out.clear();
      std::ifstream in(path_);
      std::string line;
      while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line, nullptr, false);
        BOOST_TEST(j.is_object(), "not a JSON object: " << line);
        out.push_back(j);
      }
      if (out.size() >= count) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return out;
  }

 private:
  char path_[64];
  int saved_ = -1;
};

}  // namespace

// One test case: configure_logging sets up the process's logger once.
BOOST_AUTO_TEST_CASE(requests_are_logged_and_counted_once_their_last_holder_lets_go) {
  captured_stderr err;
  configure_logging(log_settings{"info", false});
  auto scrape_before = prometheus_scrape::parse(metrics::default_registry().render());
  auto before = scrape_before
                    .value("parley_http_requests_total",
                           {{"method", "POST"}, {"route", "/v1/things/:id"}, {"status", "201"}})
                    .value_or(0);
  {
    auto record =
        std::make_shared<request_record>("POST", "/v1/things/:id", "/v1/things/42", "req-1");
    record->set_user("alice");
    auto copy = record;  // a handler's callback
    record.reset();
    copy->answered(201);
    copy->answered(500);  // a later answer changes the status, not the latency
  }
  {
    request_record streamed("GET", "/v1/stream", "/v1/stream/" + std::string(5000, 'p'), "req-2");
    streamed.set_status(200);
    streamed.set_body(std::string(10000, 'x'));
  }
  spdlog::warn("a \"quoted\" warning\nover two lines");

  auto lines = err.lines(3);
  BOOST_REQUIRE_EQUAL(lines.size(), 3u);
  auto& first = lines[0];
  BOOST_TEST(first["msg"] == "request");
  BOOST_TEST(first["level"] == "info");
  BOOST_TEST(first["request_id"] == "req-1");
  BOOST_TEST(first["route"] == "/v1/things/:id");
  BOOST_TEST(first["path"] == "/v1/things/42");
  BOOST_TEST(first["user"] == "alice");
  BOOST_TEST(first["status"] == 500);
  BOOST_TEST(first["latency_ms"].get<double>() >= 0);
  BOOST_TEST(!first.contains("body"));
  auto& second = lines[1];
  BOOST_TEST(second["status"] == 200);
  BOOST_TEST(second["path"].get<std::string>().size() == 1024u);
  BOOST_TEST(second["body"].get<std::string>().size() == 8192u);
  BOOST_TEST(second["body_truncated"] == true);
  // The warning went out at once, after the request lines queued before it.
  BOOST_TEST(lines[2]["level"] == "warning");
  BOOST_TEST(lines[2]["msg"] == "a \"quoted\" warning\nover two lines");

  auto after = prometheus_scrape::parse(metrics::default_registry().render());
  BOOST_TEST(*after.value("parley_http_requests_total",
                          {{"method", "POST"}, {"route", "/v1/things/:id"}, {"status", "500"}}) ==
             1);
  BOOST_TEST(
      after.value("parley_http_requests_total", {{"route", "/v1/things/:id"}, {"status", "201"}})
          .value_or(0) == before);
  BOOST_TEST(*after.value("parley_http_request_duration_seconds_count",
                          {{"method", "GET"}, {"route", "/v1/stream"}}) == 1);
}
