#pragma once

// Every SQL statement Parley sends, apart from the schema's migrations
// (schema.cpp), in one place per dialect:
//
//   parley::sql              portable: the SOCI store's statements, the same
//                            text on SQLite and PostgreSQL
//   parley::sql::sqlite      SQLite only: the connection's pragmas
//   parley::sql::postgresql  PostgreSQL only: the migration lock and the
//                            batch writer's multi-row statements
//
// Each row's columns are listed once, in the tables below, and every
// statement that names them is built from those tables, so that a column
// added or moved changes every statement together. The statements are
// built once, when the program starts (so another file's static initializer
// must not use them). Only the standard library is included: the benchmarks
// use these statements without the store.

#include <cstddef>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace parley::sql {

/// One column of a row Parley writes or reads: its name, and the type the
/// PostgreSQL batch casts its text parameter to (the VALUES list of an
/// UPDATE ... FROM has no target column to infer a type from).
struct column {
  std::string_view name;
  std::string_view pg_type;
};

namespace detail {

/// `pattern` once per column, every `@` in it replaced by the column's name,
/// joined by `separator`: names, bind markers and assignments all come from
/// one table.
inline std::string each(std::span<const column> columns, std::string_view pattern,
                        std::string_view separator = ", ") {
  std::string out;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    if (i) out += separator;
    for (char c : pattern) {
      if (c == '@')
        out += columns[i].name;
      else
        out += c;
    }
  }
  return out;
}

/// `a, b, c`
inline std::string names(std::span<const column> columns) { return each(columns, "@"); }

/// `:a, :b, :c`: SOCI's named markers, bound by position in this order.
inline std::string markers(std::span<const column> columns) { return each(columns, ":@"); }

/// The parts, one after the other (std::string has no operator+ for string_view in C++20).
inline std::string cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (auto part : parts) out += part;
  return out;
}

/// The tables' columns, one table after the other.
inline std::vector<column> join(std::initializer_list<std::span<const column>> tables) {
  std::vector<column> out;
  for (auto table : tables) out.insert(out.end(), table.begin(), table.end());
  return out;
}

/// `INSERT INTO table (columns) VALUES `, to be followed by the rows.
inline std::string insert_head(std::string_view table, std::span<const column> columns) {
  return cat({"INSERT INTO ", table, " (", names(columns), ") VALUES "});
}

/// `SELECT columns FROM table`
inline std::string select_from(std::string_view table, std::span<const column> columns) {
  return cat({"SELECT ", names(columns), " FROM ", table});
}

}  // namespace detail

// --- the rows -----------------------------------------------------------------
// The order of each table is the order its values are bound and read in
// (sql_store.cpp's to_conversation and to_message read by index).

/// A row of `conversations`.
inline constexpr column conversation_columns[] = {
    {"id", "text"},
    {"user_id", "text"},
    {"title", "text"},
    {"model", "text"},
    {"system_prompt", "text"},
    {"metadata", "text"},
    {"created_at", "bigint"},
    {"updated_at", "bigint"},
    {"message_count", "bigint"},
    {"last_seq", "bigint"},
    {"prompt_tokens", "bigint"},
    {"completion_tokens", "bigint"},
    {"cost_usd", "float8"},
    {"version", "bigint"},
    {"active_leaf_id", "text"},
    {"forked_from_conversation_id", "text"},
    {"forked_from_message_id", "text"},
    {"context_strategy", "text"},
};

/// What an update of a conversation sets: every column but those fixed when
/// it was created (id, user_id, created_at, forked_from_*), in
/// conversation_columns' order.
inline constexpr column conversation_updated_columns[] = {
    {"title", "text"},
    {"model", "text"},
    {"system_prompt", "text"},
    {"metadata", "text"},
    {"updated_at", "bigint"},
    {"message_count", "bigint"},
    {"last_seq", "bigint"},
    {"prompt_tokens", "bigint"},
    {"completion_tokens", "bigint"},
    {"cost_usd", "float8"},
    {"version", "bigint"},
    {"active_leaf_id", "text"},
    {"context_strategy", "text"},
};

