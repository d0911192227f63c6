#pragma once

#include "actors/completion.hpp"
#include "actors/requests.hpp"
#include "config/settings.hpp"
#include "persistence/store.hpp"
#include "providers/model_registry.hpp"

#include <functional>
#include <memory>

namespace parley {

/// The conversation engine behind a plain C++ interface, so callers (the HTTP
/// layer, tests, benchmarks) need no CAF headers. Every call returns at once;
/// the work runs on actors and the answer arrives through the callback
/// (reply_fn: once, from any thread, possibly before the call returns).
/// All methods are thread-safe. `user_id` is the caller: another user's
/// conversation is answered exactly as a missing one (errc::not_found).
class engine {
 public:
  /// Starts the actor system, connects and migrates the database, spawns the
  /// persistence actors. Throws store_error when the database is unreachable.
  /// `stores` gives the persistence actors their connections: by default the
  /// database at cfg.database.url (tests pass one that fails on purpose).
  /// `clock` is the only time the engine reads: by default the machine's
  /// (tests pass a manual_clock and move it themselves).
  static std::unique_ptr<engine> start(const settings& cfg,
                                       std::shared_ptr<const model_registry> models,
                                       store_factory stores = {},
                                       std::shared_ptr<const engine_clock> clock = {});

  /// Applies the schema and returns (`parley migrate`). Throws store_error.
  static void migrate(const settings& cfg);

  virtual ~engine() = default;

  virtual const model_registry& models() const = 0;

  // --- conversations ---
  virtual void create_conversation(new_conversation request, std::optional<idempotency_claim> claim,
                                   reply_fn<exchange_answer> reply) = 0;
  virtual void get_conversation(std::string user_id, std::string id,
                                reply_fn<conversation_record> reply) = 0;
  virtual void list_conversations(std::string user_id, unsigned limit,
                                  std::optional<conversation_cursor> after,
                                  reply_fn<conversation_page> reply) = 0;
  virtual void update_conversation(std::string user_id, std::string id, conversation_patch patch,
                                   reply_fn<conversation_record> reply) = 0;
  virtual void delete_conversation(std::string user_id, std::string id, reply_fn<done> reply) = 0;

  // --- messages ---
  virtual void list_messages(std::string user_id, std::string id, history_query query,
                             reply_fn<message_page> reply) = 0;
  virtual void send_message(std::string user_id, std::string id, send_params params,
                            std::optional<idempotency_claim> claim,
                            reply_fn<exchange_answer> reply) = 0;
  virtual void edit_message(std::string user_id, std::string id, std::string message_id,
                            shared_text content, reply_fn<message_record> reply) = 0;
  virtual void delete_message(std::string user_id, std::string id, std::string message_id,
                              reply_fn<done> reply) = 0;
  virtual void regenerate(std::string user_id, std::string id, regenerate_params params,
                          std::optional<idempotency_claim> claim,
                          reply_fn<exchange_answer> reply) = 0;
  /// A new conversation of the same user holding copies of the branch that
  /// ends at request.message_id; the answer carries it as `conversation`.
  virtual void fork_conversation(std::string user_id, std::string id, fork_request request,
                                 std::optional<idempotency_claim> claim,
                                 reply_fn<exchange_answer> reply) = 0;

  // --- context compaction ---
  /// The conversation's summaries, every branch's, oldest first.
  virtual void list_summaries(std::string user_id, std::string id,
                              reply_fn<std::vector<summary_record>> reply) = 0;
  /// Summarizes all but the conversation's newest messages now, by `model`
  /// (a known alias; by default context.summary_model, else the
  /// conversation's): the new summary; errc::conflict when nothing would be
  /// folded, a provider failure when the summary failed.
  virtual void compact(std::string user_id, std::string id, std::optional<std::string> model,
                       reply_fn<summary_record> reply) = 0;

