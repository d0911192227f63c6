#define BOOST_TEST_MODULE mutex
#include <boost/test/unit_test.hpp>

#include "base/mutex.hpp"

#include <atomic>
#include <chrono>
#include <thread>

// base/mutex.hpp: the annotated mutex, its scoped lock and the condition
// variable waited on with it. (That clang rejects a guarded member read
// without its mutex is checked by the compile_fail tests.)

using namespace parley;
using namespace std::chrono_literals;

namespace {

struct counter {
  parley::mutex mutex;
  condition changed;
  int value GUARDED_BY(mutex) = 0;
};

}  // namespace

BOOST_AUTO_TEST_CASE(a_scoped_lock_excludes_other_threads_until_it_lets_go) {
  counter c;
  std::atomic<bool> taken{false};
  std::thread other;
  {
    mutex_lock lock(c.mutex);
    other = std::thread([&] {
      mutex_lock inner(c.mutex);
      taken = true;
      ++c.value;
    });
    std::this_thread::sleep_for(50ms);
    BOOST_TEST(!taken);
    lock.unlock();
    while (!taken) std::this_thread::yield();
    lock.lock();
    BOOST_TEST(c.value == 1);
  }
  other.join();
}

BOOST_AUTO_TEST_CASE(a_wait_ends_when_notified) {
  counter c;
  std::thread setter([&] {
    std::this_thread::sleep_for(20ms);
    mutex_lock lock(c.mutex);
    c.value = 7;
    c.changed.notify_all();
  });
  {
    mutex_lock lock(c.mutex);
    auto until = std::chrono::steady_clock::now() + 10s;
    while (c.value == 0 && c.changed.wait_until(c.mutex, until)) {
    }
    BOOST_TEST(c.value == 7);
    BOOST_TEST((std::chrono::steady_clock::now() < until));
  }
  setter.join();
}

BOOST_AUTO_TEST_CASE(a_wait_with_a_deadline_says_when_it_passed) {
  counter c;
  mutex_lock lock(c.mutex);
  auto start = std::chrono::steady_clock::now();
  bool notified = true;
  while (notified) notified = c.changed.wait_for(c.mutex, 30ms);
  BOOST_TEST((std::chrono::steady_clock::now() - start >= 30ms));
  // The wait gave the mutex back: another thread cannot take it until here.
  std::atomic<bool> taken{false};
  std::thread other([&] {
    mutex_lock inner(c.mutex);
    taken = true;
  });
  std::this_thread::sleep_for(50ms);
  BOOST_TEST(!taken);
  lock.unlock();
  other.join();
  BOOST_TEST(taken);
}

namespace {

/// Takes `m` itself: called by its holder, as a callback of sse_stream or
/// ws_session may be.
int take_again(recursive_mutex& m, int depth) {
  recursive_mutex_lock lock(m);
  return depth + 1;
}

}  // namespace

BOOST_AUTO_TEST_CASE(a_recursive_mutex_can_be_taken_again_by_its_holder) {
  recursive_mutex m;
  recursive_mutex_lock outer(m);
  BOOST_TEST(take_again(m, 1) == 2);  // a plain mutex would deadlock here
}
