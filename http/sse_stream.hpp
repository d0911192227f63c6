#pragma once

// Internal to http/: includes RESTinio.

#include "actors/conversation_events.hpp"
#include "actors/requests.hpp"
#include "base/mutex.hpp"
#include "http/problem.hpp"

#include <restinio/all.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

namespace parley {

/// How a stream writes what it is told: Parley's events, or those of an
/// OpenAI-compatible route. Called in order, under the stream's lock, so an
/// implementation may keep state (a sequence number) without one of its own.
class sse_format {
 public:
  virtual ~sse_format() = default;
  /// The bytes for `e`; none sends nothing. (`closed` goes to failure().)
  virtual std::string event(const conversation_event& e) = 0;
  /// The bytes that end the stream with `p`.
  virtual std::string failure(const problem& p, const std::string& request_id) = 0;
  /// The bytes that end the stream because the server is going away: by
  /// default the failure `p` (503).
  virtual std::string restart(const problem& p, const std::string& request_id) {
    return failure(p, request_id);
  }
  /// Whether each event of a run goes out with its `id: <run_id>:<n>`.
  virtual bool numbered() const { return false; }
};

/// Parley's events: `message`, `delta`, `done`, `branch`, then `error`
/// with a problem when the exchange failed; those of a run numbered.
std::unique_ptr<sse_format> parley_sse_format();

/// The server-sent-event answer to one streamed POST (messages, regenerate,
/// create). Nothing is sent until the engine reports the exchange began, so a
/// failure before that is still answered as a plain problem; from the first
/// event on it is `200 text/event-stream`, one event per engine event, then an
/// `error` event if the exchange failed, then the end.
///
/// Thread-safe: the conversation actor delivers events, the exchange's reply
/// callback finishes it, the keep-alive ticker pings it. Writes are paced by
/// the socket: one flush is in flight at a time, and the events that come
/// meanwhile go out together in the next (so a busy server makes fewer,
/// larger writes). Once more than `max_queued_bytes` wait for a slow reader,
/// the stream ends with an error event and nothing more is queued for it;
/// deliver() then returns false, which calls the exchange's generation off.
class sse_stream final : public conversation_subscriber,
                         public std::enable_shared_from_this<sse_stream> {
 public:
  using clock = std::chrono::steady_clock;

  /// `headers` go out with the stream's own (CORS, for one).
  sse_stream(restinio::request_handle_t req, std::string request_id, std::uint64_t max_queued_bytes,
             header_list headers = {}, std::unique_ptr<sse_format> format = parley_sse_format());

  // conversation_subscriber overrides

  bool deliver(const conversation_event& e) override;

  /// The exchange is over. Returns false, doing nothing, when the stream never
  /// began: the caller answers the request the ordinary way.
  bool finish(const outcome<exchange_answer>& r);
  /// Sends `last` and ends the stream; false, doing nothing, when it never began.
  bool close_with(std::string last);
  /// Ends the stream with `p`; false, doing nothing, when it never began.
  bool fail(const problem& p);

  /// Ends an open stream with the format's restart event (the server is
  /// going away; the client resumes elsewhere from the last event id).
  void end_for_restart();

  /// Sends a comment line when nothing was written for `idle`. Returns false
  /// once the stream has ended (the ticker then forgets it).
  bool keep_alive(clock::time_point now, clock::duration idle);

  /// Makes the stream end after a run's `done` (a resumed run's stream,
  /// which no exchange finishes).
  void end_after_run();

 private:
  /// `declined`: it ended without beginning, its request answered plainly;
  /// every later attempt to end it says so again.
  enum class phase { waiting, open, ended, declined };
  using builder_t = restinio::response_builder_t<restinio::chunked_output_t>;

  /// Sends the headers; `run_id` names the run the stream shows, if any.
  void open(const std::string* run_id) REQUIRES(mutex_);
  void write(std::string bytes) REQUIRES(mutex_);
  void start_flush() REQUIRES(mutex_);
  void end_with(std::string last) REQUIRES(mutex_);
  /// Whether the stream began; one that never did is declined from now on.
  bool began() REQUIRES(mutex_);

  /// The last flush reached the socket (or failed); flushes what came meanwhile.
  void written();

  // Recursive: a flush on a connection that has closed may call written()
  // on the same thread, inside flush().
  recursive_mutex mutex_;
  restinio::request_handle_t req_;
  const std::string request_id_;
  const std::uint64_t max_queued_bytes_;
  const header_list headers_;
  const std::unique_ptr<sse_format> format_;
  phase phase_ GUARDED_BY(mutex_) = phase::waiting;
  bool ends_after_run_ GUARDED_BY(mutex_) = false;
  std::optional<builder_t> response_ GUARDED_BY(mutex_);
  clock::time_point last_write_ GUARDED_BY(mutex_);
  bool flushing_ GUARDED_BY(mutex_) = false;              // a flush is in flight
  std::uint64_t flushing_bytes_ GUARDED_BY(mutex_) = 0;   // what it carries
  std::uint64_t unflushed_bytes_ GUARDED_BY(mutex_) = 0;  // appended since
};

/// One event in the text/event-stream format: `event: NAME`, `data: JSON`.
std::string sse_event(const char* name, const std::string& json);

}  // namespace parley