/// A row of `messages`.
inline constexpr column message_columns[] = {
    {"id", "text"},
    {"conversation_id", "text"},
    {"seq", "bigint"},
    {"role", "text"},
    {"content", "text"},
    {"created_at", "bigint"},
    {"edited_at", "bigint"},
    {"model", "text"},
    {"finish_reason", "text"},
    {"prompt_tokens", "bigint"},
    {"completion_tokens", "bigint"},
    {"parent_id", "text"},
};

/// What an edit of a message sets.
inline constexpr column message_edit_columns[] = {{"content", "text"}, {"edited_at", "bigint"}};

/// What identifies a row of `usage_daily`: one row per user, day and model.
inline constexpr column usage_key_columns[] = {
    {"user_id", "text"},
    {"day", "text"},
    {"model", "text"},
};

/// What a row of `usage_daily` adds up.
inline constexpr column usage_total_columns[] = {
    {"requests", "bigint"},
    {"prompt_tokens", "bigint"},
    {"completion_tokens", "bigint"},
    {"cost_usd", "float8"},
};

/// A row of `usage_daily`: its key, then its totals.
inline const std::vector<column> usage_columns =
    detail::join({usage_key_columns, usage_total_columns});

/// What identifies a row of `idempotency_keys`.
inline constexpr column idempotency_key_columns[] = {{"user_id", "text"}, {"idem_key", "text"}};

/// A row of `idempotency_keys`.
inline constexpr column idempotency_columns[] = {
    {"user_id", "text"}, {"idem_key", "text"},     {"request_hash", "text"},
    {"answer", "text"},  {"created_at", "bigint"},
};

/// The stored answer of an idempotency key, which a finished request replaces.
inline constexpr column idempotency_answer_column[] = {{"answer", "text"}};

/// The id of a conversation or a message.
inline constexpr column id_column[] = {{"id", "text"}};

/// What a message's deletion needs: the message, and what its children are re-parented to.
inline constexpr column reparent_columns[] = {
    {"conversation_id", "text"}, {"id", "text"}, {"parent_id", "text"}};

/// The version a conversation update expects to replace (optimistic concurrency).
inline constexpr column expected_version_column[] = {{"expected", "bigint"}};

/// `ON CONFLICT ...`: a usage row for a key already stored adds to its totals.
inline const std::string usage_accumulate =
    detail::cat({" ON CONFLICT (", detail::names(usage_key_columns), ") DO UPDATE SET ",
                 detail::each(usage_total_columns, "@ = usage_daily.@ + excluded.@")});

// --- portable: the SOCI store, on SQLite and PostgreSQL --------------------------
// SOCI binds by position, in the order the markers appear; the names only
// document them.

// conversations

/// Binds :id.
inline const std::string select_conversation =
    detail::cat({detail::select_from("conversations", conversation_columns), " WHERE id = :id"});

/// The first page of a user's conversations, most recently updated first.
/// Binds :u (user), :n (rows).
inline const std::string list_conversations =
    detail::cat({detail::select_from("conversations", conversation_columns),
                 " WHERE user_id = :u ORDER BY updated_at DESC, id DESC LIMIT :n"});

/// The page after a cursor. A row comparison: one range on the index, in its
/// order, for both dialects (see EXPLAIN in bench/). Binds :u (user), :t and
/// :id (the cursor), :n (rows).
inline const std::string list_conversations_after =
    detail::cat({detail::select_from("conversations", conversation_columns),
                 " WHERE user_id = :u AND (updated_at, id) < (:t, :id)"
                 " ORDER BY updated_at DESC, id DESC LIMIT :n"});

/// Binds conversation_columns.
inline const std::string insert_conversation =
    detail::cat({detail::insert_head("conversations", conversation_columns), "(",
                 detail::markers(conversation_columns), ")"});

/// Binds conversation_updated_columns, then :id and :expected (the version
/// replaced); affects no row when another process changed it meanwhile.
inline const std::string update_conversation =
    detail::cat({"UPDATE conversations SET ", detail::each(conversation_updated_columns, "@ = :@"),
                 " WHERE id = :id AND version = :expected"});

/// Binds :id (the conversation).
inline constexpr std::string_view delete_conversation_messages =
    "DELETE FROM messages WHERE conversation_id = :id";

/// Binds :id.
inline constexpr std::string_view delete_conversation = "DELETE FROM conversations WHERE id = :id";

