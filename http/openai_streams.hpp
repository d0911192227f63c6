#pragma once

// Internal to http/: includes RESTinio. The streamed answers of the
// OpenAI-compatible routes, as formats of an sse_stream.

#include "http/openai_mapping.hpp"
#include "http/sse_stream.hpp"

#include <memory>
#include <string>

namespace parley {

/// `chat.completion.chunk`s, `data:` lines without event names: the role,
/// each delta, the finish reason, the usage when `include_usage`, then
/// `data: [DONE]`; a failure is `data: {"error": …}`. A delta whose
/// `message` points at a record takes the model from it (the one answering,
/// a fallback perhaps); `done` carries the finished reply.
std::unique_ptr<sse_format> chat_chunk_format(std::string id, unix_ms created, std::string model,
                                              bool include_usage);

/// The Responses API's events, each with its `sequence_number`:
/// `response.created` on the first event, `response.output_text.delta` per
/// delta, `response.output_text.done` and `response.completed` when the
/// reply is stored (`done`), `response.failed` on a failure. `base` holds
/// what the call asked (its id is the reply's), as it is when the first
/// event comes.
std::unique_ptr<sse_format> response_event_format(std::shared_ptr<const response_view> base);

}  // namespace parley
