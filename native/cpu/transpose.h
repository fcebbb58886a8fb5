// Transposes for the CPU backend. A plain tiled loop runs 2–4× slower than these on n = 1024
// float32 (rows a page apart fall into the same few L1 sets, and the speed moved with the
// buffers' relative addresses): with AVX2, 8×8 (float) or 4×4 (double) blocks go through
// registers; elsewhere, scalar loops.
#pragma once
#include <cstdint>

namespace orthornn {

// out[j, i] = x[i, j] for the columns j ∈ [j0, j1) of the row-major rows × cols x; out is
// cols × rows and must not overlap x.
template <typename T>
void transposeColumns(const T* x, int64_t rows, int64_t cols, T* out, int64_t j0, int64_t j1);

// out[i, j] = a (x[i, j] − x[j, i]) for the rows i ∈ [i0, i1) of the n × n x; out must not
// overlap x. (The Cayley system I + a (x − xᵀ) adds the identity after.)
template <typename T>
void antisymmetricRows(const T* x, int64_t n, T a, T* out, int64_t i0, int64_t i1);

}  // namespace orthornn
