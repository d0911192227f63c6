#include "persistence/schema.hpp"

namespace parley {

namespace {

// SQLite: FTS5 tables over views of the rows they index, each row with its
// owner as a token ('u' and the user id in hex: one token, which stemming
// cannot turn into another user's), so that a search is limited to the
// caller inside the index. A view cannot be written, so triggers keep the
// index; FTS5 deletes need the values indexed, which the triggers pass.
std::vector<std::string> sqlite_search() {
  const std::string tokenizer = "tokenize = 'porter unicode61 remove_diacritics 2'";
  const std::string owner_of_message =
      "(SELECT 'u' || hex(user_id) FROM conversations WHERE id = @.conversation_id)";
  auto owner = [&](const char* row) {
    auto out = owner_of_message;
    out.replace(out.find('@'), 1, row);
    return out;
  };
  return {
      "CREATE VIEW message_search_source AS SELECT m.rowid AS rid, m.content AS content,"
      " 'u' || hex(c.user_id) AS owner FROM messages m JOIN conversations c"
      " ON c.id = m.conversation_id",
      "CREATE VIRTUAL TABLE messages_fts USING fts5(content, owner,"
      " content = 'message_search_source', content_rowid = 'rid', " +
          tokenizer + ")",
      "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN"
      " INSERT INTO messages_fts (rowid, content, owner) VALUES (new.rowid, new.content, " +
          owner("new") + "); END",
      "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN"
      " INSERT INTO messages_fts (messages_fts, rowid, content, owner)"
      " VALUES ('delete', old.rowid, old.content, " +
          owner("old") + "); END",
      "CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages"
      " WHEN old.content IS NOT new.content BEGIN"
      " INSERT INTO messages_fts (messages_fts, rowid, content, owner)"
      " VALUES ('delete', old.rowid, old.content, " +
          owner("old") +
          ");"
          " INSERT INTO messages_fts (rowid, content, owner) VALUES (new.rowid, new.content, " +
          owner("new") + "); END",
      "INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')",
      "CREATE VIEW conversation_search_source AS SELECT rowid AS rid, title,"
      " 'u' || hex(user_id) AS owner FROM conversations",
      "CREATE VIRTUAL TABLE conversations_fts USING fts5(title, owner,"
      " content = 'conversation_search_source', content_rowid = 'rid', " +
          tokenizer + ")",
      "CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN"
      " INSERT INTO conversations_fts (rowid, title, owner)"
      " VALUES (new.rowid, new.title, 'u' || hex(new.user_id)); END",
      "CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN"
      " INSERT INTO conversations_fts (conversations_fts, rowid, title, owner)"
      " VALUES ('delete', old.rowid, old.title, 'u' || hex(old.user_id)); END",
      // Every update names the title; only a changed one is indexed again.
      "CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title ON conversations"
      " WHEN old.title IS NOT new.title BEGIN"
      " INSERT INTO conversations_fts (conversations_fts, rowid, title, owner)"
      " VALUES ('delete', old.rowid, old.title, 'u' || hex(old.user_id));"
      " INSERT INTO conversations_fts (rowid, title, owner)"
      " VALUES (new.rowid, new.title, 'u' || hex(new.user_id)); END",
      "INSERT INTO conversations_fts (conversations_fts) VALUES ('rebuild')",
  };
}

// PostgreSQL: a tsvector column the database computes with every write, and
// a GIN index on it. The configuration folds accents (unaccent, a trusted
// extension) and stems English words, keeping stop words, as FTS5 does.
std::vector<std::string> postgresql_search() {
  return {
      "CREATE EXTENSION IF NOT EXISTS unaccent",
      "CREATE TEXT SEARCH DICTIONARY parley_stem (TEMPLATE = snowball, Language = english)",
      "CREATE TEXT SEARCH CONFIGURATION parley_search (COPY = pg_catalog.simple)",
      "ALTER TEXT SEARCH CONFIGURATION parley_search ALTER MAPPING FOR"
      " asciiword, asciihword, hword_asciipart, word, hword, hword_part"
      " WITH unaccent, parley_stem",
      // A tsvector holds at most 1 MB: only a message's first 100,000
      // characters are indexed, so that no text can make a write fail.
      "ALTER TABLE messages ADD COLUMN search tsvector"
      " GENERATED ALWAYS AS (to_tsvector('parley_search', left(content, 100000))) STORED",
      "CREATE INDEX messages_search ON messages USING GIN (search)",
      "ALTER TABLE conversations ADD COLUMN search tsvector"
      " GENERATED ALWAYS AS (to_tsvector('parley_search', coalesce(title, ''))) STORED",
      "CREATE INDEX conversations_search ON conversations USING GIN (search)",
  };
}

// Written once for both dialects: BIGINT, TEXT and DOUBLE PRECISION mean the
// same to SQLite (by affinity) and PostgreSQL. Timestamps are Unix milliseconds.
std::vector<migration> build(sql_dialect dialect) {
  return {
      {1,
       {
           "CREATE TABLE conversations ("
           " id TEXT PRIMARY KEY,"
           " user_id TEXT NOT NULL,"
           " title TEXT,"
           " model TEXT NOT NULL,"
           " system_prompt TEXT,"
           " metadata TEXT NOT NULL DEFAULT '{}',"
           " created_at BIGINT NOT NULL,"
           " updated_at BIGINT NOT NULL,"
           " message_count BIGINT NOT NULL DEFAULT 0,"
           " last_seq BIGINT NOT NULL DEFAULT 0,"
           " prompt_tokens BIGINT NOT NULL DEFAULT 0,"
           " completion_tokens BIGINT NOT NULL DEFAULT 0,"
           " cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0)",
           // Serves the per-user list, most recently updated first, by keyset.
           "CREATE INDEX conversations_by_user_updated"
           " ON conversations (user_id, updated_at DESC, id DESC)",
           "CREATE TABLE messages ("
           " id TEXT PRIMARY KEY,"
           " conversation_id TEXT NOT NULL,"
           " seq BIGINT NOT NULL,"
           " role TEXT NOT NULL,"
           " content TEXT NOT NULL,"
           " created_at BIGINT NOT NULL,"
           " edited_at BIGINT,"
           " model TEXT,"
           " finish_reason TEXT,"
           " prompt_tokens BIGINT,"
           " completion_tokens BIGINT)",
           // One seq per conversation, and the index every history page walks.
           "CREATE UNIQUE INDEX messages_by_conversation_seq ON messages (conversation_id, seq)",
           "CREATE TABLE idempotency_keys ("
           " user_id TEXT NOT NULL,"
           " idem_key TEXT NOT NULL,"
           " request_hash TEXT NOT NULL,"
           " status BIGINT NOT NULL,"
           " body TEXT NOT NULL,"
           " created_at BIGINT NOT NULL,"
           " PRIMARY KEY (user_id, idem_key))",
           "CREATE INDEX idempotency_keys_by_created ON idempotency_keys (created_at)",
           "CREATE TABLE usage_daily ("
           " user_id TEXT NOT NULL,"
           " day TEXT NOT NULL,"
           " model TEXT NOT NULL,"
           " requests BIGINT NOT NULL,"
           " prompt_tokens BIGINT NOT NULL,"
           " completion_tokens BIGINT NOT NULL,"
           " cost_usd DOUBLE PRECISION NOT NULL,"
           " PRIMARY KEY (user_id, day, model))",
       }},
      // Optimistic concurrency between Parley processes sharing one database.
      {2, {"ALTER TABLE conversations ADD COLUMN version BIGINT NOT NULL DEFAULT 1"}},
      // PostgreSQL batches check conversation versions inside SQL (a whole
      // batch is sent before its first result is read; postgresql_batch.cpp);
      // SQLite checks the affected rows of each update instead.
      {3, dialect == sql_dialect::postgresql
              ? std::vector<std::string>{"CREATE FUNCTION parley_expect_updated(updated BIGINT, "
                                         "expected BIGINT)"
                                         " RETURNS VOID LANGUAGE plpgsql AS $$ BEGIN"
                                         " IF updated <> expected THEN RAISE EXCEPTION"
                                         " 'a conversation was changed or deleted meanwhile'"
                                         " USING ERRCODE = 'serialization_failure'; END IF; END $$"}
              : std::vector<std::string>{}},
      // Idempotent answers are stored as outcomes (stored_answer.hpp) that
      // http/ renders, no longer as a status and a rendered body. Keys stored
      // the old way keep their answer, as sent, under "legacy".
      {4,
       {"ALTER TABLE idempotency_keys ADD COLUMN answer TEXT",
        dialect == sql_dialect::postgresql
            ? "UPDATE idempotency_keys SET answer = json_build_object('legacy',"
              " json_build_object('status', status, 'body', body))::text"
            : "UPDATE idempotency_keys SET answer = json_object('legacy',"
              " json_object('status', status, 'body', body))",
        "ALTER TABLE idempotency_keys DROP COLUMN status",
        "ALTER TABLE idempotency_keys DROP COLUMN body"}},
      // Messages form a tree. Existing ones become a single branch in seq
      // order, ending at the newest, which becomes the active leaf.
      {5,
       {"ALTER TABLE messages ADD COLUMN parent_id TEXT",
        "UPDATE messages SET parent_id = (SELECT p.id FROM messages p"
        " WHERE p.conversation_id = messages.conversation_id AND p.seq < messages.seq"
        " ORDER BY p.seq DESC LIMIT 1)",
        // A parent's children in seq order: sibling positions, the newest
        // child, re-parenting on delete.
        "CREATE INDEX messages_by_parent ON messages (conversation_id, parent_id, seq)",
        "ALTER TABLE conversations ADD COLUMN active_leaf_id TEXT",
        "ALTER TABLE conversations ADD COLUMN forked_from_conversation_id TEXT",
        "ALTER TABLE conversations ADD COLUMN forked_from_message_id TEXT",
        "UPDATE conversations SET active_leaf_id = (SELECT m.id FROM messages m"
        " WHERE m.conversation_id = conversations.id ORDER BY m.seq DESC LIMIT 1)"}},
      // Full-text search of messages and titles, kept in the same transaction
      // as the writes: triggers on SQLite, generated columns on PostgreSQL.
      {6, dialect == sql_dialect::postgresql ? postgresql_search() : sqlite_search()},
      // Export walks a user's conversations in id order; import remembers
      // where each conversation came from, so that a second import skips it.
      {7,
       {"CREATE INDEX conversations_by_user_id ON conversations (user_id, id)",
        "CREATE TABLE conversation_sources ("
        " user_id TEXT NOT NULL,"
        " source TEXT NOT NULL,"
        " conversation_id TEXT NOT NULL,"
        " PRIMARY KEY (user_id, source))",
        "CREATE INDEX conversation_sources_by_conversation ON conversation_sources "
        "(conversation_id)"}},
      // Streamed replies whose input is stored and whose reply is not (yet):
      // a client resuming one after a restart is told what became of it.
      {8,
       {"CREATE TABLE runs ("
        " id TEXT PRIMARY KEY,"
        " conversation_id TEXT NOT NULL,"
        " message_id TEXT NOT NULL,"
        " started_at BIGINT NOT NULL)",
        "CREATE INDEX runs_by_conversation ON runs (conversation_id)"}},
      // Context compaction: a conversation's own strategy, and the summaries
      // sent instead of the messages they cover.
      {9,
       {"ALTER TABLE conversations ADD COLUMN context_strategy TEXT",
        "CREATE TABLE summaries ("
        " id TEXT PRIMARY KEY,"
        " conversation_id TEXT NOT NULL,"
        " covers_through_message_id TEXT NOT NULL,"
        " covers_through_seq BIGINT NOT NULL,"
        " content TEXT NOT NULL,"
        " model TEXT NOT NULL,"
        " created_at BIGINT NOT NULL,"
        " tokens_before BIGINT NOT NULL,"
        " tokens_after BIGINT NOT NULL)",
        "CREATE INDEX summaries_by_conversation ON summaries (conversation_id, created_at)"}},
      // Per-user limits held across the instances on one PostgreSQL database
      // (limit_ledger.hpp): each user's shared request bucket, and the
      // generation slots each instance holds for a user until they expire.
      {10, dialect == sql_dialect::postgresql
               ? std::vector<std::string>{"CREATE TABLE rate_buckets ("
                                          " user_id TEXT PRIMARY KEY,"
                                          " tokens DOUBLE PRECISION NOT NULL,"
                                          " last_taken DOUBLE PRECISION NOT NULL,"
                                          " updated_ms BIGINT NOT NULL)",
                                          "CREATE TABLE generation_leases ("
                                          " user_id TEXT NOT NULL,"
                                          " instance_id TEXT NOT NULL,"
                                          " slots INTEGER NOT NULL,"
                                          " expires_ms BIGINT NOT NULL,"
                                          " PRIMARY KEY (user_id, instance_id))"}
               : std::vector<std::string>{}},
  };
}

}  // namespace

const std::vector<migration>& migrations(sql_dialect dialect) {
  static const auto sqlite = build(sql_dialect::sqlite);
  static const auto postgresql = build(sql_dialect::postgresql);
  return dialect == sql_dialect::sqlite ? sqlite : postgresql;
}

}  // namespace parley
