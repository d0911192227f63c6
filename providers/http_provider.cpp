#include "providers/http_provider.hpp"

#include "providers/retry_policy.hpp"
#include "providers/token_estimator.hpp"
#include "providers/upstream_client.hpp"

#include <atomic>
#include <random>

namespace parley {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// The most of an answer kept in memory; a provider sending more is cut off.
constexpr std::size_t max_answer_bytes = 8u << 20;
/// The most of an error body kept to explain the error.
constexpr std::size_t max_error_body_bytes = 64u << 10;

/// What every completion of one provider shares. Owned by the provider, which
/// outlives every caller of its completions (the engine stops first).
struct provider_context {
  provider_settings cfg;
  std::unique_ptr<chat_protocol> protocol;
  std::string url;
  std::vector<std::string> headers;
  retry_policy retries;
  upstream_client client;

  provider_context(const provider_settings& settings, std::unique_ptr<chat_protocol> p)
      : cfg(settings),
        protocol(std::move(p)),
        url(protocol->endpoint(cfg.base_url)),
        headers(protocol->headers(cfg.api_key)),
        client(upstream_client::options{cfg.max_in_flight, milliseconds(cfg.connect_timeout_ms)}) {
    retries.max_attempts = cfg.max_retries + 1;
  }
};

double jitter() {
  thread_local std::mt19937 rng{std::random_device{}()};
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
}

failure provider_failure(std::string detail) { return {errc::provider_error, std::move(detail)}; }

std::string explained(const std::string& what, const std::string& why) {
  return why.empty() ? what : what + ": " + why;
}

/// One completion: its attempts one after another, each an upstream exchange.
/// Everything but cancel() runs on the client's I/O thread.
class http_completion final : public completion_handle,
                              public std::enable_shared_from_this<http_completion> {
 public:
  http_completion(provider_context& ctx, completion_request request, completion_callbacks callbacks)
      : ctx_(ctx),
        stream_(request.stream),
        callbacks_(std::move(callbacks)),
        body_(ctx.protocol->request_body(request)),
        deadline_(std::min(request.deadline, clock::now() + milliseconds(ctx.cfg.timeout_ms))),
        estimated_prompt_(request.messages.estimated_tokens()) {}

  void begin() { attempt(clock::time_point::min()); }

  // completion_handle overrides

  void cancel() override {
    cancelled_ = true;
    ctx_.client.cancel(exchange_.load());
  }

 private:
  void attempt(clock::time_point start_at) {
    ++attempts_;
    status_ = 0;
    retry_after_.reset();
    received_.clear();
    text_.clear();
    decode_failure_.reset();
    complete_ = false;
    usage_ = {};
    reason_.reset();
    parser_ = std::make_unique<sse_parser>(
        [this](sse_event& e) { take(ctx_.protocol->decode_event(e)); });
    upstream_request r;
    r.url = ctx_.url;
    r.headers = ctx_.headers;
    r.body = body_;
    r.start_at = start_at;
    r.deadline = deadline_;
    r.first_byte_timeout = milliseconds(ctx_.cfg.first_byte_timeout_ms);
    if (stream_) r.stall_timeout = milliseconds(ctx_.cfg.stall_timeout_ms);
    auto self = shared_from_this();
    upstream_handlers h;
    h.on_response = [self](long status, std::optional<unsigned> retry_after) {
      self->status_ = status;
      self->retry_after_ = retry_after;
    };
    h.on_body = [self](std::string_view bytes) { return self->on_body(bytes); };
    h.on_end = [self](const upstream_result& result) { self->on_end(result); };
    auto id = ctx_.client.start(std::move(r), std::move(h));
    // Keep the newest id: a fast failure may already have started the next
    // attempt (with a higher id) on the I/O thread.
    auto known = exchange_.load();
    while (known < id && !exchange_.compare_exchange_weak(known, id)) {
    }
    if (cancelled_) ctx_.client.cancel(id);  // cancel() ran between two attempts
  }

  bool succeeded() const { return status_ >= 200 && status_ < 300; }

  bool on_body(std::string_view bytes) {
    if (!succeeded()) {
      auto room = max_error_body_bytes - std::min(max_error_body_bytes, received_.size());
      received_.append(bytes.substr(0, room));
      return true;
    }
    if (stream_) {
      parser_->feed(bytes);
      if (parser_->pending_bytes() > max_answer_bytes)
        decode_failure_ = provider_failure("the provider sent a stream line too long to read");
      return !decode_failure_;
    }
    if (received_.size() + bytes.size() > max_answer_bytes) {
      decode_failure_ = provider_failure("the provider's answer is too large");
      return false;
    }
    received_.append(bytes);
    return true;
  }

  /// Applies a decoded piece of a stream (or a whole answer).
  void take(outcome<decoded_piece> piece) {
    if (decode_failure_ || complete_) return;
    if (!piece) {
      decode_failure_ = piece.error();
      return;
    }
    if (!piece->text.empty()) {
      text_ += piece->text;
      if (stream_) {
        delivered_ = true;
        callbacks_.on_delta(piece->text);
      }
    }
    if (piece->reason) reason_ = piece->reason;
    if (piece->prompt_tokens) usage_.prompt_tokens = *piece->prompt_tokens;
    if (piece->completion_tokens) usage_.completion_tokens = *piece->completion_tokens;
    complete_ = piece->end;
  }

  void on_end(const upstream_result& result) {
    if (finished_) return;
    if (cancelled_ || result.ending == upstream_ending::cancelled) {
      finish_with(finish_reason::cancelled);
      return;
    }
    if (decode_failure_) {
      fail(*decode_failure_);
      return;
    }
    switch (result.ending) {
      case upstream_ending::complete:
        answered();
        return;
      case upstream_ending::connect_failed:
        retry_or_fail(provider_failure(explained("could not reach the provider", result.error)));
        return;
      case upstream_ending::broken:
        retry_or_fail(provider_failure(explained("the provider's answer broke off", result.error)));
        return;
      case upstream_ending::timed_out:
        fail({errc::provider_timeout,
              explained("the provider did not answer in time", result.error)});
        return;
      case upstream_ending::stalled:
        fail({errc::provider_timeout, explained("the provider's stream stalled", result.error)});
        return;
      case upstream_ending::refused:
        fail(provider_failure(explained("cannot reach the provider as configured", result.error)));
        return;
      case upstream_ending::cancelled:
        return;  // handled above
    }
  }

  /// A whole HTTP response arrived.
  void answered() {
    auto why = upstream_error_message(received_);
    if (!succeeded()) {
      auto detail = explained("the provider answered HTTP " + std::to_string(status_), why);
      if (is_retryable_status(status_))
        retry_or_fail(provider_failure(detail));
      else
        fail(provider_failure(detail));
      return;
    }
    if (!stream_) {
      take(ctx_.protocol->decode_answer(received_));
      if (decode_failure_) {
        fail(*decode_failure_);
        return;
      }
      if (!text_.empty()) callbacks_.on_delta(text_);
    } else if (!complete_) {
      retry_or_fail(provider_failure("the provider's stream ended before the answer was complete"));
      return;
    }
    finish_with(reason_.value_or(finish_reason::stop));
  }

  /// Tries again after a backoff unless text reached a streaming caller, the
  /// attempts are used up, or the wait would pass the deadline.
  void retry_or_fail(failure why) {
    std::optional<milliseconds> retry_after;
    if (retry_after_) retry_after = std::chrono::seconds(*retry_after_);
    if (!delivered_ && attempts_ < ctx_.retries.max_attempts) {
      auto wait = backoff_delay(ctx_.retries, attempts_, retry_after, jitter());
      auto at = clock::now() + wait;
      if (at < deadline_) {
        attempt(at);
        return;
      }
    }
    if (attempts_ > 1) why.detail += " (after " + std::to_string(attempts_) + " attempts)";
    why.retry_after_s = retry_after_;
    fail(std::move(why));
  }

  void fail(failure why) {
    finished_ = true;
    // A provider may quote the key back in its error text; it must go no further.
    if (auto& key = ctx_.cfg.api_key; !key.empty())
      for (auto at = why.detail.find(key); at != std::string::npos; at = why.detail.find(key, at))
        why.detail.replace(at, key.size(), "[redacted]");
    callbacks_.on_finish(std::move(why));
  }

  void finish_with(finish_reason reason) {
    finished_ = true;
    completion_result r;
    r.reason = reason;
    r.usage_reported = usage_.prompt_tokens > 0;
    r.usage.prompt_tokens = r.usage_reported ? usage_.prompt_tokens : estimated_prompt_;
    r.usage.completion_tokens =
        usage_.completion_tokens > 0 ? usage_.completion_tokens : estimate_tokens(text_);
    callbacks_.on_finish(r);
  }

  provider_context& ctx_;
  /// All of the request that is needed once its body is rendered: the prompt
  /// is let go at once, so that its window need not copy itself meanwhile.
  const bool stream_;
  const completion_callbacks callbacks_;
  const std::string body_;
  const clock::time_point deadline_;
  const std::int64_t estimated_prompt_;
  std::atomic<bool> cancelled_{false};
  std::atomic<std::uint64_t> exchange_{0};

  // The I/O thread's own.
  unsigned attempts_ = 0;
  bool delivered_ = false;  ///< text reached a streaming caller: no more retries
  bool finished_ = false;
  // Of the current attempt.
  long status_ = 0;
  std::optional<unsigned> retry_after_;
  std::string received_;  ///< the answer, or the error body
  std::unique_ptr<sse_parser> parser_;
  std::optional<failure> decode_failure_;
  std::string text_;
  completion_usage usage_;
  std::optional<finish_reason> reason_;
  bool complete_ = false;
};

class http_provider final : public provider {
 public:
  http_provider(const provider_settings& cfg, std::unique_ptr<chat_protocol> protocol)
      : ctx_(cfg, std::move(protocol)) {}

  // provider overrides

  std::shared_ptr<completion_handle> start(completion_request request,
                                           completion_callbacks callbacks) override {
    auto c = std::make_shared<http_completion>(ctx_, std::move(request), std::move(callbacks));
    c->begin();
    return c;
  }

 private:
  provider_context ctx_;
};

}  // namespace

std::shared_ptr<provider> make_http_provider(const provider_settings& cfg,
                                             std::unique_ptr<chat_protocol> protocol) {
  return std::make_shared<http_provider>(cfg, std::move(protocol));
}

}  // namespace parley
