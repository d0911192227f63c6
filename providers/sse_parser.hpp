#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace parley {

/// One server-sent event: its `event:` name ("message" when absent) and its
/// `data:` lines joined with '\n'.
struct sse_event {
  std::string name;
  std::string data;
};

/// An incremental parser of a text/event-stream body (the WHATWG rules): feed
/// it the body in pieces split anywhere, even inside a line or a CRLF, and it
/// calls `on_event` for each complete event. Comments, `id:` and `retry:` are
/// skipped. Not thread-safe; one per stream.
class sse_parser {
 public:
  explicit sse_parser(std::function<void(sse_event&)> on_event) : on_event_(std::move(on_event)) {}

  void feed(std::string_view chunk);

  /// Bytes held for an unfinished line, so a caller can bound a stream that
  /// never ends its lines.
  std::size_t pending_bytes() const { return line_.size(); }

 private:
  void take_line();

  std::function<void(sse_event&)> on_event_;
  std::string line_;
  sse_event event_;
  bool has_data_ = false;
  bool after_cr_ = false;  ///< the last byte was CR, so a following LF ends nothing
};

}  // namespace parley
