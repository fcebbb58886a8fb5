#include "solve.h"

#ifndef ORTHORNN_WITH_LIBXSMM

namespace orthornn {
template <typename T>
bool fastLuSolve(int, int, const T*, T*, T, T) {
  return false;
}
template bool fastLuSolve<float>(int, int, const float*, float*, float, float);
template bool fastLuSolve<double>(int, int, const double*, double*, double, double);
}  // namespace orthornn

#else

#include <libxsmm.h>

#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#include "parallel.h"
#include "vector_state.h"

namespace orthornn {
namespace {

constexpr int kTile = 64;
constexpr size_t kTileSize = size_t(kTile) * kTile;

template <typename T>
using Kernel = void (*)(const T*, const T*, T*);

// C = A B (accumulate: C += A B) on 64 × 64 column-major tiles.
template <typename T>
Kernel<T> tileKernel(bool accumulate) {
  const libxsmm_blasint ld = kTile;
  const T alpha = 1, beta = accumulate ? 1 : 0;
  if constexpr (std::is_same_v<T, float>)
    return reinterpret_cast<Kernel<T>>(libxsmm_smmdispatch(kTile, kTile, kTile, &ld, &ld, &ld, &alpha, &beta, nullptr, nullptr));
  else
    return reinterpret_cast<Kernel<T>>(libxsmm_dmmdispatch(kTile, kTile, kTile, &ld, &ld, &ld, &alpha, &beta, nullptr, nullptr));
}

// The inverses of L's and U's 64 × 64 diagonal blocks (block b at b · 64², column-major),
// column by column by substitution in double.
template <typename T>
void diagonalInverses(int n, const T* LU, T* linv, T* uinv) {
  double x[kTile];
  for (int o = 0; o < n; o += kTile) {
    T* li = linv + size_t(o / kTile) * kTileSize;
    T* ui = uinv + size_t(o / kTile) * kTileSize;
    auto at = [&](int i, int k) { return double(LU[size_t(o + i) + size_t(o + k) * size_t(n)]); };
    for (int j = 0; j < kTile; ++j) {
      for (int i = 0; i < kTile; ++i) x[i] = i == j ? 1.0 : 0.0;
      for (int k = j; k < kTile; ++k)
        for (int i = k + 1; i < kTile; ++i) x[i] -= at(i, k) * x[k];
      for (int i = 0; i < kTile; ++i) li[i + j * kTile] = T(x[i]);
      for (int i = 0; i < kTile; ++i) x[i] = i == j ? 1.0 : 0.0;
      for (int k = j; k >= 0; --k) {
        x[k] /= at(k, k);
        for (int i = 0; i < k; ++i) x[i] -= at(i, k) * x[k];
      }
      for (int i = 0; i < kTile; ++i) ui[i + j * kTile] = T(x[i]);
    }
  }
}

// One slab: Y (n × w, leading dimension n) ← α U⁻¹ L⁻¹ Y + β Y. The slab is copied into
// tiles, solved a block row at a time (forward for L, backward for U), and written back.
template <typename T>
void solveSlab(int n, int w, const T* LU, const T* linv, const T* uinv, T* Y, T alpha, T beta, Kernel<T> mul, Kernel<T> add) {
  const int R = n / kTile, C = w / kTile;
  thread_local std::vector<T> scratch;
  const size_t slab = size_t(n) * size_t(w);
  if (scratch.size() < 2 * slab + size_t(n) * kTile + kTileSize) scratch.resize(2 * slab + size_t(n) * kTile + kTileSize);
  T* tiles = scratch.data();
  T* sums = tiles + slab;         // per tile: the updates it has received, subtracted once
  T* panel = sums + slab;         // the factor's tiles that update the other block rows
  T* product = panel + size_t(n) * kTile;
  auto tile = [&](T* base, int r, int c) { return base + (size_t(c) * R + size_t(r)) * kTileSize; };
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < kTile; ++k)
        std::memcpy(tile(tiles, r, c) + k * kTile, Y + size_t(r) * kTile + (size_t(c) * kTile + k) * size_t(n), kTile * sizeof(T));
  for (int pass = 0; pass < 2; ++pass) {  // L, then U
    std::memset(sums, 0, slab * sizeof(T));
    const T* inverses = pass == 0 ? linv : uinv;
    for (int s = 0; s < R; ++s) {
      const int b = pass == 0 ? s : R - 1 - s;
      const int lo = pass == 0 ? b + 1 : 0, hi = pass == 0 ? R : b;  // the block rows it updates
      for (int r = lo; r < hi; ++r)
        for (int k = 0; k < kTile; ++k)
          std::memcpy(panel + size_t(r) * kTileSize + k * kTile, LU + size_t(r) * kTile + (size_t(b) * kTile + k) * size_t(n),
                      kTile * sizeof(T));
      for (int c = 0; c < C; ++c) {
        T* t = tile(tiles, b, c);
        const T* sum = tile(sums, b, c);
        for (size_t i = 0; i < kTileSize; ++i) t[i] -= sum[i];
        mul(inverses + size_t(b) * kTileSize, t, product);
        std::memcpy(t, product, kTileSize * sizeof(T));
        for (int r = lo; r < hi; ++r) add(panel + size_t(r) * kTileSize, t, tile(sums, r, c));
      }
    }
  }
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < kTile; ++k) {
        T* y = Y + size_t(r) * kTile + (size_t(c) * kTile + k) * size_t(n);
        const T* x = tile(tiles, r, c) + k * kTile;
        if (beta == T(0) && alpha == T(1)) std::memcpy(y, x, kTile * sizeof(T));
        else for (int i = 0; i < kTile; ++i) y[i] = alpha * x[i] + beta * y[i];
      }
  clearUpperVectorState();
}

}  // namespace

template <typename T>
bool fastLuSolve(int n, int m, const T* LU, T* B, T alpha, T beta) {
  if (n < kFastSolveMinN || n % kTile != 0 || m % kTile != 0 || m == 0) return false;
  static const Kernel<T> mul = tileKernel<T>(false), add = tileKernel<T>(true);
  if (!mul || !add) return false;
  std::vector<T> inverses(2 * size_t(n) * kTile);
  T* linv = inverses.data();
  T* uinv = linv + size_t(n) * kTile;
  diagonalInverses(n, LU, linv, uinv);
  // One slab of whole tiles per chunk (one chunk when another context holds the pool).
  const std::function<void(int, int64_t, int64_t)> body = [&](int, int64_t lo, int64_t hi) {
    solveSlab(n, int(hi - lo) * kTile, LU, linv, uinv, B + size_t(lo) * kTile * size_t(n), alpha, beta, mul, add);
  };
  ParallelPool::instance().run(m / kTile, 1, body);
  return true;
}

template bool fastLuSolve<float>(int, int, const float*, float*, float, float);
template bool fastLuSolve<double>(int, int, const double*, double*, double, double);

}  // namespace orthornn

#endif
