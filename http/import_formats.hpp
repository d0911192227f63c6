#pragma once

// The formats POST /v1/import reads: Parley's own `parley.conversation.v1`
// (one object, or NDJSON of them) and ChatGPT's `conversations.json` (an
// array). Pure functions: no I/O, no engine. The body is read one
// conversation at a time, so parsing holds one conversation's tree, never
// the whole body's.

#include "actors/requests.hpp"
#include "providers/model_registry.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace parley {

/// The top-level values of an import body, one at a time, as text: the
/// elements of a JSON array, the lines of NDJSON, or a single object.
class import_splitter {
 public:
  /// `body` must outlive the splitter. `ndjson`: one value per line.
  import_splitter(std::string_view body, bool ndjson);

  /// The next value's text, or nothing at the end. A body that is not an
  /// array, an object or NDJSON yields one value that will not parse.
  std::optional<std::string_view> next();

 private:
  std::string_view body_;
  std::size_t at_ = 0;
  bool ndjson_;
  bool in_array_ = false;
  bool done_ = false;
};

/// What converting an imported conversation needs to know.
struct import_context {
  std::string user_id;
  unix_ms now = 0;  ///< the import's time: what stands in for times an entry lacks
  const model_registry* models = nullptr;  ///< unknown model aliases become the default
};

/// One conversation, in either format, converted for `ctx.user_id` with new
/// ids; or why it cannot be imported.
outcome<imported_conversation> import_conversation(std::string_view text,
                                                   const import_context& ctx);

/// The conversations of `body`, in order, read as they are asked for. `body`
/// must outlive the reader (the caller keeps the request).
import_reader read_import(std::string_view body, bool ndjson, import_context ctx);

}  // namespace parley
