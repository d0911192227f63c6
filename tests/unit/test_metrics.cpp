#define BOOST_TEST_MODULE metrics
#include "support/prometheus_text.hpp"
#include "telemetry/metrics.hpp"

#include <boost/test/unit_test.hpp>

#include <cmath>
#include <thread>

using namespace parley;
using parley::testing::prometheus_scrape;

BOOST_AUTO_TEST_CASE(counters_and_gauges_render_with_their_labels) {
  metrics::registry r;
  auto& requests = r.counters("app_requests_total", "Requests.", {"route", "status"});
  requests.with({"/v1/x", "200"}).add();
  requests.with({"/v1/x", "200"}).add(2);
  requests.with({"/v1/x", "404"}).add();
  r.gauge_named("app_live", "Live things.").set(7.5);
  auto text = r.render();
  auto scrape = prometheus_scrape::parse(text);
  BOOST_TEST(scrape.types["app_requests_total"] == "counter");
  BOOST_TEST(scrape.types["app_live"] == "gauge");
  BOOST_TEST(scrape.help["app_live"] == "Live things.");
  BOOST_TEST(*scrape.value("app_requests_total", {{"route", "/v1/x"}, {"status", "200"}}) == 3);
  BOOST_TEST(*scrape.value("app_requests_total", {{"status", "404"}}) == 1);
  BOOST_TEST(*scrape.value("app_requests_total") == 4);
  BOOST_TEST(*scrape.value("app_live") == 7.5);
  BOOST_TEST(text.find("app_live 7.5\n") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(label_values_and_help_are_escaped) {
  metrics::registry r;
  r.counters("odd_total", "Help with \\ and\nnewline.", {"v"}).with({"a\"b\\c\nd"}).add();
  auto text = r.render();
  BOOST_TEST(text.find(R"(odd_total{v="a\"b\\c\nd"} 1)") != std::string::npos);
  BOOST_TEST(text.find(R"(# HELP odd_total Help with \\ and\nnewline.)") != std::string::npos);
  auto scrape = prometheus_scrape::parse(text);
  BOOST_TEST(scrape.label_values("odd_total", "v") == std::vector<std::string>{"a\"b\\c\nd"});
}

BOOST_AUTO_TEST_CASE(a_histogram_counts_into_cumulative_buckets) {
  metrics::registry r;
  auto& h = r.histogram_named("lat_seconds", "Latency.", {0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.5, 5.0, 50.0}) h.observe(v);
  auto s = h.read();
  BOOST_TEST(s.count == 5u);
  BOOST_TEST(s.sum == 55.65, boost::test_tools::tolerance(1e-9));
  // le is inclusive: 0.1 falls into the 0.1 bucket.
  BOOST_TEST(s.cumulative == (std::vector<std::uint64_t>{2, 3, 4, 5}),
             boost::test_tools::per_element());
  auto text = r.render();
  BOOST_TEST(text.find("lat_seconds_bucket{le=\"0.1\"} 2\n") != std::string::npos);
  BOOST_TEST(text.find("lat_seconds_bucket{le=\"+Inf\"} 5\n") != std::string::npos);
  BOOST_TEST(text.find("lat_seconds_count 5\n") != std::string::npos);
  auto scrape = prometheus_scrape::parse(text);
  BOOST_TEST(*scrape.value("lat_seconds_bucket", {{"le", "10"}}) == 4);
  BOOST_TEST(*scrape.value("lat_seconds_sum") == 55.65, boost::test_tools::tolerance(1e-9));
}

BOOST_AUTO_TEST_CASE(labelled_histograms_put_le_last) {
  metrics::registry r;
  r.histograms("d_seconds", "D.", {"route"}, {1}).with({"/a"}).observe(0.5);
  auto text = r.render();
  BOOST_TEST(text.find("d_seconds_bucket{route=\"/a\",le=\"1\"} 1\n") != std::string::npos);
  BOOST_TEST(text.find("d_seconds_sum{route=\"/a\"} 0.5\n") != std::string::npos);
  BOOST_CHECK_NO_THROW(prometheus_scrape::parse(text));
}

BOOST_AUTO_TEST_CASE(asking_twice_gives_the_same_family_and_a_clash_throws) {
  metrics::registry r;
  auto& a = r.counters("x_total", "X.", {"k"});
  auto& b = r.counters("x_total", "X.", {"k"});
  BOOST_TEST(&a == &b);
  BOOST_CHECK_THROW(r.gauges("x_total", "X."), std::logic_error);
  BOOST_CHECK_THROW(r.counters("x_total", "X.", {"other"}), std::logic_error);
  BOOST_CHECK_THROW(r.histogram_named("h", "H.", {2, 1}), std::logic_error);
}

BOOST_AUTO_TEST_CASE(concurrent_updates_are_all_counted) {
  metrics::registry r;
  auto& c = r.counters("c_total", "C.", {"t"});
  auto& h = r.histogram_named("h_seconds", "H.", metrics::latency_buckets());
  auto& g = r.gauge_named("g", "G.");
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10000; ++i) {
        c.with({std::to_string(t % 2)}).add();
        h.observe(0.002);
        g.add(1);
        g.add(-1);
      }
    });
  for (auto& t : threads) t.join();
  auto scrape = prometheus_scrape::parse(r.render());
  BOOST_TEST(*scrape.value("c_total") == 40000);
  BOOST_TEST(*scrape.value("h_seconds_count") == 40000);
  BOOST_TEST(*scrape.value("g") == 0);
}

