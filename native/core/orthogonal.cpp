#include "orthogonal.h"

namespace orthornn {

void cayleyStep(Backend& b, DType dt, int64_t n, void* M, const void* G, double lr, Workspace& ws) {
  const size_t nn = size_t(n) * size_t(n);
  void* L = ws.get(0, nn, dt);
  void* Y = ws.get(1, nn, dt);
  int32_t* piv = ws.get<int32_t>(2, size_t(n));
  // A = G Mᵀ − M Gᵀ = X − Xᵀ with X = G Mᵀ: one product instead of two. X goes in Y's buffer.
  b.gemm(dt, false, true, n, n, n, 1.0, G, n, M, n, 0.0, Y, n);
  // L = I + η/2 A in one pass, factorised in place. I + (skew) is never singular: its
  // eigenvalues are 1 + iλ.
  b.cayleySystem(dt, n, lr / 2, Y, L);
  b.luFactorNoPivot(dt, n, L, piv);
  // (I + B)⁻¹(I − B) = 2(I + B)⁻¹ − I, so M_new = 2 L⁻¹ M − M: the solve replaces the
  // product (I − η/2 A) M.
  b.copy(Y, M, nn * dtypeSize(dt));
  b.luSolve(dt, n, n, L, piv, Y);
  b.axpby(dt, int64_t(nn), 2.0, Y, -1.0, M, M);
}

void cayleyStepInFrame(Backend& b, DType dt, int64_t n, void* M, const void* F, double lr, Workspace& ws) {
  // (I + A)⁻¹(I − A) M = M (I + A′)⁻¹(I − A′) when A = M A′ Mᵀ; then as in cayleyStep,
  // M_new = 2 M L⁻¹ − M, with the solve from the right.
  if (b.cayleyFrameSolve(dt, n, lr / 2, F, M)) return;
  b.ran(Fused::CayleyFrameSolve, 0);
  const size_t nn = size_t(n) * size_t(n);
  void* L = ws.get(0, nn, dt);
  b.cayleySystem(dt, n, lr / 2, F, L);
  int32_t* piv = ws.get<int32_t>(2, size_t(n));
  b.luFactorNoPivot(dt, n, L, piv);
  void* Y = ws.get(1, nn, dt);
  b.copy(Y, M, nn * dtypeSize(dt));
  b.luSolveRight(dt, n, n, L, piv, Y);
  b.axpby(dt, int64_t(nn), 2.0, Y, -1.0, M, M);
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
