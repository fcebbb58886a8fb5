// libxsmm's kernels can return with the upper halves of the vector registers in use; until a
// vzeroupper, every legacy-SSE instruction of the code that follows on that thread pays for
// it (measured: the softmax after a forward whose last kernel was libxsmm's took 10.5 ms
// instead of 1, its scalar double arithmetic being SSE). Each thread that ran kernels clears
// the state when its share of the work is done.
#pragma once

namespace orthornn {

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx"))) inline void zeroUpperAvx() { __builtin_ia32_vzeroupper(); }
inline void clearUpperVectorState() {
  static const bool hasAvx = __builtin_cpu_supports("avx");
  if (hasAvx) zeroUpperAvx();
}
#else
inline void clearUpperVectorState() {}
#endif

}  // namespace orthornn
