#include "providers/sse_parser.hpp"

namespace parley {

void sse_parser::feed(std::string_view chunk) {
  for (char c : chunk) {
    if (c == '\n' && after_cr_) {
      after_cr_ = false;  // the second half of a CRLF split across two chunks
      continue;
    }
    after_cr_ = c == '\r';
    if (c == '\r' || c == '\n')
      take_line();
    else
      line_ += c;
  }
}

void sse_parser::take_line() {
  if (line_.empty()) {
    // A blank line dispatches the event; one without data is dropped.
    if (has_data_) {
      if (event_.name.empty()) event_.name = "message";
      on_event_(event_);
    }
    event_ = {};
    has_data_ = false;
    return;
  }
  if (line_.front() == ':') {
    line_.clear();
    return;
  }
  std::string_view line = line_;
  auto colon = line.find(':');
  auto field = line.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = line.substr(colon + 1);
    if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_) event_.data += '\n';
    event_.data += value;
    has_data_ = true;
  } else if (field == "event") {
    event_.name = value;
  }
  line_.clear();
}

}  // namespace parley
