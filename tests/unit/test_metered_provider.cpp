#define BOOST_TEST_MODULE metered_provider
#include <boost/test/unit_test.hpp>

#include "providers/builtin_provider.hpp"
#include "providers/metered_provider.hpp"
#include "support/completion_collector.hpp"
#include "support/prometheus_text.hpp"

#include <chrono>

using namespace parley;
using parley::testing::prometheus_scrape;
using namespace std::chrono_literals;

namespace {

completion_request ask(std::string model, std::string text) {
  completion_request r;
  r.upstream_model = std::move(model);
  r.messages = {{"user", std::move(text)}};
  r.max_tokens = 64;
  r.stream = true;
  return r;
}

/// A provider that fails every completion with `code` at once.
class failing_provider : public provider {
 public:
  explicit failing_provider(errc code) : code_(code) {}
  std::shared_ptr<completion_handle> start(completion_request,
                                           completion_callbacks callbacks) override {
    callbacks.on_finish(failure{code_, "upstream said no"});
    return nullptr;
  }

 private:
  errc code_;
};

}  // namespace

BOOST_AUTO_TEST_CASE(finished_completions_are_counted_with_their_tokens) {
  metrics::registry r;
  auto echo = make_metered_provider(make_builtin_provider(0, 0), "builtin", r);
  for (auto text : {"one two three", "four"}) {
    testing::completion_collector c;
    echo->start(ask("echo", text), c.callbacks());
    BOOST_REQUIRE(c.wait(5s));
    BOOST_REQUIRE(bool(*c.seen().result));
  }
  auto s = prometheus_scrape::parse(r.render());
  std::map<std::string, std::string> echo_labels{{"provider", "builtin"}, {"model", "echo"}};
  auto with = [&](std::map<std::string, std::string> extra) {
    extra.insert(echo_labels.begin(), echo_labels.end());
    return extra;
  };
  BOOST_TEST(*s.value("parley_provider_requests_total", with({{"outcome", "ok"}})) == 2);
  BOOST_TEST(*s.value("parley_provider_tokens_total", with({{"kind", "prompt"}})) > 0);
  BOOST_TEST(*s.value("parley_provider_tokens_total", with({{"kind", "completion"}})) > 0);
  BOOST_TEST(*s.value("parley_provider_request_duration_seconds_count", echo_labels) == 2);
  // echo streams a word at a time: the first piece of each reply was timed.
  BOOST_TEST(*s.value("parley_provider_time_to_first_text_seconds_count", echo_labels) == 2);
}

BOOST_AUTO_TEST_CASE(failures_are_counted_by_kind_and_the_caller_still_hears_them) {
  metrics::registry r;
  auto broken = make_metered_provider(std::make_shared<failing_provider>(errc::provider_error),
                                      "upstream", r);
  auto slow = make_metered_provider(std::make_shared<failing_provider>(errc::provider_timeout),
                                    "upstream", r);
  for (auto* p : {&broken, &slow, &broken}) {
    testing::completion_collector c;
    (*p)->start(ask("gpt-x", "hi"), c.callbacks());
    BOOST_REQUIRE(c.wait(1s));
    BOOST_TEST(!bool(*c.seen().result));
  }
  auto s = prometheus_scrape::parse(r.render());
  std::map<std::string, std::string> labels{{"provider", "upstream"}, {"model", "gpt-x"}};
  labels["outcome"] = "error";
  BOOST_TEST(*s.value("parley_provider_requests_total", labels) == 2);
  labels["outcome"] = "timeout";
  BOOST_TEST(*s.value("parley_provider_requests_total", labels) == 1);
  // A failure has no tokens to count.
  BOOST_TEST(s.value("parley_provider_tokens_total").value_or(0) == 0);
}