/// Binds :id (the conversation).
inline constexpr std::string_view delete_conversation_sources =
    "DELETE FROM conversation_sources WHERE conversation_id = :id";

/// Binds :id (the conversation).
inline constexpr std::string_view delete_conversation_runs =
    "DELETE FROM runs WHERE conversation_id = :id";

/// A row of `runs`.
inline constexpr column run_columns[] = {
    {"id", "text"}, {"conversation_id", "text"}, {"message_id", "text"}, {"started_at", "bigint"}};

/// Binds run_columns.
inline const std::string insert_run =
    detail::cat({detail::insert_head("runs", run_columns), "(", detail::markers(run_columns), ")"});

/// Binds :id.
inline constexpr std::string_view delete_run = "DELETE FROM runs WHERE id = :id";

/// Binds :id (the conversation).
inline constexpr std::string_view delete_conversation_summaries =
    "DELETE FROM summaries WHERE conversation_id = :id";

/// A row of `summaries`.
inline constexpr column summary_columns[] = {{"id", "text"},
                                             {"conversation_id", "text"},
                                             {"covers_through_message_id", "text"},
                                             {"covers_through_seq", "bigint"},
                                             {"content", "text"},
                                             {"model", "text"},
                                             {"created_at", "bigint"},
                                             {"tokens_before", "bigint"},
                                             {"tokens_after", "bigint"}};

/// Binds summary_columns.
inline const std::string insert_summary =
    detail::cat({detail::insert_head("summaries", summary_columns), "(",
                 detail::markers(summary_columns), ")"});

/// A conversation's summaries, oldest first. Binds :c.
inline const std::string select_summaries =
    detail::cat({detail::select_from("summaries", summary_columns),
                 " WHERE conversation_id = :c ORDER BY created_at, id"});

/// The run, if it is the conversation's. Binds :id, :c.
inline constexpr std::string_view select_run =
    "SELECT message_id, started_at FROM runs WHERE id = :id AND conversation_id = :c";

/// Up to :n of a user's conversations with an id above :after, in id order
/// (export's walk: stable while conversations are updated). Binds :u, :after, :n.
inline const std::string list_conversations_by_id =
    detail::cat({detail::select_from("conversations", conversation_columns),
                 " WHERE user_id = :u AND id > :after ORDER BY id LIMIT :n"});

/// A row of `conversation_sources`.
inline constexpr column source_columns[] = {
    {"user_id", "text"}, {"source", "text"}, {"conversation_id", "text"}};

/// Binds source_columns.
inline const std::string insert_source =
    detail::cat({detail::insert_head("conversation_sources", source_columns), "(",
                 detail::markers(source_columns), ")"});

/// The conversation imported from a source, if any. Binds :u, :source.
inline constexpr std::string_view select_source =
    "SELECT conversation_id FROM conversation_sources WHERE user_id = :u AND source = :source";

// messages

namespace detail {

/// The number of `m`'s siblings (itself included) `condition` selects. The
/// two forms, for a root and for a child, each use messages_by_parent.
inline std::string count_siblings(std::string_view condition) {
  return cat(
      {"CASE WHEN m.parent_id IS NULL THEN (SELECT COUNT(*) FROM messages s"
       " WHERE s.conversation_id = m.conversation_id AND s.parent_id IS NULL",
       condition,
       ") ELSE (SELECT COUNT(*) FROM messages s"
       " WHERE s.conversation_id = m.conversation_id AND s.parent_id = m.parent_id",
       condition, ") END"});
}

/// `WITH RECURSIVE branch(...)`: the ids of the branch that ends at :leaf in
/// conversation :c, walking up to the root while `more` holds for the next
/// parent `p` (the walk's row is `b`, its depth `b.depth`, 1 at :leaf).
/// Every step goes to a lower seq, so no data can make it loop.
inline std::string walk_up(std::string_view more) {
  return cat(
      {"WITH RECURSIVE branch(id, parent_id, seq, depth) AS ("
       "SELECT id, parent_id, seq, 1 FROM messages WHERE id = :leaf AND conversation_id = :c"
       " UNION ALL SELECT p.id, p.parent_id, p.seq, b.depth + 1"
       " FROM branch b JOIN messages p ON p.id = b.parent_id WHERE p.seq < b.seq",
       more, ") "});
}

}  // namespace detail

