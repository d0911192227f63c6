#pragma once

// The conversation actor's parts, shared by its source files (conversation_*.cpp,
// generation.cpp, exchange.cpp) and by nothing else: the state it keeps and
// the steps its operations are made of. See conversation_actor.hpp for the protocol.

#include "actors/context_window.hpp"
#include "actors/conversation_actor.hpp"
#include "actors/messages.hpp"
#include "persistence/caf_errors.hpp"

#include <caf/duration.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include <chrono>
#include <functional>
#include <list>
#include <optional>

namespace parley::conversation_detail {

using steady_time = std::chrono::steady_clock::time_point;

// --- state --------------------------------------------------------------------

enum class phase {
  loading,   ///< reading the conversation from the database
  creating,  ///< new: waiting for its create request
  ready,
  gone,  ///< deleted, missing, or its state can no longer be trusted
};

/// An operation waiting its turn, with the caller to fail if it never runs.
struct queued_op {
  std::function<void()> run;
  reply_slot caller;
};

/// A message the actor sends itself at a time, kept by the engine's deadline
/// sweeper: a CAF timer would wake CAF's clock thread twice, when set and
/// when it fires. Withdrawn when dropped (its occasion passed, the actor is
/// gone). Made by alarm_at and alarm_after.
class deadline_alarm {
 public:
  deadline_alarm() = default;
  explicit deadline_alarm(std::shared_ptr<pending_answer> alarm) : alarm_(std::move(alarm)) {}
  deadline_alarm(deadline_alarm&&) noexcept = default;
  deadline_alarm& operator=(deadline_alarm&& other) noexcept {
    reset();
    alarm_ = std::move(other.alarm_);
    return *this;
  }
  ~deadline_alarm() { reset(); }
  void reset() {
    if (alarm_) std::exchange(alarm_, nullptr)->withdraw();
  }

