// The control for unguarded_read.cpp: the same read with the mutex held
// compiles cleanly, so that its failure can only come from the analysis.
#include "base/mutex.hpp"

struct account {
  parley::mutex mutex;
  int balance GUARDED_BY(mutex) = 0;
};

int read_locked(account& a) {
  parley::mutex_lock lock(a.mutex);
  return a.balance;
}
