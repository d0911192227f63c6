#pragma once

// parley-load --mix crash and --verify-journal: the two halves of the crash
// drill (bench/scenarios/crash-drill.sh).
//
// The mix: one thread per user, each running a random sequence of writes on
// its own conversations (sends with and without Idempotency-Key, whole and
// SSE-streamed, WebSocket sends, edits, deletes, whole and streamed
// regenerates, conversations created and deleted) until --seconds are up or
// the server is gone. Every operation is written to the journal before it is
// sent (an "attempt" line) and every acknowledgement right when it arrives
// (an "ack" line: a 2xx answer, or a stream's `message` / `done` event), each
// line in one write(2), so that killing the server never costs the journal a
// line. A request whose answer did not arrive is not acknowledged: it may or
// may not have taken effect.
//
// The verification reads the journal, retries every Idempotency-Key request
// (and records the first retry's answer, which later retries must repeat),
// reads every conversation back and checks: each acknowledged message is
// stored with its acknowledged (or last acknowledged edited) content and seq;
// each acknowledged delete stayed deleted; no seq was given to two messages of
// a conversation; no message or conversation was stored twice; every
// conversation and every user's listing loads (200).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

namespace parley::load {

struct crash_options {
  std::string base_url = "http://127.0.0.1:8000";  ///< local only: WebSocket sends go to 127.0.0.1
  std::string journal_path;
  std::size_t users = 8;
  std::size_t conversations_per_user = 3;  ///< each user has at least this many at the start
  double seconds = 10;
  double think_ms = 5;     ///< at most this pause (uniformly drawn) between a user's operations
  std::uint64_t seed = 0;  ///< 0: a random one
  std::string json_path;
  std::string ready_path;
  bool quiet = false;
  /// The header line saying who `user` is (X-User-Id, or a bearer token).
  std::function<std::string(const std::string& user)> identity;
};

/// Runs the mixed load, appending to the journal. 0 unless set-up failed.
int run_crash_mix(const crash_options& o);

/// Checks the server against the journal; prints the counts. 0 when nothing
/// acknowledged is lost and nothing is violated, 3 otherwise (1 on set-up errors).
int verify_crash_journal(const crash_options& o);

}  // namespace parley::load