/// A message row as read: message_columns of `m`, then its position among
/// its parent's children (sibling_index, 1-based, in seq order) and their number.
inline const std::string select_message_rows =
    detail::cat({"SELECT ", detail::each(message_columns, "m.@"), ", ",
                 detail::count_siblings(" AND s.seq <= m.seq"), ", ", detail::count_siblings(""),
                 " FROM messages m"});

/// Up to :n messages of a conversation before a seq, last first.
/// Binds :c (conversation), :b (seq), :n.
inline const std::string select_messages_before =
    detail::cat({select_message_rows,
                 " WHERE m.conversation_id = :c AND m.seq < :b ORDER BY m.seq DESC LIMIT :n"});

/// Up to :n messages of a conversation after a seq, first first.
/// Binds :c (conversation), :a (seq), :n.
inline const std::string select_messages_after =
    detail::cat({select_message_rows,
                 " WHERE m.conversation_id = :c AND m.seq > :a ORDER BY m.seq ASC LIMIT :n"});

/// Binds :id (the message), :c (its conversation).
inline const std::string select_message =
    detail::cat({select_message_rows, " WHERE m.id = :id AND m.conversation_id = :c"});

/// The message :id in whichever conversation holds it.
inline const std::string select_message_by_id =
    detail::cat({select_message_rows, " WHERE m.id = :id"});

/// Up to :n messages of the branch ending at :leaf, from :leaf towards the
/// root (newest first): reads no more of the branch than it returns.
/// Binds :leaf, :c (its conversation), :n.
inline const std::string walk_branch =
    detail::cat({detail::walk_up(" AND b.depth < :n"), select_message_rows,
                 " JOIN branch b ON m.id = b.id ORDER BY m.seq DESC"});

/// The first :n messages after seq :a of the branch ending at :leaf, first
/// first: walks no higher than :a. Binds :leaf, :c, :a, :a2 (the same), :n.
inline const std::string select_branch_after =
    detail::cat({detail::walk_up(" AND p.seq > :a"), select_message_rows,
                 " JOIN branch b ON m.id = b.id WHERE m.seq > :a2 ORDER BY m.seq ASC LIMIT :n"});

/// The last :n messages before seq :b of the branch ending at :leaf, last
/// first. Binds :leaf, :c, :b, :n.
inline const std::string select_branch_before =
    detail::cat({detail::walk_up(""), select_message_rows,
                 " JOIN branch b ON m.id = b.id WHERE m.seq < :b ORDER BY m.seq DESC LIMIT :n"});

/// The number of messages from the root to :leaf. Binds :leaf, :c.
inline const std::string count_branch =
    detail::cat({detail::walk_up(""), "SELECT COUNT(*) FROM branch"});

/// 1 when message :x (at seq :s) lies on the branch ending at :leaf, else 0;
/// walks no higher than :x. Binds :leaf, :c, :s, :x.
inline const std::string branch_contains =
    detail::cat({detail::walk_up(" AND p.seq >= :s"), "SELECT COUNT(*) FROM branch WHERE id = :x"});

/// The newest leaf under message :m (itself when it has no children),
/// following the newest child at each step and never message :x. Binds :m,
/// :c (its conversation), :c2 (the same), :x.
inline constexpr std::string_view newest_leaf =
    "WITH RECURSIVE down(id, seq) AS ("
    "SELECT id, seq FROM messages WHERE id = :m AND conversation_id = :c"
    " UNION ALL SELECT k.id, k.seq FROM down d JOIN messages k ON k.id = ("
    "SELECT x.id FROM messages x WHERE x.conversation_id = :c2 AND x.parent_id = d.id"
    " AND x.id <> :x ORDER BY x.seq DESC LIMIT 1) WHERE k.seq > d.seq)"
    " SELECT id FROM down ORDER BY seq DESC LIMIT 1";

/// The newest root of conversation :c other than message :x. Binds :c, :x.
inline constexpr std::string_view newest_root =
    "SELECT id FROM messages WHERE conversation_id = :c AND parent_id IS NULL AND id <> :x"
    " ORDER BY seq DESC LIMIT 1";

