#pragma once

// The conversation protocol: its atoms, the in-process types its messages
// carry, and the conversation actor's typed interface. Included only by the
// actors' sources and the headers they alone include.

#include "actors/completion.hpp"
#include "actors/requests.hpp"
#include "persistence/messages.hpp"
#include "providers/provider.hpp"

#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

namespace parley {

// Requests a conversation actor serves.
using create_atom = caf::atom_constant<caf::atom("create")>;
using update_atom = caf::atom_constant<caf::atom("update")>;
using delete_atom = caf::atom_constant<caf::atom("delete")>;
using history_atom = caf::atom_constant<caf::atom("history")>;
using send_atom = caf::atom_constant<caf::atom("send")>;
using edit_atom = caf::atom_constant<caf::atom("edit")>;
using remove_atom = caf::atom_constant<caf::atom("remove")>;
using regen_atom = caf::atom_constant<caf::atom("regen")>;
using fork_atom = caf::atom_constant<caf::atom("fork")>;
using watch_atom = caf::atom_constant<caf::atom("watch")>;
using unwatch_atom = caf::atom_constant<caf::atom("unwatch")>;
using resume_atom = caf::atom_constant<caf::atom("resume")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using compact_atom = caf::atom_constant<caf::atom("compact")>;
using changed_atom = caf::atom_constant<caf::atom("changed")>;
using halt_atom = caf::atom_constant<caf::atom("halt")>;

// What a conversation actor's provider and timers send it.
using delta_atom = caf::atom_constant<caf::atom("delta")>;
using generated_atom = caf::atom_constant<caf::atom("generated")>;
using deadline_atom = caf::atom_constant<caf::atom("deadline")>;
using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using idle_atom = caf::atom_constant<caf::atom("idle")>;
using passivate_atom = caf::atom_constant<caf::atom("passivate")>;

/// The branch that ends at a message, as a conversation needs it to continue
/// from there: its newest messages that fit a token budget, and its length.
struct loaded_branch {
  std::vector<message_record> recent;  ///< ascending seq, the branch's end last
  bool older_exist = false;            ///< the branch has messages before `recent`
  std::int64_t length = 0;             ///< messages from the root to the end
  std::int64_t end_children = 0;       ///< children of its end: where a new message goes
  /// The newest summary of messages on the branch (see compaction.cpp).
  std::optional<summary_record> summary;
};

/// A reply to produce again, as read: the message and, unless it ends the
/// active branch, the branch that ends at its parent, which the new reply continues.
struct regeneration {
  message_record target;
  std::optional<loaded_branch> base;
};

/// What deleting a message does to the active branch, as read before it.
struct removal {
  bool on_active_branch = false;
  /// Set when the message is the active leaf: the branch that becomes active.
  std::optional<loaded_branch> next_branch;
};

/// A conversation as loaded from the database: its row (none if it does not
/// exist) and its active branch.
struct loaded_conversation {
  std::optional<conversation_record> row;
  loaded_branch branch;
};

/// A read whose outcome completes `caller` directly from the reader.
template <class T>
std::shared_ptr<read_request> read_completing(std::function<outcome<T>(store&)> job,
                                              completion<T> caller) {
  struct completing final : read_request {
    completing(std::function<outcome<T>(store&)> j, completion<T> c)
        : job(std::move(j)), caller(std::move(c)) {}
    void run(store& db) override {
      auto result = job(db);
      if (result)
        caller.complete(std::move(*result));
      else
        caller.fail(result.error());
    }
    void fail(failure why) override { caller.fail(std::move(why)); }
    std::function<outcome<T>(store&)> job;
    completion<T> caller;
  };
  return std::make_shared<completing>(std::move(job), std::move(caller));
}

}  // namespace parley

// These only travel between actors of one process.
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::new_conversation)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::conversation_patch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::shared_text)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::send_params)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::regenerate_params)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::history_query)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::message_page)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::exchange_answer)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<parley::idempotency_claim>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::conversation_record)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<parley::conversation_record>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::message_record)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<parley::message_record>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::conversation_page)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<parley::idempotency_record>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<parley::usage_row>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::loaded_conversation)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::loaded_branch)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<parley::loaded_branch>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<parley::regeneration>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::removal)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::search_page)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<std::string>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<std::int64_t>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::fork_request)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::vector<parley::message_record>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::outcome<parley::completion_result>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<parley::conversation_cursor>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::done)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::shared_ptr<parley::conversation_subscriber>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::completion<parley::exchange_answer>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::completion<parley::conversation_record>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::completion<parley::message_record>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::completion<parley::message_page>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::completion<parley::done>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(std::optional<parley::run_position>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::completion<parley::summary_record>)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(parley::completion<parley::resume_outcome>)

namespace parley {

/// The conversation actor's interface, checked by the compiler: the requests
/// it serves (user id first, the completion it answers last), then what its
/// provider and its own timers send it.
using conversation_actor = caf::typed_actor<
    caf::reacts_to<create_atom, new_conversation, std::optional<idempotency_claim>,
                   completion<exchange_answer>>,
    caf::reacts_to<update_atom, std::string, conversation_patch, completion<conversation_record>>,
    caf::reacts_to<delete_atom, std::string, completion<done>>,
    caf::reacts_to<history_atom, std::string, history_query, completion<message_page>>,
    caf::reacts_to<send_atom, std::string, send_params, std::optional<idempotency_claim>,
                   completion<exchange_answer>>,
    caf::reacts_to<edit_atom, std::string, std::string, shared_text, completion<message_record>>,
    caf::reacts_to<remove_atom, std::string, std::string, completion<done>>,
    caf::reacts_to<regen_atom, std::string, regenerate_params, std::optional<idempotency_claim>,
                   completion<exchange_answer>>,
    caf::reacts_to<fork_atom, std::string, fork_request, std::optional<idempotency_claim>,
                   completion<exchange_answer>>,
    caf::reacts_to<watch_atom, std::string, std::shared_ptr<conversation_subscriber>,
                   completion<done>>,
    caf::reacts_to<unwatch_atom, std::shared_ptr<conversation_subscriber>>,
    caf::reacts_to<resume_atom, std::string, std::optional<run_position>,
                   std::shared_ptr<conversation_subscriber>, bool, completion<resume_outcome>>,
    caf::reacts_to<stop_atom, std::string, completion<message_record>>,
    caf::reacts_to<halt_atom, completion<message_record>>,
    caf::reacts_to<changed_atom, std::int64_t, completion<done>>,
    caf::reacts_to<compact_atom, std::string, std::optional<std::string>,
                   completion<summary_record>>,
    caf::reacts_to<delta_atom, std::uint64_t, std::string>,
    caf::reacts_to<generated_atom, std::uint64_t, outcome<completion_result>, std::string>,
    caf::reacts_to<cancel_atom, std::uint64_t>, caf::reacts_to<deadline_atom, std::uint64_t>,
    caf::reacts_to<idle_atom, bool>, caf::reacts_to<passivate_atom>>;

}  // namespace parley