BOOST_AUTO_TEST_CASE(values_are_formatted_as_the_format_wants) {
  BOOST_TEST(metrics::format_value(3) == "3");
  BOOST_TEST(metrics::format_value(0.25) == "0.25");
  BOOST_TEST(metrics::format_value(1.0 / 0.0) == "+Inf");
  BOOST_TEST(metrics::format_value(-1.0 / 0.0) == "-Inf");
  BOOST_TEST(metrics::format_value(0.0 / 0.0) == "NaN");
}

BOOST_AUTO_TEST_CASE(process_metrics_come_from_proc) {
  metrics::registry r;
  metrics::sample_process_metrics(r);
  auto scrape = prometheus_scrape::parse(r.render());
  BOOST_TEST(*scrape.value("process_resident_memory_bytes") > 1024 * 1024);
  BOOST_TEST(*scrape.value("process_open_fds") >= 3);
  BOOST_TEST(*scrape.value("process_start_time_seconds") > 1.7e9);
}

BOOST_AUTO_TEST_CASE(the_parser_takes_timestamps_and_special_values) {
  auto scrape = prometheus_scrape::parse(
      "# TYPE a gauge\na{x=\"1\",y=\"2\",} 1.5e3 1700000000000\na{x=\"2\"} +Inf\n");
  BOOST_TEST(*scrape.value("a", {{"x", "1"}, {"y", "2"}}) == 1500);
  BOOST_TEST(std::isinf(*scrape.value("a", {{"x", "2"}})));
}

BOOST_AUTO_TEST_CASE(the_parser_refuses_malformed_text) {
  for (const char* bad : {
           "no_type 1\n",
           "# TYPE a counter\na{x=\"1} 1\n",
           "# TYPE a counter\na{x=1} 1\n",
           "# TYPE a counter\na one\n",
           "# TYPE a counter\n# TYPE a counter\n",
           "# TYPE h histogram\nh_bucket{le=\"1\"} 3\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n",
           "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n",
           "# TYPE h histogram\nh 1\n",
           "# TYPE a counter\na{x=\"1\"y=\"2\"} 1\n",
           "# TYPE a counter\na{1x=\"1\"} 1\n",
           "# TYPE a counter\na{x:y=\"1\"} 1\n",
           "# TYPE a counter\na 1 later\n",
       })
    BOOST_CHECK_THROW(prometheus_scrape::parse(bad), std::runtime_error);
}
