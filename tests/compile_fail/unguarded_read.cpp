// Must not compile under clang -Wthread-safety -Werror: it reads a member
// without the mutex that guards it. tests/CMakeLists.txt runs the compiler on
// it and expects that diagnostic, so that the annotations of
// base/thread_annotations.hpp are known to be checked, not only written.
#include "base/mutex.hpp"

struct account {
  parley::mutex mutex;
  int balance GUARDED_BY(mutex) = 0;
};

int read_unlocked(account& a) { return a.balance; }
