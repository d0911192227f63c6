#include "providers/metered_provider.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>

namespace parley {

namespace {

using steady = std::chrono::steady_clock;

double seconds_since(steady::time_point start) {
  return std::chrono::duration<double>(steady::now() - start).count();
}

const char* outcome_label(const outcome<completion_result>& r) {
  if (!r) return r.error().code == errc::provider_timeout ? "timeout" : "error";
  return r->reason == finish_reason::cancelled ? "cancelled" : "ok";
}

/// The families a provider's completions are counted into.
struct provider_instruments {
  explicit provider_instruments(metrics::registry& r)
      : requests(r.counters("parley_provider_requests_total",
                            "Completions asked of a provider, by how they ended.",
                            {"provider", "model", "outcome"})),
        tokens(r.counters("parley_provider_tokens_total",
                          "Tokens of finished completions (provider-reported or estimated).",
                          {"provider", "model", "kind"})),
        first_text(r.histograms("parley_provider_time_to_first_text_seconds",
                                "Time from asking a provider to its first piece of text.",
                                {"provider", "model"}, metrics::latency_buckets())),
        duration(r.histograms("parley_provider_request_duration_seconds",
                              "Time from asking a provider to the end of its completion.",
                              {"provider", "model"}, metrics::latency_buckets())) {}

  void record(const std::vector<std::string>& labels, const outcome<completion_result>& r,
              double seconds) {
    requests.with({labels[0], labels[1], outcome_label(r)}).add();
    duration.with(labels).observe(seconds);
    if (!r) return;
    tokens.with({labels[0], labels[1], "prompt"})
        .add(static_cast<std::uint64_t>(std::max<std::int64_t>(0, r->usage.prompt_tokens)));
    tokens.with({labels[0], labels[1], "completion"})
        .add(static_cast<std::uint64_t>(std::max<std::int64_t>(0, r->usage.completion_tokens)));
  }

  metrics::family<metrics::counter>& requests;
  metrics::family<metrics::counter>& tokens;
  metrics::family<metrics::histogram>& first_text;
  metrics::family<metrics::histogram>& duration;
};

class metered_provider : public provider {
 public:
  metered_provider(std::shared_ptr<provider> inner, std::string name, metrics::registry& r)
      : inner_(std::move(inner)),
        name_(std::move(name)),
        instruments_(std::make_shared<provider_instruments>(r)) {}

  std::shared_ptr<completion_handle> start(completion_request request,
                                           completion_callbacks callbacks) override {
    auto started = steady::now();
    std::vector<std::string> labels{name_, request.upstream_model};
    auto* first_text = &instruments_->first_text.with(labels);
    // on_delta and on_finish never run concurrently, but may run on other threads.
    auto seen_text = std::make_shared<std::atomic<bool>>(false);
    auto on_delta = std::move(callbacks.on_delta);
    callbacks.on_delta = [on_delta, seen_text, started, first_text](std::string text) {
      if (!seen_text->exchange(true)) first_text->observe(seconds_since(started));
      on_delta(std::move(text));
    };
    auto on_finish = std::move(callbacks.on_finish);
    callbacks.on_finish = [instruments = instruments_, on_finish, labels,
                           started](outcome<completion_result> r) {
      instruments->record(labels, r, seconds_since(started));
      on_finish(std::move(r));
    };
    return inner_->start(std::move(request), std::move(callbacks));
  }

 private:
  std::shared_ptr<provider> inner_;
  std::string name_;
  // Shared with the callbacks, which may outlive this decorator; the histogram
  // a callback holds lives in the registry, which outlives them all.
  std::shared_ptr<provider_instruments> instruments_;
};

}  // namespace

std::shared_ptr<provider> make_metered_provider(std::shared_ptr<provider> inner,
                                                std::string provider_name, metrics::registry& r) {
  return std::make_shared<metered_provider>(std::move(inner), std::move(provider_name), r);
}

}  // namespace parley