/// The number of children of message :p. Binds :c (its conversation), :p.
inline constexpr std::string_view count_children =
    "SELECT COUNT(*) FROM messages WHERE conversation_id = :c AND parent_id = :p";

/// The number of roots of conversation :c. Binds :c.
inline constexpr std::string_view count_roots =
    "SELECT COUNT(*) FROM messages WHERE conversation_id = :c AND parent_id IS NULL";

/// Binds message_columns.
inline const std::string insert_message = detail::cat(
    {detail::insert_head("messages", message_columns), "(", detail::markers(message_columns), ")"});

/// Binds message_edit_columns, then :id.
inline const std::string update_message = detail::cat(
    {"UPDATE messages SET ", detail::each(message_edit_columns, "@ = :@"), " WHERE id = :id"});

/// Binds :id.
inline constexpr std::string_view delete_message = "DELETE FROM messages WHERE id = :id";

/// A deleted message's children take its parent as theirs.
/// Binds :parent_id, then :conversation_id and :id (the deleted message).
inline constexpr std::string_view reparent_children =
    "UPDATE messages SET parent_id = :parent_id WHERE conversation_id = :conversation_id"
    " AND parent_id = :id";

// usage

/// Binds usage_columns; adds to the totals of a row already there.
inline const std::string add_usage =
    detail::cat({detail::insert_head("usage_daily", usage_columns), "(",
                 detail::markers(usage_columns), ")", usage_accumulate});

/// A user's totals per model over a range of days: model, then
/// usage_total_columns summed. Binds :user_id, :from_day, :to_day.
inline const std::string select_usage =
    detail::cat({"SELECT model, ", detail::each(usage_total_columns, "SUM(@)"),
                 " FROM usage_daily WHERE user_id = :user_id AND day >= :from_day"
                 " AND day <= :to_day GROUP BY model ORDER BY model"});

// idempotency keys

/// Binds idempotency_key_columns.
inline const std::string select_idempotency =
    detail::cat({detail::select_from("idempotency_keys", idempotency_columns), " WHERE ",
                 detail::each(idempotency_key_columns, "@ = :@", " AND ")});

/// Binds idempotency_columns.
inline const std::string insert_idempotency =
    detail::cat({detail::insert_head("idempotency_keys", idempotency_columns), "(",
                 detail::markers(idempotency_columns), ")"});

/// Binds :answer, then idempotency_key_columns.
inline const std::string replace_idempotency_answer =
    detail::cat({"UPDATE idempotency_keys SET ", detail::each(idempotency_answer_column, "@ = :@"),
                 " WHERE ", detail::each(idempotency_key_columns, "@ = :@", " AND ")});

/// Binds :cutoff (Unix milliseconds); keys created before it go.
inline constexpr std::string_view purge_idempotency =
    "DELETE FROM idempotency_keys WHERE created_at < :cutoff";

// the connection and the schema's version

/// Whether the database answers.
inline constexpr std::string_view ping = "SELECT 1";

/// The table migrate() keeps the schema's version in; made before anything
/// else so that a new database starts at version 0.
inline constexpr std::string_view create_schema_version =
    "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)";

/// The latest migration applied; NULL on a new database.
inline constexpr std::string_view select_schema_version = "SELECT MAX(version) FROM schema_version";

/// Binds :v, the migration just applied.
inline constexpr std::string_view insert_schema_version =
    "INSERT INTO schema_version (version) VALUES (:v)";

// --- SQLite only ----------------------------------------------------------------

