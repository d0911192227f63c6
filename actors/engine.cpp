#include "actors/engine.hpp"

#include "actors/conversation_actor.hpp"
#include "actors/messages.hpp"
#include "actors/stateless_completion.hpp"
#include "base/uuid.hpp"
#include "persistence/caf_errors.hpp"
#include "persistence/change_feed.hpp"
#include "persistence/commit_positions.hpp"
#include "telemetry/metrics.hpp"

#include <spdlog/spdlog.h>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/blocking_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <atomic>
#include <chrono>
#include <deque>
#include <iterator>
#include <limits>
#include <thread>
#include <tuple>

namespace parley {

namespace {

using std::chrono::milliseconds;

/// How often a request is delivered again when its conversation actor
/// passivated between lookup and delivery (it quits without reading it).
constexpr int max_redeliveries = 3;

/// A conversation with every message of its tree, read a page at a time.
conversation_export whole_tree_of(store& db, conversation_record row) {
  constexpr unsigned page = 1000;
  conversation_export out{std::move(row), {}};
  for (std::int64_t after = 0;;) {
    auto batch = db.list_messages(out.conversation.id, after, std::nullopt, page);
    std::move(batch.begin(), batch.end(), std::back_inserter(out.messages));
    if (batch.size() < page) return out;
    after = out.messages.back().seq;
  }
}

/// A conversation with the messages of its active branch.
conversation_export active_branch_of(store& db, conversation_record row) {
  conversation_export out{std::move(row), {}};
  if (auto& leaf = out.conversation.active_leaf_id)
    out.messages = db.list_branch(out.conversation.id, *leaf, 0, std::nullopt,
                                  std::numeric_limits<unsigned>::max());
  return out;
}

/// Imports that may run at once in one process; more are answered 429.
constexpr unsigned max_imports_at_once = 4;

/// Conversations an import has sent the writer and not yet heard back about:
/// enough for the writer to batch them, few enough to bound what is held.
constexpr std::size_t import_window = 16;

/// Stores what `next` reads (see engine::import_conversations), on a
/// blocking actor of its own.
void run_import(caf::blocking_actor* self, engine_context* ctx, const std::atomic<bool>* stopped,
                metrics::family<metrics::counter>* counts, std::string user_id, import_reader next,
                reply_fn<import_summary> reply) {
  auto& counted = *counts;
  import_summary summary;
  std::optional<failure> stopped_by;
  auto send = [&](write_set writes) {
    return self->request(ctx->db.writer, caf::infinite, write_atom::value, std::move(writes));
  };
  struct pending {
    std::size_t index;
    std::string id;
    decltype(send(write_set{})) answer;
  };
  std::deque<pending> in_flight;
  auto settle_oldest = [&] {
    auto p = std::move(in_flight.front());
    in_flight.pop_front();
    p.answer.receive(
        [&](ok_atom) {
          ++summary.imported;
          summary.conversations.push_back(p.id);
          counted.with({"imported"}).add();
        },
        [&](caf::error& e) {
          auto f = to_failure(e, errc::db_unavailable);
          if (f.code == errc::conflict) {  // its source was imported meanwhile
            ++summary.skipped;
            counted.with({"skipped"}).add();
          } else if (f.code == errc::internal || f.code == errc::invalid_argument) {
            // A value the database refused: this entry's fault, not the import's.
            summary.errors.emplace_back(p.index, f.detail);
            counted.with({"failed"}).add();
          } else if (!stopped_by) {
            stopped_by = f;
          }
        });
  };
  for (std::size_t index = 0; !stopped_by; ++index) {
    if (*stopped) {
      stopped_by = failure{errc::overloaded, "the server is shutting down"};
      break;
    }
    std::optional<outcome<imported_conversation>> item;
    try {
      item = next();
    } catch (const std::exception& e) {
      // A reader's bug must not leave the request unanswered.
      item = failure{errc::internal, std::string("the entry could not be read: ") + e.what()};
    }
    if (!item) break;
    if (!*item) {
      summary.errors.emplace_back(index, item->error().detail);
      counted.with({"failed"}).add();
      continue;
    }
    auto& c = **item;
    std::optional<std::string> known;
    read_job find = [user = user_id, source = c.source](store& db) {
      return caf::make_message(db.find_source(user, source));
    };
    self->request(ctx->db.readers, caf::infinite, read_atom::value, std::move(find))
        .receive([&](std::optional<std::string>& found) { known = std::move(found); },
                 [&](caf::error& e) { stopped_by = to_failure(e, errc::db_unavailable); });
    if (stopped_by) break;
    if (known) {
      ++summary.skipped;
      counted.with({"skipped"}).add();
      continue;
    }
    write_set writes{write::insert_conversation{c.row}};
    for (auto& m : c.messages) writes.push_back(write::insert_message{std::move(m)});
    writes.push_back(write::record_source{user_id, c.source, c.row.id});
    if (in_flight.size() >= import_window) settle_oldest();
    in_flight.push_back({index, c.row.id, send(std::move(writes))});
  }
  while (!in_flight.empty()) settle_oldest();
  if (stopped_by)
    reply(*stopped_by);
  else
    reply(std::move(summary));
}

class actor_engine final : public engine {
 public:
  actor_engine(const settings& cfg, std::shared_ptr<const model_registry> models,
               const store_factory& stores, std::shared_ptr<const engine_clock> clock)
      : sweeper_(clock), system_(configure(system_cfg_, cfg)) {
    ctx_.cfg = cfg;
    ctx_.clock = std::move(clock);
    ctx_.deadlines = &sweeper_;
    ctx_.models = std::move(models);
    ctx_.db = spawn_persistence(system_, cfg.database, stores);
    ctx_.dir = std::make_unique<directory>(cfg.actors.max_live, [this](const std::string& id) {
      return spawn_loading_conversation(system_, &ctx_, id);
    });
    if (cfg.database.url.kind == database_url::backend::postgresql) {
      change_listener::handlers on;
      on.changed = [this](const conversation_change& c) { on_change(c); };
      on.resumed = [this] { on_missed_changes(); };
      // A user's writes through another instance hold their replica reads
      // back here too, from the moment this instance hears of them.
      if (auto positions = ctx_.db.positions) {
        on.written_elsewhere = [positions](wal_position at, const whose_writes& whose) {
          positions->heard(at, whose);
        };
        on.listening_from = [positions](std::optional<wal_position> at) {
          positions->listening(at);
        };
      }
      changes_ = std::make_unique<change_listener>(cfg.database.url.target, std::move(on));
      // Listening before any conversation is held: none can miss a change
      // committed before its instance listened.
      auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
      while (!changes_->listening() && std::chrono::steady_clock::now() < until)
        std::this_thread::sleep_for(milliseconds(10));
      if (!changes_->listening())
        spdlog::warn("database: not yet listening for other instances' changes; serving anyway");
    }
  }

