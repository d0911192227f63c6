#include "providers/builtin_provider.hpp"

#include "providers/token_estimator.hpp"

#include <asio.hpp>

#include <atomic>
#include <mutex>
#include <thread>

namespace parley {

std::string echo_reply(const prompt& messages) {
  for (auto i = messages.size(); i > 0; --i)
    if (auto& m = messages[i - 1]; m.role == "user") return "Echo: " + m.content.str();
  return "Echo:";
}

std::string cut_at_stop(std::string text, const std::vector<std::string>& stop) {
  auto end = text.size();
  for (auto& s : stop)
    if (auto at = text.find(s); !s.empty() && at < end) end = at;
  text.resize(end);
  return text;
}

std::vector<std::string> split_words(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    auto word = text.find_first_not_of(" \t\r\n", pos);
    if (word == std::string::npos) {
      if (!out.empty())
        out.back() += text.substr(pos);
      else
        out.push_back(text.substr(pos));
      break;
    }
    auto end = text.find_first_of(" \t\r\n", word);
    if (end == std::string::npos) end = text.size();
    out.push_back(text.substr(pos, end - pos));
    pos = end;
  }
  return out;
}

namespace {

/// One echo completion: the words to send, where it stands, and its timer.
class echo_completion final : public completion_handle,
                              public std::enable_shared_from_this<echo_completion> {
 public:
  echo_completion(asio::io_context& io, completion_request request, completion_callbacks callbacks)
      : timer_(io), callbacks_(std::move(callbacks)) {
    usage_.prompt_tokens = request.messages.estimated_tokens();
    auto words = split_words(cut_at_stop(echo_reply(request.messages), request.stop));
    // Keep the words that fit max_tokens; a cut reply finishes with `length`.
    std::int64_t budget = request.max_tokens;
    std::size_t kept_chars = 0;
    for (auto& w : words) {
      auto chars = kept_chars + count_code_points(w);
      if (budget > 0 && tokens_of(chars) > budget) {
        reason_ = finish_reason::length;
        break;
      }
      kept_chars = chars;
      words_.push_back(std::move(w));
    }
  }

  /// Sends everything now (zero latency).
  void run_now() {
    for (auto& w : words_) emit(w);
    finish(reason_);
  }

  /// Sends the first word after `ttft`, each next one `itl` later.
  void run_timed(std::chrono::milliseconds ttft, std::chrono::milliseconds itl) {
    itl_ = itl;
    schedule(ttft);
  }

  // completion_handle overrides

  void cancel() override {
    cancelled_ = true;
    auto self = shared_from_this();
    asio::post(timer_.get_executor(), [self] {
      if (!self->finished_) {
        self->timer_.cancel();
        self->finish(finish_reason::cancelled);
      }
    });
  }

 private:
  void schedule(std::chrono::milliseconds delay) {
    timer_.expires_after(delay);
    timer_.async_wait([self = shared_from_this()](const asio::error_code& ec) {
      if (ec || self->finished_ || self->cancelled_) return;  // cancel() finishes the completion
      if (self->next_ < self->words_.size()) {
        self->emit(self->words_[self->next_++]);
        if (self->next_ < self->words_.size()) {
          self->schedule(self->itl_);
          return;
        }
      }
      self->finish(self->reason_);
    });
  }

  void emit(const std::string& word) {
    sent_chars_ += count_code_points(word);
    usage_.completion_tokens = tokens_of(sent_chars_);
    callbacks_.on_delta(word);
  }

  void finish(finish_reason reason) {
    finished_ = true;
    callbacks_.on_finish(completion_result{reason, usage_});
  }

  asio::steady_timer timer_;
  completion_callbacks callbacks_;
  std::vector<std::string> words_;
  std::size_t next_ = 0;
  std::size_t sent_chars_ = 0;  ///< code points sent so far
  completion_usage usage_;
  finish_reason reason_ = finish_reason::stop;
  std::chrono::milliseconds itl_{0};
  bool finished_ = false;  // touched only on the timer thread (or in run_now)
  std::atomic<bool> cancelled_{false};
};

/// Synchronous completions need no cancellation: they are over before start returns.
class finished_handle final : public completion_handle {
 public:
  void cancel() override {}
};

class builtin_provider final : public provider {
 public:
  builtin_provider(unsigned ttft_ms, unsigned itl_ms)
      : ttft_(ttft_ms), itl_(itl_ms), work_(asio::make_work_guard(io_)) {
    if (ttft_ms > 0 || itl_ms > 0) thread_ = std::thread([this] { io_.run(); });
  }

  ~builtin_provider() override {
    work_.reset();
    io_.stop();
    if (thread_.joinable()) thread_.join();
  }

  // provider overrides

  std::shared_ptr<completion_handle> start(completion_request request,
                                           completion_callbacks callbacks) override {
    auto c = std::make_shared<echo_completion>(io_, std::move(request), std::move(callbacks));
    if (!thread_.joinable()) {
      c->run_now();
      return std::make_shared<finished_handle>();
    }
    asio::post(io_, [c, this] { c->run_timed(ttft_, itl_); });
    return c;
  }

 private:
  std::chrono::milliseconds ttft_, itl_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

}  // namespace

std::shared_ptr<provider> make_builtin_provider(unsigned ttft_ms, unsigned itl_ms) {
  return std::make_shared<builtin_provider>(ttft_ms, itl_ms);
}

}  // namespace parley
