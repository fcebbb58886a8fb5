// The CPU's fast triangular solves after an unpivoted LU: both triangles for many right-hand
// sides, as the Cayley steps in the frame form need them (Backend::cayleySolveRight). OpenBLAS
// runs these at about half its square-product rate at n = 1024 (its small-block triangular
// solves are what is slow); here the right-hand sides are split into one slab of columns per
// thread of the element-wise pool, and each slab is solved in 64 × 64 tiles by small JIT
// kernels (libxsmm) on packed copies, the diagonal blocks by their inverses (computed in
// double), and each tile's updates summed apart from it and subtracted once, so that it is
// rounded about as often as in a plain substitution.
#pragma once
#include <cstdint>

namespace orthornn {

// Solves L U Y = B and writes α Y + β B in place of B, column-major n × m (leading dimension
// n), with L unit lower and U upper triangular in LU (column-major n × n, LAPACK's layout
// without pivots). Returns
// false, having done nothing, where it does not apply: a build without libxsmm, n below
// kFastSolveMinN or not a multiple of 64, or m not a multiple of 64. Scratch: per thread,
// about 2 n m / threads + 64 n elements, kept between calls.
template <typename T>
bool fastLuSolve(int n, int m, const T* LU, T* B, T alpha = 1, T beta = 0);

// Measured at n = 512 no faster than OpenBLAS's getrs, at 1024 30% faster.
constexpr int kFastSolveMinN = 768;

}  // namespace orthornn
