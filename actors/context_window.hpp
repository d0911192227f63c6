#pragma once

#include "persistence/records.hpp"
#include "providers/provider.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace parley {

/// A summary that stands in for a branch's messages from its root through
/// the one numbered `through_seq`: the prompt sends `message` instead.
struct summary_cover {
  chat_message message;
  std::int64_t through_seq = 0;
};

/// One message of the window, as its owner reads it: valid until the window
/// next changes.
struct window_entry {
  const std::string& id;
  std::int64_t seq;
  const chat_message& message;  ///< role, shared text and token estimate
};

/// The most recent messages of a conversation that fit a token budget, oldest
/// first. Pure logic, no I/O: the owner reloads it from the database when
/// `needs_refill()` says older messages might fit now.
///
/// Rule: the newest message is always kept (a provider needs something to
/// answer); every older message is kept only while the running total fits.
///
/// The messages are kept in the form a prompt takes and are shared with the
/// prompts built from them, so that a turn costs the same however long the
/// window is: a prompt copies nothing, and the window copies its messages
/// (pointers to their text) only when it changes while a prompt still holds
/// them, which a provider that is done with its request does not.
class context_window {
 public:
  /// Replaces the contents with `recent` (ascending seq, the newest last) and
  /// drops the oldest that do not fit. `older_exist` says whether messages
  /// older than `recent` exist in the database.
  void reset(const std::vector<message_record>& recent, std::int64_t budget, bool older_exist);

  /// Adds the newest message and drops the oldest that no longer fit.
  void append(const message_record& m);

  /// New content for a message; false if it is not in the window.
  bool edit(const std::string& id, const shared_text& content);

  /// Removes a message; false if it is not in the window.
  bool remove(const std::string& id);

  /// A new token budget (the model or the system prompt changed).
  void set_budget(std::int64_t budget);

  /// True when messages left out earlier might fit now (an edit shrank one,
  /// one was deleted, the budget grew): the owner should reload.
  bool needs_refill() const { return needs_refill_; }

  /// The provider's input: the system prompt (if any), then the window.
  prompt assemble(const std::optional<std::string>& system_prompt) const;

  /// The provider's input as it would be with `pending` appended and the message
  /// `skip_id` removed, by the same rule within `budget` (at most the window's:
  /// a model with a smaller window gets fewer messages), without changing the
  /// window. Costs the messages it leaves out, not the ones it keeps. With
  /// a `summary`, the messages it covers are left out and it comes after the
  /// system prompt, its tokens taken from the budget.
  prompt assemble_with(const std::optional<std::string>& system_prompt,
                       const message_record* pending, const std::string* skip_id,
                       std::int64_t budget, const summary_cover* summary = nullptr) const;

  std::size_t size() const { return keys_.size() - first_; }
  bool empty() const { return size() == 0; }
  /// The i-th message, oldest first.
  window_entry at(std::size_t i) const;
  window_entry front() const { return at(0); }
  window_entry back() const { return at(size() - 1); }
  std::int64_t tokens() const { return tokens_; }
  std::int64_t budget() const { return budget_; }

 private:
  struct key {
    std::string id;
    std::int64_t seq = 0;
  };

  /// The messages, to change: copied first if a prompt still holds them.
  prompt::history& own_messages();
  /// The position of message `id` in keys_ and messages_, if in the window.
  std::optional<std::size_t> find(const std::string& id) const;
  void push(const message_record& m);
  void trim();
  void mark_refill_if_room();
  /// The system prompt as a prompt message, kept from one turn to the next
  /// while it stays the same.
  const chat_message& system_message(const std::string& system_prompt) const;

  // keys_[i] names (*messages_)[i]; the first first_ of both have been
  // trimmed and are dropped in bulk, so that trimming one is O(1).
  std::vector<key> keys_;
  std::shared_ptr<prompt::history> messages_ = std::make_shared<prompt::history>();
  std::size_t first_ = 0;
  std::int64_t tokens_ = 0;  ///< estimates of the messages from first_ on, summed
  std::int64_t budget_ = 0;
  bool older_exist_ = false;
  bool needs_refill_ = false;
  mutable std::optional<chat_message> system_;
};

/// The tokens a conversation's messages may use: the model's context window
/// less its reply allowance and less the system prompt, never below zero.
std::int64_t message_budget(std::int64_t context_budget,
                            const std::optional<std::string>& system_prompt);

}  // namespace parley
