#pragma once

#include "persistence/records.hpp"
#include "providers/provider.hpp"

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

namespace parley {

/// One message as the context window keeps it.
struct window_entry {
  std::string id;
  std::int64_t seq = 0;
  std::string role;
  shared_text content;      ///< shared with the message's record and every prompt
  std::int64_t tokens = 0;  ///< estimate_message_tokens(content), computed once
};

/// The most recent messages of a conversation that fit a token budget, oldest
/// first. Pure logic, no I/O: the owner reloads it from the database when
/// `needs_refill()` says older messages might fit now.
///
/// Rule: the newest message is always kept (a provider needs something to
/// answer); every older message is kept only while the running total fits.
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

  /// The provider's input: the system prompt (if any), then the window. The
  /// messages share the window's text; nothing is copied or re-estimated.
  std::vector<chat_message> assemble(const std::optional<std::string>& system_prompt) const;

  /// The provider's input as it would be with `pending` appended and the message
  /// `skip_id` removed, by the same rule within `budget` (at most the window's:
  /// a model with a smaller window gets fewer messages), without changing (or
  /// copying) the window.
  std::vector<chat_message> assemble_with(const std::optional<std::string>& system_prompt,
                                          const message_record* pending, const std::string* skip_id,
                                          std::int64_t budget) const;

  const std::deque<window_entry>& entries() const { return entries_; }
  std::int64_t tokens() const { return tokens_; }
  std::int64_t budget() const { return budget_; }

 private:
  void trim();
  void mark_refill_if_room();
  /// The system prompt as a prompt message, kept from one turn to the next
  /// while it stays the same.
  const chat_message& system_message(const std::string& system_prompt) const;

  std::deque<window_entry> entries_;
  std::int64_t tokens_ = 0;
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
