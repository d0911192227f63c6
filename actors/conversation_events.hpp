#pragma once

// What a conversation tells the clients that watch it live. No CAF here: the
// HTTP layer implements the subscribers (an SSE stream, a WebSocket).

#include "base/errors.hpp"
#include "persistence/records.hpp"

#include <optional>
#include <string>

namespace parley {

struct conversation_event {
  enum class kind {
    started,  ///< the request's own stream only: its exchange has begun
    message,  ///< a message was stored (`message`)
    delta,    ///< the next piece of the reply being generated (`text`)
    done,     ///< the reply was stored (`message`)
    failed,   ///< the exchange failed (`reason`); not sent to watchers, whose clients did not ask
    compaction,  ///< the exchange summarized older messages first (`summary`)
    branch,      ///< another branch became the active one (`active_leaf_id`)
    closed,      ///< nothing more will come: deleted or dropped (`reason`)
    edited,      ///< a stored message's content changed (`message`)
    removed,     ///< a message was deleted (`text`: its id)
  };
  kind type = kind::message;
  const message_record* message = nullptr;
  std::string text;
  std::optional<std::string> active_leaf_id;  ///< none: the conversation is empty
  std::optional<failure> reason;
  const summary_record* summary = nullptr;
  /// The run the event belongs to (an exchange that asks a model) and its
  /// number in it, 1, 2, …: what a client resumes from. None outside runs.
  const std::string* run_id = nullptr;
  std::uint64_t n = 0;
};

/// Where a client resumes a run: after its event `after` (0: from the start).
struct run_position {
  std::string run_id;
  std::uint64_t after = 0;
};

/// What a resume found. Failures (an unknown run: not_found) come as errors.
enum class resume_outcome {
  streaming,  ///< events were or will be delivered, ending with done or failed
  idle,       ///< nothing is running, or the named run has nothing after `after`
  not_held,   ///< the named run is not in memory (the engine then asks the database)
};

/// A client watching a conversation. The conversation's actor calls deliver()
/// in order and never concurrently for one subscriber; it must not block (the
/// implementation queues the bytes on its connection). Returns false once the
/// client is gone or too slow, and the actor then forgets it; when the
/// exchange's own stream does so, its generation is called off as if the
/// client had hung up.
class conversation_subscriber {
 public:
  virtual ~conversation_subscriber() = default;
  virtual bool deliver(const conversation_event& e) = 0;
};

}  // namespace parley
