#include "providers/upstream_client.hpp"
#include "base/mutex.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

namespace parley {

namespace {

using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// How often running exchanges are checked for a late first byte or a stall
/// and queued ones for their deadline; libcurl itself enforces the deadline
/// of running ones.
constexpr milliseconds scan_interval{20};
/// The longest one wait for network activity lasts.
constexpr milliseconds max_poll_wait{1000};

std::once_flag curl_initialized;

/// An exchange, owned by the I/O thread.
struct transfer {
  std::uint64_t id = 0;
  upstream_request request;
  upstream_handlers handlers;
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  char error[CURL_ERROR_SIZE] = {};
  bool response_started = false;
  std::optional<unsigned> retry_after_s;
  clock::time_point launched_at;
  clock::time_point last_activity;
  bool aborted_by_handler = false;
};

bool starts_with_nocase(std::string_view text, std::string_view prefix) {
  if (text.size() < prefix.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(text[i])) != prefix[i]) return false;
  return true;
}

/// Retry-After in seconds; the HTTP-date form is not used by the providers.
std::optional<unsigned> parse_retry_after(std::string_view value) {
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  unsigned seconds = 0;
  std::size_t digits = 0;
  for (char c : value) {
    if (c < '0' || c > '9') break;
    seconds = std::min(seconds * 10 + static_cast<unsigned>(c - '0'), 86400u);
    ++digits;
  }
  if (digits == 0) return std::nullopt;
  return seconds;
}

size_t on_header_line(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<transfer*>(user);
  std::string_view line(data, size * count);
  if (starts_with_nocase(line, "http/")) {
    t->retry_after_s.reset();  // a new response (after a 1xx) starts over
  } else if (starts_with_nocase(line, "retry-after:")) {
    t->retry_after_s = parse_retry_after(line.substr(12));
  } else if (line == "\r\n" || line == "\n") {
    long status = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && !t->response_started) {
      t->response_started = true;
      t->last_activity = clock::now();
      if (t->handlers.on_response) t->handlers.on_response(status, t->retry_after_s);
    }
  }
  return size * count;
}

size_t on_body_bytes(char* data, size_t size, size_t count, void* user) {
  auto* t = static_cast<transfer*>(user);
  t->last_activity = clock::now();
  if (!t->handlers.on_body(std::string_view(data, size * count))) {
    t->aborted_by_handler = true;
    return 0;  // makes libcurl fail the exchange with CURLE_WRITE_ERROR
  }
  return size * count;
}

upstream_ending classify(CURLcode code, const transfer& t, clock::time_point now) {
  switch (code) {
    case CURLE_OK:
      return upstream_ending::complete;
    case CURLE_OPERATION_TIMEDOUT:
      // libcurl says the same for the connect timeout and the whole deadline.
      return now + milliseconds(5) >= t.request.deadline ? upstream_ending::timed_out
                                                         : upstream_ending::connect_failed;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_SSL_CONNECT_ERROR:
      return upstream_ending::connect_failed;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
      return upstream_ending::refused;
    default:
      return upstream_ending::broken;
  }
}

}  // namespace

class upstream_client::impl {
 public:
  explicit impl(options opts) : opts_(opts) {
    std::call_once(curl_initialized, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    multi_ = curl_multi_init();
    // One connection per exchange in flight, all kept for reuse.
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(opts.max_in_flight));
    curl_multi_setopt(multi_, CURLMOPT_MAXCONNECTS, static_cast<long>(opts.max_in_flight));
    thread_ = std::thread([this] { run(); });
  }

  ~impl() {
    stopping_ = true;
    curl_multi_wakeup(multi_);
    thread_.join();
    curl_multi_cleanup(multi_);
  }

  std::uint64_t start(upstream_request request, upstream_handlers handlers) {
    auto t = std::make_unique<transfer>();
    t->id = ++last_id_;
    t->request = std::move(request);
    t->handlers = std::move(handlers);
    auto id = t->id;
    {
      mutex_lock lock(mutex_);
      incoming_.push_back(std::move(t));
    }
    curl_multi_wakeup(multi_);
    return id;
  }

  void cancel(std::uint64_t id) {
    {
      mutex_lock lock(mutex_);
      cancels_.push_back(id);
    }
    curl_multi_wakeup(multi_);
  }

 private:
  void run() {
    while (!stopping_) {
      take_commands();
      auto now = clock::now();
      release_due(now);
      launch_waiting();
      if (now >= next_scan_) {
        scan(now);
        next_scan_ = now + scan_interval;
      }
      int running = 0;
      curl_multi_perform(multi_, &running);
      collect_finished();
      int ignored = 0;
      curl_multi_poll(multi_, nullptr, 0, static_cast<int>(wait_time(clock::now()).count()),
                      &ignored);
    }
    take_commands();
    std::vector<std::uint64_t> ids;
    for (auto& [id, t] : transfers_) ids.push_back(id);
    for (auto id : ids) end(id, {upstream_ending::cancelled, "the client is shutting down"});
  }

  void take_commands() {
    std::vector<std::unique_ptr<transfer>> incoming;
    std::vector<std::uint64_t> cancels;
    {
      mutex_lock lock(mutex_);
      incoming.swap(incoming_);
      cancels.swap(cancels_);
    }
    auto now = clock::now();
    for (auto& t : incoming) {
      auto id = t->id;
      auto start_at = t->request.start_at;
      transfers_.emplace(id, std::move(t));
      if (start_at > now)
        scheduled_.emplace(start_at, id);
      else
        waiting_.push_back(id);
    }
    for (auto id : cancels) end(id, {upstream_ending::cancelled, "cancelled"});
  }

