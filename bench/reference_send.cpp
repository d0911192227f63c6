// parley-bench-reference-send: the thinnest durable send path this stack
// allows, so that Parley's send path can be put beside it in the same run
// (bench/scenarios/send-floor.sh). It speaks just enough of the API for parley-load: GET /health,
// POST /v1/conversations and POST /v1/conversations/{id}/messages (echo reply). No authentication,
// limits, idempotency, history or passivation: it is a floor, not a server.
//
// Three threads touch a send:
// 1. a RESTinio I/O thread parses the body and hands the text and the request
//    to the conversation's actor (found or spawned in a mutex-guarded map);
// 2. the actor (a CAF worker) appends the text and the reply to its window
//    (shared, never copied), renders the answer and queues one writer job;
// 3. the writer takes everything queued, commits it in one transaction
//    (prepared statements) and answers each request from its own thread.

#include "base/clock.hpp"
#include "base/json_text.hpp"
#include "base/mutex.hpp"
#include "base/uuid.hpp"

#include <soci/postgresql/soci-postgresql.h>
#include <soci/soci.h>
#include <soci/sqlite3/soci-sqlite3.h>
#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <restinio/all.hpp>

#include <atomic>
#include <csignal>
#include <deque>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace {

using text_ptr = std::shared_ptr<const std::string>;

/// A problem+json answer with `title`.
restinio::request_handling_status_t problem(const restinio::request_handle_t& req,
                                            restinio::http_status_line_t status,
                                            const char* title) {
  return req->create_response(status)
      .append_header(restinio::http_field::content_type, "application/problem+json")
      .set_body(std::string(R"({"title":")") + title + "\"}")
      .done();
}

struct writer_job {
  restinio::request_handle_t request;
  std::string conversation_id;
  std::int64_t seq = 0;  ///< of the user message; the reply is seq + 1
  std::string user_id, reply_id;
  text_ptr user_text, reply_text;
  std::int64_t at = 0;
  std::string answer;   ///< the rendered response body
  bool create = false;  ///< a new conversation: one insert, answered 201
};

/// One thread, one database session: commits whatever is queued in one
/// transaction, then answers each request of it. SQLite as Parley runs it
/// (WAL, synchronous=NORMAL), or PostgreSQL given libpq's key=value string.
class writer {
 public:
  writer(const std::string& sqlite_path, const std::string& postgresql) {
    if (postgresql.empty()) {
      db_.open(soci::sqlite3, "db=" + sqlite_path);
      db_ << "PRAGMA journal_mode=WAL";
      db_ << "PRAGMA synchronous=NORMAL";
    } else {
      db_.open(soci::postgresql, postgresql);
    }
    db_ << "CREATE TABLE IF NOT EXISTS conversations (id TEXT PRIMARY KEY, last_seq BIGINT, "
           "updated_at BIGINT)";
    db_ << "CREATE TABLE IF NOT EXISTS messages (id TEXT PRIMARY KEY, conversation_id TEXT, "
           "seq BIGINT, role TEXT, content TEXT, created_at BIGINT, "
           "UNIQUE (conversation_id, seq))";
    thread_ = std::thread([this] { run(); });
  }