  ~actor_engine() override { shutdown(); }

  // engine overrides

  const model_registry& models() const override { return *ctx_.models; }

  void create_conversation(new_conversation request, std::optional<idempotency_claim> claim,
                           reply_fn<exchange_answer> reply) override {
    if (stopped_) {
      reply(shutting_down());
      return;
    }
    auto id = make_uuid_v7();
    auto actor = spawn_new_conversation(system_, &ctx_, id);
    ctx_.dir->insert_new(id, actor);
    // The new actor reads its mailbox before it can stop: a request dropped
    // from it failed there, and delivering it elsewhere would not create.
    completion<exchange_answer> caller(
        answer_within(std::move(reply), operation_timeout(), errc::overloaded), nullptr);
    caf::anon_send(actor, create_atom::value, std::move(request), std::move(claim),
                   std::move(caller));
  }

  void get_conversation(std::string user_id, std::string id,
                        reply_fn<conversation_record> reply) override {
    // Read from the database, not from the conversation's actor: another
    // Parley process on the same database may have changed it since.
    read<std::optional<conversation_record>>([id](store& db) { return db.find_conversation(id); },
                                             [this, user_id, id, reply = std::move(reply)](
                                                 outcome<std::optional<conversation_record>> r) {
                                               if (!r) {
                                                 reply(r.error());
                                               } else if (!*r || (*r)->user_id != user_id) {
                                                 reply(conversation_not_found(id));
                                               } else {
                                                 (*r)->running = ctx_.running.find(id);
                                                 reply(std::move(**r));
                                               }
                                             });
  }

