#include "orthogonal.h"

namespace orthornn {

void cayleyStep(Backend& b, DType dt, int64_t n, void* M, const void* G, double lr, Workspace& ws) {
  const size_t nn = size_t(n) * size_t(n);
  void* A = ws.get(0, nn, dt);
  void* L = ws.get(1, nn, dt);
  void* R = ws.get(2, nn, dt);
  int32_t* piv = ws.get<int32_t>(3, size_t(n));
  // A = G Mᵀ − M Gᵀ (skew-symmetric)
  b.gemm(dt, false, true, n, n, n, 1.0, G, n, M, n, 0.0, A, n);
  b.gemm(dt, false, true, n, n, n, -1.0, M, n, G, n, 1.0, A, n);
  // L = I + η/2 A
  b.axpby(dt, int64_t(nn), lr / 2, A, 0.0, A, L);
  b.addDiagonal(dt, n, 1.0, L);
  // R = (I − η/2 A) M = M − η/2 A M
  b.copy(R, M, nn * dtypeSize(dt));
  b.gemm(dt, false, false, n, n, n, -lr / 2, A, n, M, n, 1.0, R, n);
  // M ← L⁻¹ R. I + (skew) is never singular: its eigenvalues are 1 + iλ.
  b.luFactor(dt, n, L, piv);
  b.luSolve(dt, n, n, L, piv, R);
  b.copy(M, R, nn * dtypeSize(dt));
}

void orthogonalityError(Backend& b, DType dt, int64_t n, const void* M, void* out, Workspace& ws) {
  const size_t nn = size_t(n) * size_t(n);
  void* P = ws.get(0, nn, dt);
  b.gemm(dt, true, false, n, n, n, 1.0, M, n, M, n, 0.0, P, n);
  b.addDiagonal(dt, n, -1.0, P);
  b.reduce(dt, Reduction::MaxAbs, int64_t(nn), P, out);
}

void reorthonormalize(Backend& b, DType dt, int64_t n, void* M, Workspace& ws) {
  const size_t nn = size_t(n) * size_t(n);
  void* Q = ws.get(0, nn, dt);
  void* R = ws.get(1, nn, dt);
  b.qr(dt, n, n, M, Q, R);
  b.copy(M, Q, nn * dtypeSize(dt));
}

}  // namespace orthornn