  ~writer() {
    {
      parley::mutex_lock lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

  void push(writer_job job) {
    {
      parley::mutex_lock lock(mutex_);
      queue_.push_back(std::move(job));
    }
    wake_.notify_one();
  }

 private:
  void run() {
    std::string id, conversation, role, content;
    std::int64_t seq = 0, at = 0;
    soci::statement insert_message =
        (db_.prepare << "INSERT INTO messages (id, conversation_id, seq, role, content, "
                        "created_at) VALUES (:id, :c, :seq, :role, :content, :at)",
         soci::use(id), soci::use(conversation), soci::use(seq), soci::use(role),
         soci::use(content), soci::use(at));
    soci::statement upsert_conversation =
        (db_.prepare << "INSERT INTO conversations (id, last_seq, updated_at) VALUES (:c, :seq, "
                        ":at) ON CONFLICT (id) DO UPDATE SET last_seq = excluded.last_seq, "
                        "updated_at = excluded.updated_at",
         soci::use(conversation), soci::use(seq), soci::use(at));
    std::vector<writer_job> batch;
    for (;;) {
      {
        parley::mutex_lock lock(mutex_);
        while (!stopping_ && queue_.empty()) wake_.wait(mutex_);
        if (queue_.empty()) return;
        while (!queue_.empty() && batch.size() < 512) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      bool committed = false;
      try {
        soci::transaction tx(db_);
        for (auto& job : batch) {
          conversation = job.conversation_id;
          at = job.at;
          if (!job.create) {
            id = job.user_id, seq = job.seq, role = "user", content = *job.user_text;
            insert_message.execute(true);
            id = job.reply_id, seq = job.seq + 1, role = "assistant", content = *job.reply_text;
            insert_message.execute(true);
          } else {
            seq = 0;
          }
          upsert_conversation.execute(true);
        }
        tx.commit();
        committed = true;
      } catch (const std::exception& e) {
        // The transaction rolled back; every request of the batch hears so.
        std::cerr << "parley-bench-reference-send: " << e.what() << "\n";
      }
      for (auto& job : batch) {
        if (!committed) {
          problem(job.request, restinio::status_service_unavailable(), "the commit failed");
          continue;
        }
        job.request
            ->create_response(job.create ? restinio::status_created() : restinio::status_ok())
            .append_header(restinio::http_field::content_type, "application/json")
            .set_body(std::move(job.answer))
            .done();
      }
      batch.clear();
    }
  }

  soci::session db_;
  parley::mutex mutex_;
  parley::condition wake_;
  std::deque<writer_job> queue_ GUARDED_BY(mutex_);
  bool stopping_ GUARDED_BY(mutex_) = false;
  std::thread thread_;
};

}  // namespace

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(restinio::request_handle_t)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(text_ptr)

namespace {

struct conversation_state {
  std::string id;
  std::int64_t last_seq = 0;
  std::vector<text_ptr> window;
};

std::string message_json(const std::string& id, const std::string& conversation, std::int64_t seq,
                         const char* role, const std::string& content, std::int64_t at) {
  std::string out = "{\"id\":\"" + id + "\",\"conversation_id\":\"" + conversation +
                    "\",\"seq\":" + std::to_string(seq) + ",\"role\":\"" + role + "\",\"content\":";
  parley::append_json_string(out, content);
  out += ",\"created_at\":\"" + parley::format_rfc3339(at) + "\"}";
  return out;
}

caf::behavior conversation(caf::stateful_actor<conversation_state>* self, std::string id,
                           writer* w) {
  self->state.id = std::move(id);
  return {[=](restinio::request_handle_t& request, text_ptr& text) {
    auto& st = self->state;
    writer_job job;
    job.request = std::move(request);
    job.conversation_id = st.id;
    job.seq = st.last_seq + 1;
    st.last_seq += 2;
    job.user_id = parley::make_uuid_v7();
    job.reply_id = parley::make_uuid_v7();
    job.user_text = std::move(text);
    job.reply_text = std::make_shared<const std::string>("Echo: " + *job.user_text);
    job.at = parley::now_ms();
    st.window.push_back(job.user_text);
    st.window.push_back(job.reply_text);
    job.answer =
        "{\"message\":" +
        message_json(job.user_id, st.id, job.seq, "user", *job.user_text, job.at) + ",\"reply\":" +
        message_json(job.reply_id, st.id, job.seq + 1, "assistant", *job.reply_text, job.at) + "}";
    w->push(std::move(job));
  }};
}

/// The conversations' actors by id, found or spawned from any I/O thread.
class directory {
 public:
  directory(caf::actor_system& sys, writer& w) : sys_(sys), writer_(w) {}

  caf::actor find_or_spawn(const std::string& id) {
    parley::mutex_lock lock(mutex_);
    auto& a = actors_[id];
    if (!a) a = sys_.spawn(conversation, id, &writer_);
    return a;
  }

 private:
  caf::actor_system& sys_;
  writer& writer_;
  parley::mutex mutex_;
  std::unordered_map<std::string, caf::actor> actors_ GUARDED_BY(mutex_);
};

}  // namespace

int main(int argc, char** argv) {
  std::uint16_t port = 0;
  std::string database = "reference.db";
  std::string postgresql;
  unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--port")
      port = static_cast<std::uint16_t>(std::stoi(argv[i + 1]));
    else if (flag == "--database")
      database = argv[i + 1];
    else if (flag == "--postgresql")
      postgresql = argv[i + 1];
    else if (flag == "--threads")
      threads = static_cast<unsigned>(std::stoi(argv[i + 1]));
    else {
      std::cerr << "usage: parley-bench-reference-send [--port N] [--database SQLITE_FILE | "
                   "--postgresql 'host=... port=... user=... dbname=...'] [--threads N]\n";
      return 2;
    }
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // The writer outlives the actor system: actors push to it until they stop.
  writer w(database, postgresql);
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", static_cast<size_t>(threads));
  cfg.set("scheduler.policy", caf::atom("sharing"));
  caf::actor_system sys{cfg};
  directory conversations(sys, w);

  auto handler = [&](restinio::request_handle_t req) -> restinio::request_handling_status_t {
    const auto target = req->header().path();
    const auto method = req->header().method();
    if (method == restinio::http_method_get() && target == "/health")
      return req->create_response()
          .append_header(restinio::http_field::content_type, "application/json")
          .set_body(R"({"status":"ok"})")
          .done();
    if (method != restinio::http_method_post())
      return problem(req, restinio::status_not_found(), "not served by the reference");
    if (target == "/v1/conversations") {
      writer_job job;
      job.request = req;
      job.conversation_id = parley::make_uuid_v7();
      job.create = true;
      job.at = parley::now_ms();
      job.answer = "{\"id\":\"" + job.conversation_id + "\"}";
      w.push(std::move(job));
      return restinio::request_accepted();
    }
    constexpr std::string_view prefix = "/v1/conversations/", suffix = "/messages";
    if (target.size() <= prefix.size() + suffix.size() ||
        target.substr(0, prefix.size()) != prefix ||
        target.substr(target.size() - suffix.size()) != suffix)
      return problem(req, restinio::status_not_found(), "not served by the reference");
    auto id =
        std::string(target.substr(prefix.size(), target.size() - prefix.size() - suffix.size()));
    auto body = nlohmann::json::parse(req->body(), nullptr, false);
    if (!body.is_object() || !body["content"].is_string())
      return problem(req, restinio::status_bad_request(), "no content");
    auto text = std::make_shared<const std::string>(body["content"].get<std::string>());
    caf::anon_send(conversations.find_or_spawn(id), req, std::move(text));
    return restinio::request_accepted();
  };

  using traits = restinio::traits_t<restinio::asio_timer_manager_t, restinio::null_logger_t>;
  std::atomic<std::uint16_t> bound_port{0};
  restinio::http_server_t<traits> server{
      restinio::own_io_context(), [&](auto& s) {
        s.port(port)
            .address("127.0.0.1")
            .request_handler(handler)
            .acceptor_post_bind_hook([&](asio::ip::tcp::acceptor& acceptor) {
              bound_port = acceptor.local_endpoint().port();
            });
      }};
  restinio::on_pool_runner_t<restinio::http_server_t<traits>> runner(threads, server);
  runner.start(
      [&]() noexcept {
        std::cout << "listening on http://127.0.0.1:" << bound_port.load() << std::endl;
      },
      [](std::exception_ptr) noexcept { std::exit(1); });
  int received = 0;
  sigwait(&signals, &received);
  runner.stop();
  runner.wait();
  return 0;
}
