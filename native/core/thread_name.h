// Names the threads this library creates, so that top -H, perf and /proc/<pid>/task/*/comm
// say which is which: a context's worker ("orthornn-ctx"), the CPU loop pool ("orthornn-pool")
// and a recurrence's team ("orthornn-team"). OpenBLAS names its own ("openblas_thread" or none).
#pragma once

#if defined(__linux__)
#include <pthread.h>
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

}  // namespace orthornn
