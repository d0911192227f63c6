// Runs: the events of each exchange that asks a model, numbered and kept so
// that a client whose connection dropped can pick the exchange up where it
// lost it (GET …/stream, a WebSocket's resume) and stop it (POST …/cancel).
// The conversation's actor is the only one touching them: a replay and the
// live events it joins cannot interleave, so nothing is lost or repeated at
// the seam.

#include "actors/conversation_state.hpp"

#include <algorithm>
#include <limits>

namespace parley::conversation_detail {

namespace {

using kind = conversation_event::kind;

/// Finished runs a conversation keeps at most, whatever their age: a
/// conversation sending fast must not pile them up for the retention period.
constexpr std::size_t max_finished_runs = 8;

void forget_expired(conversation_state& st) {
  auto now = st.ctx->clock->now();
  auto finished = static_cast<std::size_t>(
      std::count_if(st.runs.begin(), st.runs.end(), [](auto& r) { return r.ended; }));
  for (auto at = st.runs.begin(); at != st.runs.end();) {
    if (at->ended && (at->expires <= now || finished > max_finished_runs)) {
      at = st.runs.erase(at);
      --finished;
    } else {
      ++at;
    }
  }
}

/// Sends `s` the run's events after `after` up to `until`, deltas in a row
/// as one. False once `s` refused one.
bool replay(const run_log& run, std::uint64_t after, std::uint64_t until,
            conversation_subscriber& s) {
  if (until <= after) return true;
  for (auto& entry : run.entries) {
    auto first = entry.type == kind::delta ? entry.n + 1 - entry.ends.size() : entry.n;
    if (entry.n <= after || first > until) continue;
    conversation_event e;
    e.type = entry.type;
    e.run_id = &run.id;
    e.n = std::min(entry.n, until);
    if (entry.type == kind::delta) {
      auto from = after >= first ? entry.ends[after - first] : 0;
      e.text = entry.text.substr(from, entry.ends[e.n - first] - from);
    } else {
      e.message = entry.message ? &*entry.message : nullptr;
      e.reason = entry.reason;
      e.summary = entry.summary ? &*entry.summary : nullptr;
    }
    if (!s.deliver(e)) return false;
  }
  return true;
}

}  // namespace

run_log* current_run(conversation_state& st) {
  if (st.runs.empty() || st.runs.back().ended) return nullptr;
  return &st.runs.back();
}

void begin_run(self_ptr self, const std::string& reply_id) {
  auto& st = self->state;
  if (current_run(st))
    abandon_run(self, {errc::conflict, "the exchange started over after a conflicting write"});
  forget_expired(st);
  run_log run;
  run.id = reply_id;
  run.started_at = st.ctx->clock->wall_ms();
  for (auto& w : st.watchers) run.watching_since.emplace_back(w.get(), 0);
  run.listing = st.ctx->running.add(st.id, {run.id, run.started_at});
  st.runs.push_back(std::move(run));
}

void watching_run(conversation_state& st, const conversation_subscriber* s) {
  if (auto* run = current_run(st)) run->watching_since.emplace_back(s, run->last_n);
}

void stopped_watching(conversation_state& st, const conversation_subscriber* s) {
  // Another socket may later live at the same address: it must not inherit
  // this one's position.
  for (auto& run : st.runs) {
    auto& since = run.watching_since;
    since.erase(std::remove_if(since.begin(), since.end(), [&](auto& w) { return w.first == s; }),
                since.end());
    auto& resumed = run.resumed_watchers;
    resumed.erase(
        std::remove_if(resumed.begin(), resumed.end(), [&](auto& r) { return r.get() == s; }),
        resumed.end());
  }
}

void record_in_run(run_log& run, conversation_event& e, bool audience) {
  e.run_id = &run.id;
  e.n = ++run.last_n;
  run.seen = run.seen || audience || !run.followers.empty();
  // An exchange nobody sees publishes its events only as it ends (it is not
  // live), in one turn, or a compaction before: a client joining it meanwhile
  // follows it from there and misses nothing it could have been replayed.
  if (!run.seen) return;
  if (e.type == kind::delta) {
    if (run.entries.empty() || run.entries.back().type != kind::delta)
      run.entries.push_back({.type = kind::delta});
    auto& deltas = run.entries.back();
    deltas.text += e.text;
    deltas.ends.push_back(static_cast<std::uint32_t>(deltas.text.size()));
    deltas.n = e.n;
  } else {
    run_entry entry{.type = e.type, .n = e.n};
    if (e.message) entry.message = *e.message;
    if (e.summary) entry.summary = *e.summary;
    entry.reason = e.reason;
    run.entries.push_back(std::move(entry));
  }
  auto& f = run.followers;
  f.erase(std::remove_if(f.begin(), f.end(), [&](auto& s) { return !s->deliver(e); }), f.end());
  if (e.type == kind::failed)
    for (auto& s : run.resumed_watchers) s->deliver(e);
}

void end_run(self_ptr self, const message_record* reply, const failure* why) {
  auto& st = self->state;
  auto* run = current_run(st);
  if (!run) return;
  run->ended = true;
  run->expires = st.ctx->clock->now() + std::chrono::seconds(st.ctx->cfg.streams.retention_s);
  run->listing.reset();
  // Their streams ended with the last event.
  run->followers.clear();
  run->resumed_watchers.clear();
  for (auto& caller : run->cancellers) {
    if (reply)
      caller.complete(*reply);
    else
      caller.fail(*why);
  }
  run->cancellers.clear();
  // No client has event ids of a run none saw (GET …/{id} shows its id only
  // while it runs, and joining it then makes it seen): it is not kept.
  if (st.ctx->cfg.streams.retention_s == 0 || !run->seen) st.runs.pop_back();
}

void abandon_run(self_ptr self, const failure& why) {
  auto& st = self->state;
  auto* run = current_run(st);
  if (!run) return;
  conversation_event closed;
  closed.type = kind::closed;
  closed.reason = why;
  for (auto& s : run->followers) s->deliver(closed);
  for (auto& caller : run->cancellers) caller.fail(why);
  // Its events stop short of an end: a resume asks the database instead.
  st.runs.pop_back();
}

void resume_run(self_ptr self, const std::optional<run_position>& from,
                const std::shared_ptr<conversation_subscriber>& s, bool follow,
                const completion<resume_outcome>& caller) {
  auto& st = self->state;
  forget_expired(st);
  run_log* run = nullptr;
  if (!from) {
    run = current_run(st);
  } else {
    auto at =
        std::find_if(st.runs.begin(), st.runs.end(), [&](auto& r) { return r.id == from->run_id; });
    if (at == st.runs.end()) {
      caller.complete(resume_outcome::not_held);
      return;
    }
    run = &*at;
  }
  auto after = from ? from->after : 0;
  if (!run || (run->ended && after >= run->last_n)) {
    caller.complete(resume_outcome::idle);
    return;
  }
  if (!run->ended && follow) {
    // Opens the stream, naming the run, even when nothing is left to replay yet.
    conversation_event started;
    started.type = kind::started;
    started.run_id = &run->id;
    s->deliver(started);
  }
  auto until = std::numeric_limits<std::uint64_t>::max();
  if (!follow) {
    auto& since = run->watching_since;
    auto at = std::find_if(since.begin(), since.end(), [&](auto& w) { return w.first == s.get(); });
    if (at != since.end()) until = at->second;
    auto& resumed = run->resumed_watchers;
    if (!run->ended && std::find(resumed.begin(), resumed.end(), s) == resumed.end())
      resumed.push_back(s);
  }
  if (replay(*run, after, until, *s) && !run->ended && follow) run->followers.push_back(s);
  // A watcher is not sent a run's failure live (only a socket that resumed
  // the run is): one that asks after the run failed gets it now.
  if (!follow && run->ended && !run->entries.empty()) {
    auto& last = run->entries.back();
    if (last.type == kind::failed && last.n > after && last.n > until) {
      conversation_event failed;
      failed.type = kind::failed;
      failed.run_id = &run->id;
      failed.n = last.n;
      failed.reason = last.reason;
      s->deliver(failed);
    }
  }
  caller.complete(resume_outcome::streaming);
}

void cancel_run(self_ptr self, const completion<message_record>& caller) {
  auto& st = self->state;
  auto* run = current_run(st);
  if (!run) {
    caller.fail({errc::conflict, "nothing is running in conversation " + st.id});
    return;
  }
  run->cancel_requested = true;
  run->cancellers.push_back(caller);
  // A generation not begun yet is stopped as it begins (generate()).
  if (st.generation && st.generation->handle) st.generation->handle->cancel();
}

}  // namespace parley::conversation_detail