  // --- export and import ---
  /// The conversation with every message of its tree (`whole_tree`) or of
  /// its active branch, in seq order.
  virtual void export_conversation(std::string user_id, std::string id, bool whole_tree,
                                   reply_fn<conversation_export> reply) = 0;
  /// Up to `limit` of the user's conversations with an id above `after` (all
  /// when empty), in id order, each with its whole tree.
  virtual void export_page(std::string user_id, std::string after, unsigned limit,
                           reply_fn<std::vector<conversation_export>> reply) = 0;
  /// Stores every conversation `next` reads, for the user, through the
  /// writer: a source imported before is skipped, a conversation `next`
  /// cannot read is counted as an error and the rest go on. Fails (with what
  /// was committed so far kept) only when the database does.
  virtual void import_conversations(std::string user_id, import_reader next,
                                    reply_fn<import_summary> reply) = 0;

  // --- the OpenAI-compatible calls ---
  /// Asks the model (then its fallbacks) outside any exchange, on an actor
  /// of its own; stores only the usage (see stateless_request).
  virtual void complete(stateless_request request, reply_fn<stateless_result> reply) = 0;
  /// The message `message_id` wherever it is stored, when the user owns its
  /// conversation; errc::not_found otherwise.
  virtual void locate_message(std::string user_id, std::string message_id,
                              reply_fn<located_message> reply) = 0;

  // --- live subscribers ---
  /// Adds `s` to the clients watching the conversation: from now on it gets
  /// every exchange's message, delta and done events, whoever started it.
  /// The conversation's actor stays live while it has subscribers.
  virtual void watch(std::string user_id, std::string id,
                     std::shared_ptr<conversation_subscriber> s, reply_fn<done> reply) = 0;
  /// Forgets `s` (its client went away). Nothing happens if it was not watching.
  virtual void unwatch(const std::string& id, std::shared_ptr<conversation_subscriber> s) = 0;

  // --- runs (resumable streams) ---
  /// Delivers to `s` the events of the run at `from` after its position, or
  /// those of the running exchange from its start; with `follow`, also the
  /// rest as they come, until its `done` or `failed`. A run no longer held
  /// in memory is answered from the database: its stored reply as `done`, or
  /// as `failed` naming the stored input when the reply never came.
  /// errc::not_found for a run that is unknown, expired or another
  /// conversation's; resume_outcome::idle when there is nothing to deliver.
  virtual void resume(std::string user_id, std::string id, std::optional<run_position> from,
                      std::shared_ptr<conversation_subscriber> s, bool follow,
                      reply_fn<resume_outcome> reply) = 0;
  /// Stops the conversation's running exchange; answers with its reply,
  /// stored with the text produced so far (finish_reason cancelled), or
  /// errc::conflict when nothing is running.
  virtual void cancel_exchange(std::string user_id, std::string id,
                               reply_fn<message_record> reply) = 0;

  // --- everything else ---
  /// What is stored for an Idempotency-Key. The exchanges look their key up
  /// themselves; this serves a repeat that waits for a reply still being
  /// written, one that lost a race with another process, and one whose
  /// conversation is gone.
  virtual void find_idempotency(std::string user_id, std::string key,
                                reply_fn<std::optional<idempotency_record>> reply) = 0;
  virtual void usage(std::string user_id, std::string from_day, std::string to_day,
                     reply_fn<std::vector<usage_row>> reply) = 0;
  /// A page of request.user_id's messages and titles that match, best first.
  virtual void search(search_request request, reply_fn<search_page> reply) = 0;
  /// Succeeds when the database answers.
  virtual void check_ready(reply_fn<done> reply) = 0;

  /// Tells every exchange running now to stop and store what it has (as
  /// POST …/cancel does), for a shutdown that cannot wait for them.
  virtual void cancel_running() = 0;

  /// Exchanges that ask a model running now.
  virtual std::size_t running_exchanges() const = 0;

  /// Conversation actors alive now.
  virtual std::size_t live_conversations() const = 0;

  /// Commits every pending write and stops all actors. Blocks; call once, after
  /// the HTTP server has stopped handing in work.
  virtual void shutdown() = 0;
};

}  // namespace parley