namespace sqlite {

/// WAL lets readers run beside the writer.
inline constexpr std::string_view journal_mode_wal = "PRAGMA journal_mode=WAL";

/// With WAL, a committed batch survives a crash of the process (a power cut
/// may take the last ones; docs/architecture.md says so).
inline constexpr std::string_view synchronous_normal = "PRAGMA synchronous=NORMAL";

/// A batch's transaction: the write lock is taken at its start.
inline constexpr std::string_view begin_immediate = "BEGIN IMMEDIATE";
inline constexpr std::string_view commit = "COMMIT";
inline constexpr std::string_view rollback = "ROLLBACK";

/// How long a statement waits for a lock another connection holds. A pragma
/// takes no bind, so the value is part of the text.
inline std::string busy_timeout(long long milliseconds) {
  return "PRAGMA busy_timeout=" + std::to_string(milliseconds);
}

/// A page of one user's search matches, best first: messages and titles
/// together, each scored by bm25 (negated: higher is better; in millionths
/// of a millionth, as an integer, which SOCI's text binds carry exactly),
/// keyset-paged by (score, key). The index is asked for the caller's rows only (the match
/// text names the owner). Binds, in order: the messages' :mq (match text),
/// :mu (user), :mall (1: every conversation), :mc (the conversation),
/// :many (1: every role), :mr (the role), :mfrom, :muntil (created_at
/// range); the titles' :cq, :cu, :titles (1: titles too), :call, :cc,
/// :cfrom, :cuntil; then the cursor's :s (score), :s2 (the same),
/// :k (key), and :n (rows). Rows: key, score, conversation_id, title,
/// message_id, seq, role, created_at, rid (the FTS rowid), kind (0 message, 1 title).
inline constexpr std::string_view search =
    "SELECT key, score, conversation_id, title, message_id, seq, role, created_at, rid, kind"
    " FROM (SELECT 'm:' || m.id AS key, CAST(-bm25(messages_fts) * 1e12 AS INTEGER) AS score,"
    " m.conversation_id AS conversation_id, c.title AS title, m.id AS message_id,"
    " m.seq AS seq, m.role AS role, m.created_at AS created_at, messages_fts.rowid AS rid,"
    " 0 AS kind FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid"
    " JOIN conversations c ON c.id = m.conversation_id"
    " WHERE messages_fts MATCH :mq AND c.user_id = :mu AND (:mall = 1 OR m.conversation_id = :mc)"
    " AND (:many = 1 OR m.role = :mr) AND m.created_at >= :mfrom AND m.created_at < :muntil"
    " UNION ALL SELECT 'c:' || c.id, CAST(-bm25(conversations_fts) * 1e12 AS INTEGER), c.id,"
    " c.title, NULL, NULL, NULL,"
    " c.created_at, conversations_fts.rowid, 1 FROM conversations_fts"
    " JOIN conversations c ON c.rowid = conversations_fts.rowid"
    " WHERE conversations_fts MATCH :cq AND c.user_id = :cu AND :titles = 1"
    " AND (:call = 1 OR c.id = :cc) AND c.created_at >= :cfrom AND c.created_at < :cuntil)"
    " WHERE score < CAST(:s AS INTEGER) OR (score = CAST(:s2 AS INTEGER) AND key > :k)"
    " ORDER BY score DESC, key ASC LIMIT :n";

/// The text around a message's match, the matched terms between U+E000 and
/// U+E001, up to 24 words. Binds :q (the match text), :r (the FTS rowid).
inline constexpr std::string_view message_snippet =
    "SELECT snippet(messages_fts, 0, char(57344), char(57345), '\u2026', 24) FROM messages_fts"
    " WHERE messages_fts MATCH :q AND rowid = :r";

/// A title with its matched terms between U+E000 and U+E001. Binds :q, :r.
inline constexpr std::string_view title_snippet =
    "SELECT highlight(conversations_fts, 0, char(57344), char(57345)) FROM conversations_fts"
    " WHERE conversations_fts MATCH :q AND rowid = :r";

}  // namespace sqlite

// --- PostgreSQL only ------------------------------------------------------------

