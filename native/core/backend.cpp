// Default implementations of the composite Backend ops, in terms of the primitive ones.
#include "backend.h"

namespace orthornn {
namespace {
char* at(void* base, int64_t elements, DType dt) { return static_cast<char*>(base) + elements * int64_t(dtypeSize(dt)); }
const char* at(const void* base, int64_t elements, DType dt) {
  return static_cast<const char*>(base) + elements * int64_t(dtypeSize(dt));
}
}  // namespace

void Backend::elmanForwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* Wt,
                                     const void* bias, void* A, void* H) {
  for (int64_t t = 0; t < T; ++t) {
    char* At = at(A, t * B * n, dt);
    gemm(dt, false, false, B, n, n, 1.0, at(H, t * B * n, dt), n, Wt, n, 1.0, At, n);
    biasActivation(dt, act, B, n, At, bias, at(H, (t + 1) * B * n, dt));
  }
}

void Backend::elmanBackwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* W,
                                      const void* H, void* dH, void* dA, void* hiddenNorms, void* db,
                                      int64_t givenFrom) {
  if (givenFrom > 0) fill(dt, givenFrom * B * n, 0.0, dH);
  for (int64_t t = T - 1; t >= 0; --t) {
    char* dHt = at(dH, t * B * n, dt);
    if (t + 1 < T) gemm(dt, false, false, B, n, n, 1.0, at(dA, (t + 1) * B * n, dt), n, W, n, 1.0, dHt, n);
    activationBackward(dt, act, B * n, dHt, at(H, (t + 1) * B * n, dt), at(dA, t * B * n, dt));
  }
  if (hiddenNorms) groupNorms(dt, T, B * n, dH, hiddenNorms);
  if (db) columnSum(dt, T * B, n, dA, 0.0, db);
}

}  // namespace orthornn
