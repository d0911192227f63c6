#pragma once

// Internal to http/: includes RESTinio.

#include "actors/engine.hpp"
#include "http/responses.hpp"

#include <restinio/all.hpp>

#include <memory>
#include <optional>
#include <string>

namespace parley {

/// The answer to GET /v1/export: every conversation of the caller as NDJSON,
/// one `parley.conversation.v1` object per line, written a page of
/// conversations at a time. The next page is read only once the last one
/// has reached the socket, so what is held does not grow with the number of
/// conversations or with a slow reader. A failure before the first page is
/// an ordinary problem response; after it, the stream ends with a line
/// `{"error": problem}`.
///
/// Not shared between threads at once: each step (a page read, a flush)
/// starts the next only when it is done.
class export_stream final : public std::enable_shared_from_this<export_stream> {
 public:
  export_stream(call_context c, engine& eng, unsigned page_size);
  /// Reads the first page.
  void start();

 private:
  using builder_t = restinio::response_builder_t<restinio::chunked_output_t>;
  void read_next();
  void on_page(outcome<std::vector<conversation_export>> page);

  call_context c_;
  engine& engine_;
  const unsigned page_size_;
  std::string after_;  ///< the last conversation written
  std::optional<builder_t> response_;
};

}  // namespace parley