 private:
  std::shared_ptr<pending_answer> alarm_;
};

/// The generation in progress (one at a time: operations are serialized).
struct active_generation {
  std::uint64_t id = 0;
  std::string text;
  std::shared_ptr<completion_handle> handle;
  std::shared_ptr<conversation_subscriber> stream;  ///< the exchange's own, if it streams
  bool live = false;  ///< deltas go to the stream and the watchers as they come
  /// The client's hanging up (or being cut off) stops it: on_disconnect = cancel.
  bool cancel_when_gone = false;
  std::function<void(outcome<completion_result>, std::string)> then;
  deadline_alarm alarm;
};

/// A summary as a branch's prompts use it: its record and the message they
/// send instead of what it covers, made once rather than for every prompt.
struct branch_summary {
  explicit branch_summary(summary_record r);
  summary_record record;
  summary_cover cover;
};

/// An event of a run as kept for clients that resume it. Deltas in a row
/// are kept as one entry, their text joined, so that a long reply costs its
/// text and four bytes a piece, not an event each.
struct run_entry {
  conversation_event::kind type = conversation_event::kind::message;
  std::uint64_t n = 0;  ///< its number; for deltas, the last one's
  std::optional<message_record> message;
  std::optional<failure> reason;
  std::optional<summary_record> summary;
  std::string text;                 ///< deltas: their text
  std::vector<std::uint32_t> ends;  ///< deltas: where each one ends in `text`
};

/// One exchange that asks a model, from its start to its done or failed
/// event, kept `streams.retention_s` after it ends (see runs.cpp).
struct run_log {
  std::string id;  ///< the run's, which is also its reply's id
  unix_ms started_at = 0;
  std::uint64_t last_n = 0;
  /// Some client got an event of it (its own stream, a watcher, a
  /// follower): only such a run is kept, since only its clients know its ids.
  bool seen = false;
  std::vector<run_entry> entries;
  bool ended = false;
  steady_time expires;  ///< once ended
  /// POST …/cancel was asked: the reply is stored with what was produced.
  bool cancel_requested = false;
  /// Clients that resumed the run while it ran: they get its events to the end.
  std::vector<std::shared_ptr<conversation_subscriber>> followers;
  /// Each watcher with the number of the run's last event when it began
  /// watching (0: before the run began): a watcher that resumes the run is
  /// replayed only what it did not get live.
  std::vector<std::pair<const conversation_subscriber*, std::uint64_t>> watching_since;
  /// Watchers that resumed the run while it ran: watchers get no `failed`
  /// event, these do.
  std::vector<std::shared_ptr<conversation_subscriber>> resumed_watchers;
  /// Callers of POST …/cancel, answered with the stored reply.
  std::vector<completion<message_record>> cancellers;
  /// Keeps the run listed in engine_context::running while it runs.
  std::shared_ptr<void> listing;
};

struct conversation_state {
  static inline const char* name = "parley.conversation";
  engine_context* ctx = nullptr;
  std::string id;
  phase current = phase::loading;
  conversation_record meta;
  context_window window;
  /// The summary the active branch's prompts start with.
  std::optional<branch_summary> summary;
  bool busy = false;  ///< an operation is running (or the actor is loading)
  /// A list, not a deque: most actors never queue, and an empty libstdc++
  /// deque still holds about 0.6 KiB.
  std::list<queued_op> queue;
  /// The operation running now, kept so that it can run again after a reload
  /// when another Parley process changed the conversation meanwhile.
  std::function<void()> running;
  unsigned conflict_retries = 0;
  std::optional<active_generation> generation;
  std::uint64_t generations_started = 0;
  steady_time last_active;
  deadline_alarm idle_check;
  /// Clients watching every exchange (WebSockets). While there are any the
  /// actor is not passivated.
  std::vector<std::shared_ptr<conversation_subscriber>> watchers;
  /// The runs still held, oldest first; the last one may be running.
  std::list<run_log> runs;
  /// Another instance's change is queued to be read (one at a time), at
  /// the newest version told of (see op_refresh).
  bool refresh_queued = false;
  std::int64_t refresh_version = 0;
};

using self_ptr = conversation_actor::stateful_pointer<conversation_state>;

/// How long the actor waits for the persistence actors: they bound each store
/// call by database.timeout_ms and answer every request (a write after the
/// batches ahead of it), so no timer of its own (one per write would wake
/// CAF's clock thread for every send). The request's deadline, in the
/// sweeper, still bounds what its client waits.
const caf::duration persistence_wait = caf::infinite;

/// How often an operation is reloaded and run again when its write finds the
/// conversation changed by another process, before the conflict is answered:
/// enough for two instances sharing a conversation under load
/// (bench/scenarios/scale-out.sh, "hot": no 409 at 8, 1.8 % of sends at 3).
constexpr unsigned max_conflict_retries = 8;

// --- the conversation's model (conversation_loader.cpp) ---------------------------

const model_info& model_of(const engine_context& ctx, const std::string& alias);
/// The tokens of history that fit the conversation's model next to its system prompt.
std::int64_t budget_for(const engine_context& ctx, const conversation_record& meta);

// --- the operation queue and passivation (conversation_lifecycle.cpp) -------------

/// Tells every watcher, and the exchange's own stream if any, about `e`;
/// watchers that are gone are forgotten. During a run, its events are
/// numbered, kept, and sent to the clients that resumed it too. False when
/// the own stream refused `e`: its client is gone or was cut off for
/// reading too slowly.
bool publish(self_ptr self, conversation_event e,
             const std::shared_ptr<conversation_subscriber>& own);
void publish_message(self_ptr self, conversation_event::kind type, const message_record& m,
                     const std::shared_ptr<conversation_subscriber>& own);
/// Tells every watcher which branch is active now.
void publish_branch(self_ptr self);
/// Tells the watchers `e` and no one else (no run, no stream of its own).
void tell_watchers(self_ptr self, const conversation_event& e);
/// Ends every watcher's subscription, and the run in progress, telling them why.
void close_watchers(self_ptr self, const failure& why);

/// Sends the actor `to` `message` once `sweeper`'s clock reads `at` (or the
/// engine stops: nothing that waits on an alarm may wait forever).
deadline_alarm alarm_to(deadline_sweeper& sweeper, caf::actor_addr to, steady_time at,
                        caf::message message);
/// The same for the conversation actor `self`.
deadline_alarm alarm_at(self_ptr self, steady_time at, caf::message message);
/// The same after `delay`, for alarms that all wait as long (one list in the
/// sweeper, O(1) to add).
deadline_alarm alarm_after(self_ptr self, std::chrono::milliseconds delay, caf::message message);

void passivate(self_ptr self);
/// Gives up on the conversation's state (a write failed, so memory and database
/// may disagree): fails everything queued and passivates; the next request
/// loads the truth from the database.
void abandon(self_ptr self, const failure& why);
/// Ends the running operation; the next queued one starts from the mailbox so
/// that deep chains of synchronous operations cannot recurse.
void finish_op(self_ptr self);
void start_next(self_ptr self);
/// Runs `run` now if nothing else is running, else queues it (up to the
/// limit, unless not `limited`: the engine's own refresh, one at a time,
/// never takes a client's place).
void enqueue(self_ptr self, const reply_slot& caller, std::function<void()> run,
             bool limited = true);
/// True (and answers not_found) when `user` may not see this conversation.
bool foreign(self_ptr self, const std::string& user, const reply_slot& caller);

// --- runs (runs.cpp) -------------------------------------------------------------------

/// The run in progress, if any.
run_log* current_run(conversation_state& st);
/// Starts the run whose reply will be stored as `reply_id`. A run left
/// unfinished (its operation is starting over) is dropped.
void begin_run(self_ptr self, const std::string& reply_id);
/// Notes that watcher `s` gets the running run's events from now on.
void watching_run(conversation_state& st, const conversation_subscriber* s);
/// Forgets watcher `s` in every run (it stopped watching).
void stopped_watching(conversation_state& st, const conversation_subscriber* s);
/// Numbers `e` and sends it to the run's followers; keeps it once the run
/// has been seen (`audience`: a client other than the followers gets it).
void record_in_run(run_log& run, conversation_event& e, bool audience);
/// The run ended with its `done` (`reply`) or `failed` (`why`) event,
/// already published: answers those who asked to cancel it.
void end_run(self_ptr self, const message_record* reply, const failure* why);
/// Ends the run in progress without a last event (the conversation's state
/// is given up): its followers and cancellers get `why`.
void abandon_run(self_ptr self, const failure& why);
/// Delivers the events of the run at `from` after its position (or of the
/// running one from its start) to `s`; with `follow`, also the rest as they
/// come. Without, `s` is a watcher: it is replayed only what it did not get
/// live, and the run's failure (as it fails, or at once when it has). Answers not_held when the
/// named run is not in memory: the caller then looks in the database.
void resume_run(self_ptr self, const std::optional<run_position>& from,
                const std::shared_ptr<conversation_subscriber>& s, bool follow,
                const completion<resume_outcome>& caller);
/// POST …/cancel: stops the running exchange's model; `caller` gets the
/// stored reply, or a conflict when nothing runs.
void cancel_run(self_ptr self, const completion<message_record>& caller);

/// The tokens per day `user` may still use (limits.tokens_per_day): answers
/// `caller` with 429 and ends the operation when the limit is reached, runs
/// `then` otherwise (exchange.cpp).
void check_token_quota(self_ptr self, const std::string& user, reply_slot caller,
                       std::function<void()> then);

// --- context compaction (compaction.cpp) -------------------------------------------------

/// Whether the conversation's context is summarized rather than truncated.
bool summarizes(const engine_context& ctx, const conversation_record& meta);
/// The newest summary of messages on the branch that ends at `leaf`, if
/// any. Runs on a reader.
std::optional<summary_record> summary_on_branch(store& db, const std::string& conversation_id,
                                                const std::optional<std::string>& leaf);
/// The model that writes the conversation's summaries: context.summary_model,
/// else the conversation's.
const model_info& summarizer_for(const engine_context& ctx, const conversation_record& meta);
/// Tells the watchers, the run and `own` that summary `s` was made.
void publish_compaction(self_ptr self, const summary_record& s,
                        const std::shared_ptr<conversation_subscriber>& own);
/// The summary a branch read from the database uses, if any.
std::optional<branch_summary> use_summary(std::optional<summary_record> read);

/// The branch a compaction works on, as an exchange continues it.
struct compaction_input {
  const context_window* window = nullptr;
  const std::optional<branch_summary>* current_summary = nullptr;
  const message_record* pending = nullptr;  ///< the message being sent, not yet in the window
  const std::string* skip_id = nullptr;     ///< regenerate's reply to replace
  std::int64_t budget = 0;                  ///< for the messages, in the reply's model
};

/// Summarizes the oldest messages of `input` when its prompt would exceed
/// context.summarize_at of the budget (always, with `force`), keeping the
/// newest context.keep_recent_tokens verbatim, by `model` then its
/// fallbacks until `deadline`, and commits the summary with its usage.
/// `then` gets the new summary, none when there was nothing to fold, or
/// why the summary failed (the caller goes on without it: it is never
/// used). A failed commit answers `caller` and abandons, as commit() does.
void compact(self_ptr self, const compaction_input& input, const model_info& model, bool force,
             steady_time deadline, std::shared_ptr<cancellation> cancel, reply_slot caller,
             std::function<void(outcome<std::optional<branch_summary>>)> then);

// --- the database (conversation_loader.cpp) ------------------------------------------

/// Reads the branch that ends at `leaf` (none: the empty conversation): its
/// newest messages that fit `budget`, its newest summary, and its length
/// when `count_length` (which walks the whole branch). Runs on a reader.
loaded_branch load_branch(store& db, const std::string& conversation_id,
                          const std::optional<std::string>& leaf, std::int64_t budget,
                          bool count_length);

/// (Re)reads the conversation and its window from the database, then runs
/// `then` with the window's messages as read; `failed` gets what went wrong
/// (not_found when it is gone).
void load_state(self_ptr self, std::function<void(const std::vector<message_record>&)> then,
                std::function<void(const failure&)> failed);
/// Commits `writes`; on success runs `then`. When another process changed the
/// conversation meanwhile, reloads it and runs the operation again (its reply
/// must be built on the history as it now is); on any other failure answers
/// `caller` and abandons.
void commit(self_ptr self, write_set writes, reply_slot caller, std::function<void()> then);
/// Reloads the window when older messages might fit again (an edit, a
/// deletion, a larger budget), then runs `then`.
void ensure_window(self_ptr self, const reply_slot& caller, std::function<void()> then);

/// Runs `job` on a reader; on failure answers `caller`, ends the operation.
template <class T>
void read(self_ptr self, std::function<T(store&)> job, reply_slot caller,
          std::function<void(T&)> then) {
  read_job wrapped = [job](store& db) { return caf::make_message(job(db)); };
  self->request(self->state.ctx->db.readers, persistence_wait, read_atom::value, std::move(wrapped))
      .then([=](T& value) { then(value); },
            [=](caf::error& e) {
              // A new conversation that cannot go on is dropped, not left half-made.
              if (self->state.current == phase::creating) self->state.current = phase::gone;
              caller.fail(to_failure(e, errc::db_unavailable));
              finish_op(self);
            });
}

// --- generation (generation.cpp) -------------------------------------------------------

struct sampling {
  std::optional<double> temperature;
  std::optional<std::uint32_t> max_tokens;
};

/// Asks `model` for a reply to `messages`; `then` gets the outcome and the text.
/// The generation is given up at `deadline`.
void generate(self_ptr self, const model_info& model, prompt messages, const sampling& params,
              steady_time deadline, const std::shared_ptr<cancellation>& cancel,
              const std::shared_ptr<conversation_subscriber>& stream, bool live,
              std::function<void(outcome<completion_result>, std::string)> then);
/// The provider's messages about generation `gen`: a piece of text, the end
/// (with the text gathered where nobody read it live), the client hanging up,
/// the deadline.
void on_delta(self_ptr self, std::uint64_t gen, std::string& text);
void on_generated(self_ptr self, std::uint64_t gen, outcome<completion_result>& result,
                  std::string& gathered);
void on_cancel(self_ptr self, std::uint64_t gen);
void on_deadline(self_ptr self, std::uint64_t gen);

// --- the operations (exchange.cpp, conversation_ops.cpp) ---------------------------------

void op_create(self_ptr self, new_conversation request, std::optional<idempotency_claim> claim,
               const completion<exchange_answer>& caller);
void op_send(self_ptr self, const std::string& user, const send_params& p,
             const std::optional<idempotency_claim>& claim,
             const completion<exchange_answer>& caller);
void op_regenerate(self_ptr self, const std::string& user, const regenerate_params& p,
                   const std::optional<idempotency_claim>& claim,
                   const completion<exchange_answer>& caller);
/// Copies the branch ending at request.message_id into a new conversation.
void op_fork(self_ptr self, const std::string& user, const fork_request& request,
             const std::optional<idempotency_claim>& claim,
             const completion<exchange_answer>& caller);
void op_update(self_ptr self, const std::string& user, const conversation_patch& patch,
               const completion<conversation_record>& caller);
void op_delete(self_ptr self, const std::string& user, const completion<done>& caller);
/// POST …/compact: summarizes all but the newest keep_recent_tokens now
/// (compaction.cpp); a conflict when nothing would be folded.
void op_compact(self_ptr self, const std::string& user, const std::optional<std::string>& model,
                const completion<summary_record>& caller);
void op_edit(self_ptr self, const std::string& user, const std::string& message_id,
             const shared_text& content, const completion<message_record>& caller);
void op_remove(self_ptr self, const std::string& user, const std::string& message_id,
               const completion<done>& caller);
/// Another Parley instance changed the conversation (state.refresh_version:
/// its row is at that version now; 0: perhaps, after a break in listening;
/// -1: deleted): passivates when nobody watches and nothing waits;
/// otherwise reloads what changed and tells the watchers as the writing
/// instance told its own, deltas aside.
void op_refresh(self_ptr self, const completion<done>& caller);
/// Reloads the conversation (load_state) and tells its watchers, if any,
/// what another instance changed since they were last told; then `then`.
/// A read that fails answers `caller` and ends the operation.
void reload_telling_watchers(self_ptr self, const reply_slot& caller, std::function<void()> then,
                             std::function<void(const failure&)> failed);
/// Answers a history request: the reader answers the requester directly. The
/// database holds every acknowledged write, so this need not wait its turn.
void answer_history(self_ptr self, const std::string& user, const history_query& q,
                    const completion<message_page>& caller);

}  // namespace parley::conversation_detail