  void list_conversations(std::string user_id, unsigned limit,
                          std::optional<conversation_cursor> after,
                          reply_fn<conversation_page> reply) override {
    read<conversation_page>(
        [this, user_id, limit, after](store& db) {
          auto page = db.list_conversations(user_id, limit, after);
          for (auto& row : page.rows) row.running = ctx_.running.find(row.id);
          return page;
        },
        std::move(reply), user_id);
  }

  void update_conversation(std::string user_id, std::string id, conversation_patch patch,
                           reply_fn<conversation_record> reply) override {
    ask_conversation<conversation_record>(id, std::move(reply), update_atom::value,
                                          std::move(user_id), std::move(patch));
  }

  void delete_conversation(std::string user_id, std::string id, reply_fn<done> reply) override {
    ask_conversation<done>(id, std::move(reply), delete_atom::value, std::move(user_id));
  }

  void list_messages(std::string user_id, std::string id, history_query query,
                     reply_fn<message_page> reply) override {
    ask_conversation<message_page>(id, std::move(reply), history_atom::value, std::move(user_id),
                                   query);
  }

  void send_message(std::string user_id, std::string id, send_params params,
                    std::optional<idempotency_claim> claim,
                    reply_fn<exchange_answer> reply) override {
    ask_conversation<exchange_answer>(id, std::move(reply), send_atom::value, std::move(user_id),
                                      std::move(params), std::move(claim));
  }

  void edit_message(std::string user_id, std::string id, std::string message_id,
                    shared_text content, reply_fn<message_record> reply) override {
    ask_conversation<message_record>(id, std::move(reply), edit_atom::value, std::move(user_id),
                                     std::move(message_id), std::move(content));
  }

  void delete_message(std::string user_id, std::string id, std::string message_id,
                      reply_fn<done> reply) override {
    ask_conversation<done>(id, std::move(reply), remove_atom::value, std::move(user_id),
                           std::move(message_id));
  }

  void regenerate(std::string user_id, std::string id, regenerate_params params,
                  std::optional<idempotency_claim> claim,
                  reply_fn<exchange_answer> reply) override {
    ask_conversation<exchange_answer>(id, std::move(reply), regen_atom::value, std::move(user_id),
                                      std::move(params), std::move(claim));
  }

  void fork_conversation(std::string user_id, std::string id, fork_request request,
                         std::optional<idempotency_claim> claim,
                         reply_fn<exchange_answer> reply) override {
    ask_conversation<exchange_answer>(id, std::move(reply), fork_atom::value, std::move(user_id),
                                      std::move(request), std::move(claim));
  }

  void watch(std::string user_id, std::string id, std::shared_ptr<conversation_subscriber> s,
             reply_fn<done> reply) override {
    ask_conversation<done>(id, std::move(reply), watch_atom::value, std::move(user_id),
                           std::move(s));
  }

  void unwatch(const std::string& id, std::shared_ptr<conversation_subscriber> s) override {
    // An actor with watchers stays live, so there is one to tell unless it is gone.
    if (auto actor = ctx_.dir->find(id)) caf::anon_send(actor, unwatch_atom::value, std::move(s));
  }

