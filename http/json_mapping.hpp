#pragma once

// Resources as JSON, exactly as docs/openapi.json shows them. Pure functions.

#include "actors/requests.hpp"
#include "base/json_text.hpp"
#include "persistence/records.hpp"
#include "providers/model_registry.hpp"

#include <nlohmann/json.hpp>

namespace parley {

nlohmann::json to_json(const conversation_record& c);

/// `{"active_leaf_id": …}`: what watchers are told when the branch changes.
nlohmann::json branch_json(const std::optional<std::string>& active_leaf_id);

/// A summary of a conversation's older messages (context compaction).
nlohmann::json to_json(const summary_record& s);
nlohmann::json to_json(const std::vector<summary_record>& summaries);

/// JSON written out already, sent as it is.
struct rendered_json {
  std::string text;
};

/// The hot answers, written out as text rather than built as a tree (a tree
/// copies each message's text into nodes of its own); the bytes are those a
/// tree of the same would dump.
std::string message_json(const message_record& m);
/// The answer to create, send or regenerate.
std::string exchange_json(const exchange_result& r);
/// A page of history.
std::string page_json(const message_page& page);

/// `[Message, …]` appended to `out`, as page_json writes its data.
void append_messages_json(std::string& out, const std::vector<message_record>& messages);
nlohmann::json to_json(const conversation_page& page);
nlohmann::json to_json(const model_registry& models);
nlohmann::json usage_to_json(const std::string& user_id, const std::string& from,
                             const std::string& to, const std::vector<usage_row>& rows);

/// The opaque `next_cursor` of a conversation list and its inverse (nullopt
/// for text that is not a cursor).
std::string encode_cursor(const conversation_cursor& c);
std::optional<conversation_cursor> decode_cursor(const std::string& text);

/// The same for a search.
std::string encode_search_cursor(const search_cursor& c);
std::optional<search_cursor> decode_search_cursor(const std::string& text);

/// What POST /v1/import answers.
nlohmann::json to_json(const import_summary& summary);

/// A search page as GET /v1/search answers it.
nlohmann::json to_json(const search_page& page);

/// A stored snippet as HTML: the text escaped, each matched term in
/// <mark>…</mark>, at most about `max_chars` characters around the first match.
std::string snippet_html(std::string_view raw, std::size_t max_chars = 200);

}  // namespace parley
