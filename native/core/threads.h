// The threads this library creates: their names, so that top -H, perf and
// /proc/<pid>/task/*/comm say which is which (a context's worker "orthornn-ctx", the CPU loop
// pool "orthornn-pool", a recurrence's team "orthornn-team"; OpenBLAS names its own), and
// the background priority a context's worker may take.
#pragma once

#include "error.h"

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>

#include <cerrno>
#include <cstring>
#endif

namespace orthornn {

/** At most 15 characters (Linux's limit); a no-op where threads cannot be named. */
inline void nameThisThread(const char* name) {
#if defined(__linux__)
  pthread_setname_np(pthread_self(), name);
#else
  (void)name;
#endif
}

/** Whether this system has the background priority (Linux's SCHED_IDLE policy). */
#if defined(__linux__) && defined(SCHED_IDLE)
constexpr bool kBackgroundPriority = true;
#else
constexpr bool kBackgroundPriority = false;
#endif

/**
 * The calling thread runs only when a core is otherwise idle (SCHED_IDLE, which needs no
 * privilege), and any thread of normal priority that wakes up takes the core at once. Does
 * nothing where there is no such policy (kBackgroundPriority).
 */
inline void runThisThreadInBackground() {
#if defined(__linux__) && defined(SCHED_IDLE)
  sched_param param{};
  param.sched_priority = 0;
  if (sched_setscheduler(0, SCHED_IDLE, &param) != 0)
    throw Error(ErrorCode::Unsupported, std::string("cannot give the context's thread the background priority: ") + std::strerror(errno));
#endif
}

}  // namespace orthornn