  void resume(std::string user_id, std::string id, std::optional<run_position> from,
              std::shared_ptr<conversation_subscriber> s, bool follow,
              reply_fn<resume_outcome> reply) override {
    auto answer = [this, id, from, s, reply](outcome<resume_outcome> r) mutable {
      if (!r || *r != resume_outcome::not_held) {
        reply(std::move(r));
        return;
      }
      resume_from_database(id, *from, s, std::move(reply));
    };
    ask_conversation<resume_outcome>(id, std::move(answer), resume_atom::value, std::move(user_id),
                                     from, std::move(s), follow);
  }

  void list_summaries(std::string user_id, std::string id,
                      reply_fn<std::vector<summary_record>> reply) override {
    read_outcome<std::vector<summary_record>>(
        [user_id, id](store& db) -> outcome<std::vector<summary_record>> {
          auto row = db.find_conversation(id);
          if (!row || row->user_id != user_id) return conversation_not_found(id);
          return db.list_summaries(id);
        },
        std::move(reply));
  }

  void compact(std::string user_id, std::string id, std::optional<std::string> model,
               reply_fn<summary_record> reply) override {
    ask_conversation<summary_record>(id, std::move(reply), compact_atom::value, std::move(user_id),
                                     std::move(model));
  }

  void cancel_exchange(std::string user_id, std::string id,
                       reply_fn<message_record> reply) override {
    ask_conversation<message_record>(id, std::move(reply), stop_atom::value, std::move(user_id));
  }

  std::size_t running_exchanges() const override { return ctx_.running.size(); }

  void cancel_running() override {
    for (auto& id : ctx_.running.conversations())
      tell_live(id, halt_atom::value,
                completion<message_record>(quiet_answer<message_record>(), nullptr));
  }

  void find_idempotency(std::string user_id, std::string key,
                        reply_fn<std::optional<idempotency_record>> reply) override {
    read<std::optional<idempotency_record>>(
        [user_id, key](store& db) { return db.find_idempotency(user_id, key); }, std::move(reply));
  }

  void usage(std::string user_id, std::string from_day, std::string to_day,
             reply_fn<std::vector<usage_row>> reply) override {
    read<std::vector<usage_row>>(
        [user_id, from_day, to_day](store& db) { return db.usage(user_id, from_day, to_day); },
        std::move(reply), user_id);
  }