  void release_due(clock::time_point now) {
    while (!scheduled_.empty() && scheduled_.begin()->first <= now) {
      waiting_.push_back(scheduled_.begin()->second);
      scheduled_.erase(scheduled_.begin());
    }
  }

  void launch_waiting() {
    while (running_ < opts_.max_in_flight && !waiting_.empty()) {
      auto id = waiting_.front();
      waiting_.pop_front();
      auto i = transfers_.find(id);
      if (i != transfers_.end() && !i->second->easy) launch(*i->second);
    }
  }

  void launch(transfer& t) {
    auto now = clock::now();
    if (now >= t.request.deadline) {
      end(t.id, {upstream_ending::timed_out, "the deadline passed before the request was sent"});
      return;
    }
    t.easy = curl_easy_init();
    auto* e = t.easy;
    curl_easy_setopt(e, CURLOPT_URL, t.request.url.c_str());
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t.request.body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                     static_cast<curl_off_t>(t.request.body.size()));
    // No "Expect: 100-continue" round trip before large bodies.
    t.header_list = curl_slist_append(t.header_list, "Expect:");
    for (auto& h : t.request.headers) t.header_list = curl_slist_append(t.header_list, h.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.header_list);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header_line);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body_bytes);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(opts_.connect_timeout.count()));
    auto left = std::chrono::duration_cast<milliseconds>(t.request.deadline - now).count();
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<long long>(left, 1)));
    curl_easy_setopt(e, CURLOPT_USERAGENT, "parley");
    t.launched_at = now;
    t.last_activity = now;
    curl_multi_add_handle(multi_, e);
    ++running_;
  }

  /// Stalled running exchanges and queued ones past their deadline.
  void scan(clock::time_point now) {
    std::vector<std::pair<std::uint64_t, upstream_result>> over;
    for (auto& [id, t] : transfers_) {
      if (!t->easy) {
        if (now >= t->request.deadline)
          over.emplace_back(id, upstream_result{upstream_ending::timed_out,
                                                "the deadline passed while the request waited"});
      } else if (!t->response_started && t->request.first_byte_timeout.count() > 0 &&
                 now - t->launched_at > t->request.first_byte_timeout) {
        auto wait = std::to_string(t->request.first_byte_timeout.count());
        over.emplace_back(id, upstream_result{upstream_ending::timed_out,
                                              "no answer began within " + wait + " ms"});
      } else if (t->response_started && t->request.stall_timeout.count() > 0 &&
                 now - t->last_activity > t->request.stall_timeout) {
        auto silence = std::to_string(t->request.stall_timeout.count());
        over.emplace_back(id, upstream_result{upstream_ending::stalled,
                                              "no data arrived for " + silence + " ms"});
      }
    }
    for (auto& [id, result] : over) end(id, result);
  }

  void collect_finished() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi_, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      char* owner = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &owner);
      auto& tr = *reinterpret_cast<transfer*>(owner);
      upstream_result result;
      result.ending = tr.aborted_by_handler ? upstream_ending::broken
                                            : classify(msg->data.result, tr, clock::now());
      if (result.ending != upstream_ending::complete)
        result.error = tr.error[0] ? tr.error : curl_easy_strerror(msg->data.result);
      end(tr.id, result);
    }
  }

  /// Removes the exchange and reports how it ended. Removing a running handle
  /// closes its connection unless the response was complete.
  void end(std::uint64_t id, const upstream_result& result) {
    auto i = transfers_.find(id);
    if (i == transfers_.end()) return;
    auto t = std::move(i->second);
    transfers_.erase(i);
    if (t->easy) {
      curl_multi_remove_handle(multi_, t->easy);
      curl_easy_cleanup(t->easy);
      --running_;
    }
    curl_slist_free_all(t->header_list);
    t->handlers.on_end(result);
  }

  milliseconds wait_time(clock::time_point now) const {
    auto wait = max_poll_wait;
    if (!scheduled_.empty())
      wait =
          std::min(wait, std::chrono::duration_cast<milliseconds>(scheduled_.begin()->first - now) +
                             milliseconds(1));
    if (!transfers_.empty()) wait = std::min(wait, scan_interval);
    return std::max(wait, milliseconds(0));
  }

  options opts_;
  CURLM* multi_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> last_id_{0};

  mutex mutex_;
  std::vector<std::unique_ptr<transfer>> incoming_ GUARDED_BY(mutex_);
  std::vector<std::uint64_t> cancels_ GUARDED_BY(mutex_);

  // The I/O thread's own.
  std::unordered_map<std::uint64_t, std::unique_ptr<transfer>> transfers_;
  std::multimap<clock::time_point, std::uint64_t> scheduled_;
  std::deque<std::uint64_t> waiting_;
  unsigned running_ = 0;
  clock::time_point next_scan_{};
};

upstream_client::upstream_client(options opts) : impl_(std::make_unique<impl>(opts)) {}

upstream_client::~upstream_client() = default;

std::uint64_t upstream_client::start(upstream_request request, upstream_handlers handlers) {
  return impl_->start(std::move(request), std::move(handlers));
}

void upstream_client::cancel(std::uint64_t id) { impl_->cancel(id); }

}  // namespace parley
