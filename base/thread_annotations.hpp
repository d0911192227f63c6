#pragma once

// Clang's thread-safety analysis (-Wthread-safety), as leveldb's
// port/thread_annotations.h spells it: a member says which mutex guards it,
// a function which mutexes it needs held or takes. Other compilers ignore
// them. The sanitized build (clang) turns every finding into an error.

#if defined(__clang__)
#define PARLEY_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define PARLEY_THREAD_ANNOTATION(x)
#endif

/// The class is a lock (a "capability").
#define CAPABILITY(name) PARLEY_THREAD_ANNOTATION(capability(name))
/// An object that holds a lock for its lifetime.
#define SCOPED_CAPABILITY PARLEY_THREAD_ANNOTATION(scoped_lockable)
/// The member is read and written only with `m` held.
#define GUARDED_BY(m) PARLEY_THREAD_ANNOTATION(guarded_by(m))
/// Callers must hold the locks.
#define REQUIRES(...) PARLEY_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
/// Callers must not hold the locks (the function takes them).
#define EXCLUDES(...) PARLEY_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
/// The function takes the locks (the object's own when none are named).
#define ACQUIRE(...) PARLEY_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
/// The function lets go of the locks (the object's own when none are named).
#define RELEASE(...) PARLEY_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
