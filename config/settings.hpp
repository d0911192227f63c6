#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace parley {

/// Where the database lives, parsed from `database.url`.
struct database_url {
  bool operator==(const database_url&) const = default;
  enum class backend { sqlite, postgresql };
  backend kind = backend::sqlite;
  /// sqlite: a file path or ":memory:"; postgresql: a libpq connection string.
  std::string target;
  std::string original;
};

struct server_settings {
  bool operator==(const server_settings&) const = default;
  std::string host = "127.0.0.1";
  std::uint16_t port = 8000;
  unsigned threads = 0;  ///< 0 until resolved; then the number of cores.
  std::uint64_t max_body_bytes = 1048576;
  std::vector<std::string> cors_origins;
  /// Longest a shutdown waits for in-flight requests before it flushes and exits.
  unsigned shutdown_grace_ms = 10000;
  /// After SIGTERM, how long /ready answers 503 while everything else is
  /// still served, so that a balancer's health checks take the instance out
  /// before it stops accepting.
  unsigned drain_delay_ms = 0;
  /// An SSE stream quiet this long gets a comment line, so proxies keep it open.
  unsigned sse_keepalive_ms = 15000;
  /// A WebSocket is pinged this often; one that sends nothing (not even a
  /// pong) for two intervals is closed.
  unsigned ws_ping_interval_ms = 20000;
  /// Bytes a stream or WebSocket may have queued for a slow reader; past it,
  /// that client is disconnected.
  std::uint64_t stream_queue_bytes = 1048576;
  /// A request must arrive whole within this, and an idle keep-alive
  /// connection is closed after it, so a slow client cannot hold a connection.
  unsigned read_timeout_ms = 30000;
  /// Open connections at once; past it, new ones wait in the listen backlog.
  unsigned max_connections = 20000;
  /// Longest request target and longest header line, and most headers: past
  /// them a request gets 414 or 431 (and eight times past, the connection
  /// is closed unread).
  unsigned max_header_bytes = 16384;
  unsigned max_header_count = 100;
  /// GET / and /playground serve the playground page; false answers 404.
  bool playground = true;
};

struct database_settings {
  bool operator==(const database_settings&) const = default;
  database_url url;
  /// A batch is committed when it holds this many write requests...
  unsigned batch_max_requests = 256;
  /// ...or when its oldest request has waited this long. 0 still batches:
  /// the flush runs after every write already queued (bench/RESULTS.md shows
  /// 0 beating 2, 5 and 10 ms on both databases in throughput and latency).
  unsigned batch_delay_ms = 0;
  /// A PostgreSQL standby of `url` that serves history, lists, search, usage
  /// and exports, once it has replayed the requesting user's acknowledged writes.
  std::optional<database_url> read_url;
  /// Reader sessions, so reads never wait behind a batch (as many again on
  /// the replica).
  unsigned read_pool_size = 2;
  /// Deadline of one database operation as seen by a caller. A request that
  /// needs the database waits for at most two (loading a conversation: flush,
  /// then read), so a database that hangs is answered 503 within 2 s.
  unsigned timeout_ms = 1000;
};

struct auth_settings {
  bool operator==(const auth_settings&) const = default;
  std::string mode = "none";
  std::string jwt_secret;
  std::string jwt_public_key_file;
  std::string issuer;
  std::string audience;
};

struct limits_settings {
  bool operator==(const limits_settings&) const = default;
  std::uint32_t max_message_chars = 32768;
  std::uint32_t conversation_queue = 16;
  std::uint32_t requests_per_minute = 0;
  std::uint64_t tokens_per_day = 0;
  /// Replies one user may have in progress or waiting at once; 0 = no cap.
  std::uint32_t concurrent_generations = 0;
  /// The largest body POST /v1/import reads (other routes: server.max_body_bytes).
  std::uint64_t max_import_bytes = 64ull << 20;
};

struct stream_settings {
  bool operator==(const stream_settings&) const = default;
  /// What a client hanging up mid-stream does to its exchange: "continue"
  /// (the reply is finished and stored; the client may resume) or "cancel".
  std::string on_disconnect = "continue";
  /// How long a finished run's events stay available for resuming.
  unsigned retention_s = 600;
};

struct context_settings {
  bool operator==(const context_settings&) const = default;
  /// "truncate" leaves the oldest messages out; "summarize" asks a model to
  /// summarize them (a conversation's own context_strategy wins).
  std::string strategy = "truncate";
  /// The model that writes summaries; empty: the conversation's.
  std::string summary_model;
  /// Summarize once the prompt would exceed this share of the model's budget.
  double summarize_at = 0.8;
  /// The newest messages kept verbatim, at least (never more than half the budget).
  std::uint32_t keep_recent_tokens = 2000;
};

struct log_settings {
  bool operator==(const log_settings&) const = default;
  /// trace, debug, info, warn, error, critical or off.
  std::string level = "info";
  /// Whether request logs may carry message content (request bodies).
  bool content = false;
};

struct actor_settings {
  bool operator==(const actor_settings&) const = default;
  /// A conversation actor idle this long is passivated.
  unsigned idle_timeout_s = 300;
  /// Most conversation actors alive at once; least recently used go first.
  std::uint64_t max_live = 100000;
  /// Deadline for one generation (provider call) inside an operation.
  unsigned generation_timeout_ms = 120000;
};

struct provider_settings {
  bool operator==(const provider_settings&) const = default;
  std::string name;
  std::string kind;  ///< builtin, openai, anthropic
  std::string base_url;
  /// The environment variable holding the key; never the key itself.
  std::string api_key_env;
  /// The key read from `api_key_env` at start. Never logged or returned.
  std::string api_key;
  /// The longest one completion may take, retries included.
  unsigned timeout_ms = 60000;
  unsigned connect_timeout_ms = 5000;
  /// The answer must begin (status line) this soon after the request; 0 for
  /// no limit but timeout_ms. A whole (not streamed) answer begins only when
  /// the model has finished, so keep it above the longest reply.
  unsigned first_byte_timeout_ms = 0;
  /// A streamed answer silent this long is given up (504).
  unsigned stall_timeout_ms = 30000;
  /// Requests to this provider in flight at once; more wait their turn.
  unsigned max_in_flight = 1024;
  /// Attempts after the first one on connection errors, 429 and 5xx.
  unsigned max_retries = 2;
  unsigned ttft_ms = 0;  ///< builtin only: delay before the first word.
  unsigned itl_ms = 0;   ///< builtin only: delay between words.
};

struct model_settings {
  bool operator==(const model_settings&) const = default;
  std::string id;
  std::string provider;
  std::string upstream;
  std::uint32_t context_window = 8192;
  std::uint32_t max_output_tokens = 512;
  double input_price_per_mtok = 0;
  double output_price_per_mtok = 0;
  std::string fallback;
};

/// The whole configuration, after file, environment and flags are merged.
struct settings {
  bool operator==(const settings&) const = default;
  server_settings server;
  database_settings database;
  auth_settings auth;
  limits_settings limits;
  actor_settings actors;
  stream_settings streams;
  context_settings context;
  log_settings log;
  std::string default_model = "echo";
  std::vector<provider_settings> providers;
  std::vector<model_settings> models;
  /// Where the settings came from, for the startup line.
  std::string source = "defaults";
};

}  // namespace parley
