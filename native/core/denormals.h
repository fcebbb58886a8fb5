// Subnormal floats (below 1.2e-38 in float32, 2.2e-308 in float64) take a slow microcode path
// on x86 CPUs, tens of times slower per operation. Training can produce them in bulk: hidden
// states or gradients that decay towards zero along a long sequence. Our compute threads
// therefore flush them to zero (FTZ and DAZ on x86, FZ on AArch64), as the usual ML
// frameworks do; ORTHORNN_FLUSH_DENORMALS=0 keeps them. Only threads this library creates are
// changed, never the caller's.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace orthornn {

/** Whether our threads flush subnormals (ORTHORNN_FLUSH_DENORMALS, read once). */
inline bool flushDenormalsEnabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("ORTHORNN_FLUSH_DENORMALS");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return enabled;
}

/** Sets flush-to-zero for the calling thread, when enabled. */
inline void flushDenormalsOnThisThread() {
  if (!flushDenormalsEnabled()) return;
#if defined(__x86_64__) || defined(__i386__)
  _mm_setcsr(_mm_getcsr() | 0x8040);  // FTZ (bit 15) and DAZ (bit 6)
#elif defined(__aarch64__)
  uint64_t fpcr;
  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  __asm__ volatile("msr fpcr, %0" : : "r"(fpcr | (uint64_t(1) << 24)));  // FZ
#endif
}

}  // namespace orthornn
