// The CPU's Cayley step in the frame form for large n: the system, its LU factorisation
// without pivots and the two triangular solves with n right-hand sides, in 64 × 64 tiles on
// small JIT kernels (libxsmm). At n = 1024 OpenBLAS runs the solves at about half its
// square-product rate and the factorisation at about a third (its triangular solves on small
// blocks are what is slow).
//  - The system is built from F straight into tiles; the factorisation is right-looking, its
//    diagonal tiles factorised in double and applied through their inverses, the Schur updates
//    summed in separate tiles and subtracted from a tile once (a tile that took each update
//    directly was rounded 16 times at n = 1024, with 7× the solve error of LAPACK's getrs).
//  - The solves split M's rows into one slab per thread of the element-wise pool, each packed,
//    solved against the factor's tiles and written back as 2 X − M.
#pragma once
#include <cstdint>

namespace orthornn {

// M ← 2 X − M where X S = M, S = I + α(F − Fᵀ) the Cayley system (F and M row-major n × n).
// Returns false, having changed nothing, where it does not apply: a build without libxsmm, n
// below kFastCayleyMinN or not a multiple of 64, S not strictly diagonally dominant (then LU
// may need pivots; also on NaN or ∞), or a zero pivot. Scratch, kept between calls: about 2n²
// elements for the factor, 2n²/threads per thread.
template <typename T>
bool fastCayleyFrameSolve(int n, T alpha, const T* F, T* M);

// Measured at n = 512 no faster than OpenBLAS, at 1024 faster.
constexpr int kFastCayleyMinN = 768;

}  // namespace orthornn