namespace postgresql {

/// Parley processes starting together on one database take turns to
/// migrate it (SQLite's write lock does the same there). Any fixed number.
inline constexpr std::string_view lock_migrations = "SELECT pg_advisory_lock(7263827761)";

/// Ends lock_migrations' turn.
inline constexpr std::string_view unlock_migrations = "SELECT pg_advisory_unlock(7263827761)";

/// A statement for any number of rows, sent by the batch writer
/// (postgresql_batch.cpp): `head`, then `(...)` for each row, separated by
/// ", ", then `tail`. A row binds `row`'s columns in order, each a text
/// parameter cast to the column's pg_type.
struct multi_row {
  std::string head;
  std::vector<column> row;
  std::string tail;
};

namespace detail {

using sql::detail::cat;
using sql::detail::each;
using sql::detail::names;

/// `INSERT INTO table (columns) VALUES (...), (...)`.
inline multi_row insert(std::string_view table, std::span<const column> columns) {
  return {sql::detail::insert_head(table, columns), sql::detail::join({columns}), ""};
}

/// Deletes the rows of `table` whose `key` is one of the ids sent.
inline multi_row delete_where_in(std::string_view table, std::string_view key) {
  return {cat({"DELETE FROM ", table, " WHERE ", key, " IN (SELECT v.id FROM (VALUES "}),
          sql::detail::join({id_column}), ") AS v(id))"};
}

}  // namespace detail

/// Rows of conversation_columns.
inline const multi_row insert_conversations = detail::insert("conversations", conversation_columns);

/// Rows of conversation_columns and the version each replaces.
/// The version check has to fail inside the transaction, before its commit
/// is on the wire: parley_expect_updated (schema.cpp) raises a serialization
/// failure when fewer rows matched than were sent.
inline const multi_row update_conversations = [] {
  auto row = sql::detail::join({conversation_columns, expected_version_column});
  return multi_row{detail::cat({"WITH v(", detail::names(row), ") AS (VALUES "}), row,
                   detail::cat({"), updated AS (UPDATE conversations AS c SET ",
                                detail::each(conversation_updated_columns, "@ = v.@"),
                                " FROM v WHERE c.id = v.id AND c.version = v.expected RETURNING 1)"
                                " SELECT parley_expect_updated((SELECT count(*) FROM updated),"
                                " (SELECT count(*) FROM v))"})};
}();

/// Rows of id_column: the conversations' messages go.
inline const multi_row delete_conversation_messages =
    detail::delete_where_in("messages", "conversation_id");

/// Rows of id_column.
inline const multi_row delete_conversations = detail::delete_where_in("conversations", "id");

/// Rows of id_column: the conversations' import records go.
inline const multi_row delete_conversation_sources =
    detail::delete_where_in("conversation_sources", "conversation_id");

/// Rows of id_column: the conversations' runs go.
inline const multi_row delete_conversation_runs =
    detail::delete_where_in("runs", "conversation_id");

/// Rows of id_column: the conversations' summaries go.
inline const multi_row delete_conversation_summaries =
    detail::delete_where_in("summaries", "conversation_id");

/// Rows of summary_columns.
inline const multi_row insert_summaries = detail::insert("summaries", summary_columns);

/// Rows of run_columns.
inline const multi_row insert_runs = detail::insert("runs", run_columns);

/// Rows of id_column.
inline const multi_row delete_runs = detail::delete_where_in("runs", "id");

/// Rows of source_columns.
inline const multi_row insert_sources = detail::insert("conversation_sources", source_columns);

/// Rows of message_columns.
inline const multi_row insert_messages = detail::insert("messages", message_columns);

/// Rows of id_column, then message_edit_columns.
inline const multi_row update_messages = [] {
  auto row = sql::detail::join({id_column, message_edit_columns});
  return multi_row{detail::cat({"UPDATE messages AS m SET ",
                                detail::each(message_edit_columns, "@ = v.@"), " FROM (VALUES "}),
                   row, detail::cat({") AS v(", detail::names(row), ") WHERE m.id = v.id"})};
}();

/// Rows of id_column.
inline const multi_row delete_messages = detail::delete_where_in("messages", "id");

/// Rows of reparent_columns: each deleted message's children take its parent.
inline const multi_row reparent_children = [] {
  auto row = sql::detail::join({reparent_columns});
  return multi_row{"UPDATE messages AS m SET parent_id = v.parent_id FROM (VALUES ", row,
                   detail::cat({") AS v(", detail::names(row),
                                ") WHERE m.conversation_id = v.conversation_id"
                                " AND m.parent_id = v.id"})};
}();

/// Rows of usage_columns; each adds to the totals of a row already there.
inline const multi_row add_usage = [] {
  auto statement = detail::insert("usage_daily", usage_columns);
  statement.tail = usage_accumulate;
  return statement;
}();

/// Rows of a text payload each: tells every listening Parley instance, as
/// the batch commits and not before, which conversations it changed
/// (persistence/change_feed.hpp).
inline constexpr column notice_column[] = {{"payload", "text"}};
inline const multi_row notify_changes{"SELECT pg_notify('parley_changes', v.payload) FROM (VALUES ",
                                      sql::detail::join({notice_column}), ") AS v(payload)"};
/// The same, on the channel of whose writes a batch holds (for instances that
/// read from a replica).
inline const multi_row notify_writes{"SELECT pg_notify('parley_writes', v.payload) FROM (VALUES ",
                                     sql::detail::join({notice_column}), ") AS v(payload)"};

/// Where the WAL ends once a batch has committed: a replica that has replayed
/// this far can read the batch. (Past a page header when the WAL sits at a
/// page boundary, which a quiet standby reaches only with the next record:
/// its reads go to the primary meanwhile, never the other way.)
inline constexpr const char* wal_insert_position = "SELECT pg_current_wal_insert_lsn()::text";
/// How far a standby has replayed the primary's WAL; null on a primary.
inline constexpr const char* replayed_position = "SELECT pg_last_wal_replay_lsn()::text";

/// Rows of idempotency_columns.
inline const multi_row insert_idempotency = detail::insert("idempotency_keys", idempotency_columns);

/// Rows of idempotency_key_columns, then the answer.
inline const multi_row replace_idempotency_answers = [] {
  auto row = sql::detail::join({idempotency_key_columns, idempotency_answer_column});
  return multi_row{
      detail::cat({"UPDATE idempotency_keys AS k SET ",
                   detail::each(idempotency_answer_column, "@ = v.@"), " FROM (VALUES "}),
      row,
      detail::cat({") AS v(", detail::names(row), ") WHERE ",
                   detail::each(idempotency_key_columns, "k.@ = v.@", " AND ")})};
}();

/// A page of one user's search matches, best first (ts_rank, as an integer
/// like sqlite::search's), keyset-paged by (score, key), with snippets made for the page's rows
/// only. Binds :q (websearch_to_tsquery text), then the messages' :mu, :mall, :mc, :many, :mr,
/// :mfrom, :muntil, the titles' :cu, :titles, :call, :cc, :cfrom, :cuntil, the cursor's :s, :s2, :k
/// and :n, as sqlite::search does. Rows as sqlite::search's, with the snippet in place of rid and
/// no kind. ts_headline drops what looks like an HTML tag, so '<' and '>' go in as U+E002 and
/// U+E003 with a space either side, so that the words beside them stay words
/// (postgresql_snippet_text turns them back).
inline constexpr std::string_view search =
    "WITH q AS (SELECT websearch_to_tsquery('parley_search', :q) AS query),"
    " hits AS (SELECT 'm:' || m.id AS key, (ts_rank(m.search, q.query) * 1e12)::bigint AS score,"
    " m.conversation_id AS conversation_id, c.title AS title, m.id AS message_id,"
    " m.seq AS seq, m.role AS role, m.created_at AS created_at, m.content AS body"
    " FROM q, messages m JOIN conversations c ON c.id = m.conversation_id"
    " WHERE m.search @@ q.query AND c.user_id = :mu AND (:mall = 1 OR m.conversation_id = :mc)"
    " AND (:many = 1 OR m.role = :mr) AND m.created_at >= :mfrom AND m.created_at < :muntil"
    " UNION ALL SELECT 'c:' || c.id, (ts_rank(c.search, q.query) * 1e12)::bigint, c.id, c.title, "
    "NULL,"
    " NULL, NULL, c.created_at, c.title FROM q, conversations c"
    " WHERE c.search @@ q.query AND c.user_id = :cu AND :titles = 1"
    " AND (:call = 1 OR c.id = :cc) AND c.created_at >= :cfrom AND c.created_at < :cuntil),"
    " page AS (SELECT * FROM hits WHERE score < :s OR (score = :s2 AND key > :k)"
    " ORDER BY score DESC, key LIMIT :n)"
    " SELECT key, score, conversation_id, title, message_id, seq, role, created_at,"
    " ts_headline('parley_search',"
    " replace(replace(body, '<', ' ' || chr(57346) || ' '), '>', ' ' || chr(57347) || ' '),"
    " (SELECT query FROM q), 'StartSel=' || chr(57344)"
    " || ', StopSel=' || chr(57345) || ', MaxWords=30, MinWords=12, MaxFragments=1,"
    " FragmentDelimiter=\" \u2026 \"') FROM page ORDER BY score DESC, key";

}  // namespace postgresql

}  // namespace parley::sql