  void search(search_request request, reply_fn<search_page> reply) override {
    auto user = request.user_id;
    read<search_page>(
        [request = std::move(request), &seconds = search_seconds_](store& db) {
          auto started = std::chrono::steady_clock::now();
          auto page = db.search(request);
          seconds.observe(
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
          return page;
        },
        std::move(reply), std::move(user));
  }

  void export_conversation(std::string user_id, std::string id, bool whole_tree,
                           reply_fn<conversation_export> reply) override {
    read_outcome<conversation_export>(
        [user_id, id, whole_tree](store& db) -> outcome<conversation_export> {
          auto row = db.find_conversation(id);
          if (!row || row->user_id != user_id) return conversation_not_found(id);
          return whole_tree ? whole_tree_of(db, std::move(*row))
                            : active_branch_of(db, std::move(*row));
        },
        std::move(reply), user_id);
  }

  void export_page(std::string user_id, std::string after, unsigned limit,
                   reply_fn<std::vector<conversation_export>> reply) override {
    read<std::vector<conversation_export>>(
        [user_id, after, limit](store& db) {
          std::vector<conversation_export> out;
          for (auto& row : db.list_conversations_by_id(user_id, after, limit))
            out.push_back(whole_tree_of(db, std::move(row)));
          return out;
        },
        std::move(reply), user_id);
  }

  void import_conversations(std::string user_id, import_reader next,
                            reply_fn<import_summary> reply) override {
    if (stopped_) {
      reply(shutting_down());
      return;
    }
    // Each import holds its body and a thread: a few at once, the rest later.
    if (imports_running_.fetch_add(1) >= max_imports_at_once) {
      imports_running_.fetch_sub(1);
      failure busy{errc::rate_limited, "too many imports are running; try again shortly"};
      busy.retry_after_s = 5;
      reply(std::move(busy));
      return;
    }
    reply_fn<import_summary> done = [this, reply = std::move(reply)](outcome<import_summary> r) {
      imports_running_.fetch_sub(1);
      reply(std::move(r));
    };
    // On an actor of its own thread: reading a large body takes long, and
    // each conversation waits for the writer.
    system_.spawn<caf::detached>(run_import, &ctx_, &stopped_, &import_counts_, std::move(user_id),
                                 std::move(next), std::move(done));
  }

  void complete(stateless_request request, reply_fn<stateless_result> reply) override {
    if (stopped_) {
      reply(shutting_down());
      return;
    }
    // The call's own alarm ends the generation; this bounds the database
    // calls around it (the quota and context reads, the usage write).
    auto& cfg = ctx_.cfg;
    auto limit = milliseconds(cfg.actors.generation_timeout_ms + 4 * cfg.database.timeout_ms);
    completion<stateless_result> caller(
        answer_within(std::move(reply), limit, errc::db_unavailable), nullptr);
    spawn_stateless_completion(system_, &ctx_, std::move(request), std::move(caller));
  }

  void locate_message(std::string user_id, std::string message_id,
                      reply_fn<located_message> reply) override {
    read_outcome<located_message>(
        [user_id, message_id](store& db) -> outcome<located_message> {
          auto m = db.find_message_by_id(message_id);
          auto c = m ? db.find_conversation(m->conversation_id) : std::nullopt;
          if (!c || c->user_id != user_id)
            return failure{errc::not_found, "message " + message_id + " not found"};
          return located_message{std::move(*c), std::move(*m)};
        },
        std::move(reply));
  }

  void check_ready(reply_fn<done> reply) override {
    read<done>(
        [](store& db) {
          db.ping();
          return done{};
        },
        std::move(reply));
  }

  std::size_t live_conversations() const override { return ctx_.dir->size(); }

  void shutdown() override {
    if (stopped_.exchange(true)) return;
    if (changes_) changes_->stop();
    {
      // Everything handed to the writer so far is committed before we stop.
      caf::scoped_actor self{system_};
      self->request(ctx_.db.writer, milliseconds(ctx_.cfg.database.timeout_ms * 2),
                    flush_atom::value)
          .receive([](ok_atom) {}, [](caf::error&) {});
    }
    ctx_.dir->stop_all();
    caf::anon_send_exit(ctx_.db.replica_readers, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(ctx_.db.readers, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(ctx_.db.writer, caf::exit_reason::user_shutdown);
    system_.await_all_actors_done();
    // Whatever still waits is answered now, while its connection can take it.
    sweeper_.stop();
  }

 private:
  static caf::actor_system_config& configure(caf::actor_system_config& sys_cfg,
                                             const settings& cfg) {
    // (CAF 0.17.6's add_error_category<T> does not compile; give the renderer.)
    sys_cfg.add_error_category(errc_category, [](std::uint8_t code, caf::atom_value,
                                                 const caf::message& ctx) {
      return std::string("parley: ") + to_string(static_cast<errc>(code)) + " " + to_string(ctx);
    });
    sys_cfg.set("scheduler.max-threads", static_cast<size_t>(cfg.server.threads));
    // Work sharing (one queue, workers sleep on a condition variable): on two
    // cores work stealing's polling idle workers cost a fifth of the CPU under
    // many small messages (bench/RESULTS.md: streams 62k -> 94k deltas/s,
    // send-message 6,983 -> 7,575 req/s in one run).
    sys_cfg.set("scheduler.policy", caf::atom("sharing"));
    sys_cfg.set("logger.verbosity", caf::atom("quiet"));
    return sys_cfg;
  }

  /// The longest a conversation operation may take: every operation queued
  /// before it may run a generation and its writes first.
  milliseconds operation_timeout() const {
    auto one = ctx_.cfg.actors.generation_timeout_ms + 2 * ctx_.cfg.database.timeout_ms;
    return milliseconds(static_cast<std::int64_t>(one) * (ctx_.cfg.limits.conversation_queue + 1));
  }

  /// An answer for `reply`, failed with `on_timeout` unless given within `timeout`.
  template <class T>
  std::shared_ptr<typed_answer<T>> answer_within(reply_fn<T> reply, milliseconds timeout,
                                                 errc on_timeout) {
    auto answer = std::make_shared<typed_answer<T>>(&sweeper_, std::move(reply));
    sweeper_.add(answer, timeout, on_timeout);
    return answer;
  }

  /// An answer nobody waits for, dropped on its deadline.
  template <class T>
  std::shared_ptr<typed_answer<T>> quiet_answer() {
    return answer_within<T>([](outcome<T>) {}, operation_timeout(), errc::overloaded);
  }

  /// Sends `args` to the conversation's actor if one is live here.
  template <class... Ts>
  bool tell_live(const std::string& id, Ts&&... args) {
    auto actor = ctx_.dir->find(id);
    if (actor) caf::anon_send(actor, std::forward<Ts>(args)...);
    return static_cast<bool>(actor);
  }

  /// Another instance committed a change to conversation c: the actor holding
  /// it here, if any, reloads and tells its watchers. One not held here is
  /// read fresh when next asked for.
  void on_change(const conversation_change& c) {
    if (c.instance == instance_id() || stopped_) return;
    if (tell_live(c.conversation_id, changed_atom::value, c.version.value_or(-1),
                  completion<done>(quiet_answer<done>(), nullptr)))
      remote_changes_.add();
  }

  /// Changes may have been missed while not listening: every live actor
  /// checks its version.
  void on_missed_changes() {
    if (stopped_) return;
    for (auto& id : ctx_.dir->live_ids())
      tell_live(id, changed_atom::value, std::int64_t{0},
                completion<done>(quiet_answer<done>(), nullptr));
  }

  /// Hands a request straight to the conversation's actor; the actor answers
  /// `reply` itself.
  template <class T, class... Ts>
  void ask_conversation(std::string id, reply_fn<T> reply, Ts... args) {
    if (stopped_) {
      reply(shutting_down());
      return;
    }
    auto answer = answer_within(std::move(reply), operation_timeout(), errc::overloaded);
    deliver(std::move(answer), std::make_shared<const std::tuple<Ts...>>(std::move(args)...),
            std::move(id), 0);
  }

  /// Sends `request` to the conversation's live actor (or a new one). An
  /// actor that passivated between the lookup and the delivery drops the
  /// request unread; it is then delivered again, to the actor now live.
  template <class T, class... Ts>
  void deliver(std::shared_ptr<typed_answer<T>> answer,
               std::shared_ptr<const std::tuple<Ts...>> request, std::string id, int tries) {
    auto target = ctx_.dir->find_or_spawn(id);
    completion<T> caller(
        std::move(answer),
        [this, request, id, tries](const std::shared_ptr<pending_answer>& dropped, bool accepted) {
          if (accepted || tries >= max_redeliveries || stopped_) {
            dropped->fail({errc::internal, "the conversation stopped before it could answer"});
            return;
          }
          deliver(std::static_pointer_cast<typed_answer<T>>(dropped), request, id, tries + 1);
        });
    std::apply([&](const auto&... args) { caf::anon_send(target, args..., std::move(caller)); },
               *request);
  }

  /// Runs `job` on a reader, which answers `reply` itself. A read of
  /// `replica_user`'s data that may lag behind other users' writes (a list,
  /// a search, usage, an export) names them, and may go to the read replica.
  template <class T>
  void read(std::function<T(store&)> job, reply_fn<T> reply, std::string replica_user = {}) {
    read_outcome<T>([job = std::move(job)](store& db) -> outcome<T> { return job(db); },
                    std::move(reply), std::move(replica_user));
  }

  /// A run its conversation no longer holds (it ended long ago, or the
  /// process restarted): its stored reply is its `done`; a run record
  /// without a reply is a reply that never came. Each counts as expired
  /// `streams.retention_s` after it ended (or began, if it never ended).
  void resume_from_database(const std::string& id, const run_position& from,
                            std::shared_ptr<conversation_subscriber> s,
                            reply_fn<resume_outcome> reply) {
    auto retention = static_cast<unix_ms>(ctx_.cfg.streams.retention_s) * 1000;
    auto longest_run = static_cast<unix_ms>(ctx_.cfg.actors.generation_timeout_ms);
    read_outcome<resume_outcome>(
        [id, from, s, now = ctx_.clock->wall_ms(), retention,
         longest_run](store& db) -> outcome<resume_outcome> {
          conversation_event e;
          e.run_id = &from.run_id;
          e.n = from.after + 1;  // its true number is not kept: the next one the client expects
          auto reply = db.find_message(id, from.run_id);
          std::optional<run_record> run;
          if (reply && reply->role == "assistant" && now - reply->created_at <= retention) {
            e.type = conversation_event::kind::done;
            e.message = &*reply;
          } else if (!reply && (run = db.find_run(id, from.run_id)) &&
                     now - run->started_at <= longest_run + retention) {
            e.type = conversation_event::kind::failed;
            failure why{errc::provider_error, reply_interrupted_detail};
            why.message_id = run->message_id;
            e.reason = std::move(why);
          } else {
            return failure{errc::not_found, "run " + from.run_id + " not found"};
          }
          s->deliver(e);
          return resume_outcome::streaming;
        },
        std::move(reply));
  }

  /// The same for a job that may answer a failure of its own.
  template <class T>
  void read_outcome(std::function<outcome<T>(store&)> job, reply_fn<T> reply,
                    std::string replica_user = {}) {
    if (stopped_) {
      reply(shutting_down());
      return;
    }
    completion<T> caller(answer_within(std::move(reply), milliseconds(ctx_.cfg.database.timeout_ms),
                                       errc::db_unavailable),
                         nullptr);
    auto request = read_completing(std::move(job), std::move(caller));
    if (replica_user.empty())
      caf::anon_send(ctx_.db.readers, read_atom::value, std::move(request));
    else
      caf::anon_send(ctx_.db.replica_readers, read_atom::value, std::move(replica_user),
                     std::move(request));
  }

  // Outlives the actor system: actors answer through it until they are gone.
  deadline_sweeper sweeper_;
  caf::actor_system_config system_cfg_;
  caf::actor_system system_;
  engine_context ctx_;
  std::atomic<bool> stopped_{false};
  std::atomic<unsigned> imports_running_{0};
  /// PostgreSQL only: other instances' committed changes.
  std::unique_ptr<change_listener> changes_;
  metrics::counter& remote_changes_ = metrics::default_registry().counter_named(
      "parley_remote_changes_total",
      "Changes to conversations committed by other Parley instances on the same database that "
      "reached this one while it held the conversation's actor.");
  // Registered when the engine starts, so that they are scraped before the
  // first search or import.
  metrics::histogram& search_seconds_ = metrics::default_registry().histogram_named(
      "parley_search_duration_seconds",
      "Time the database took to answer one search (GET /v1/search).", metrics::latency_buckets());
  metrics::family<metrics::counter>& import_counts_ = metrics::default_registry().counters(
      "parley_import_conversations_total",
      "Conversations imports read, by what became of them: imported, skipped (their source "
      "was imported before) or failed.",
      {"outcome"});
};

}  // namespace

std::unique_ptr<engine> engine::start(const settings& cfg,
                                      std::shared_ptr<const model_registry> models,
                                      store_factory stores,
                                      std::shared_ptr<const engine_clock> clock) {
  if (!stores) stores = make_store_factory(cfg.database.url);
  if (!clock) clock = machine_clock();
  return std::make_unique<actor_engine>(cfg, std::move(models), std::move(stores),
                                        std::move(clock));
}

void engine::migrate(const settings& cfg) { make_store_factory(cfg.database.url)()->migrate(); }

}  // namespace parley
