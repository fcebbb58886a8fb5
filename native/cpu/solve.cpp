#include "solve.h"

#ifndef ORTHORNN_WITH_LIBXSMM

namespace orthornn {
template <typename T>
bool fastCayleyFrameSolve(int, T, const T*, T*) {
  return false;
}
template bool fastCayleyFrameSolve<float>(int, float, const float*, float*);
template bool fastCayleyFrameSolve<double>(int, double, const double*, double*);
}  // namespace orthornn

#else

#include <libxsmm.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <type_traits>
#include <vector>

#include "lu_block.h"
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

// The factor of the column-major view A of the row-major system (A = Sᵀ, as LAPACK would
// factorise the buffer): R × R tiles, each column-major, tile (i, j) at (j R + i) · 64².
template <typename T>
struct Factor {
  int R = 0;
  std::vector<T> tiles, sums, linv, uinv;
  T* tile(int i, int j) { return tiles.data() + (size_t(j) * R + size_t(i)) * kTileSize; }
  T* sum(int i, int j) { return sums.data() + (size_t(j) * R + size_t(i)) * kTileSize; }
};

// Factorises the diagonal tile D = tile − sums (sums null: none yet) in double (unit lower L,
// upper U, in place) and writes the inverses of L and U. False on a zero or non-finite pivot.
template <typename T>
bool factorDiagonal(T* tile, const T* sums, T* linv, T* uinv) {
  double a[kTileSize];
  for (size_t e = 0; e < kTileSize; ++e) a[e] = sums ? double(tile[e]) - double(sums[e]) : double(tile[e]);
  if (eliminateNoPivot(a, kTile) != 0) return false;
  for (size_t e = 0; e < kTileSize; ++e) tile[e] = T(a[e]);
  double x[kTile];
  for (int j = 0; j < kTile; ++j) {  // column j of L⁻¹, then of U⁻¹, by substitution
    for (int i = 0; i < kTile; ++i) x[i] = i == j ? 1.0 : 0.0;
    for (int k = j; k < kTile; ++k)
      for (int i = k + 1; i < kTile; ++i) x[i] -= a[i + k * kTile] * x[k];
    for (int i = 0; i < kTile; ++i) linv[i + j * kTile] = T(x[i]);
    for (int i = 0; i < kTile; ++i) x[i] = i == j ? 1.0 : 0.0;
    for (int k = j; k >= 0; --k) {
      x[k] /= a[k + k * kTile];
      for (int i = 0; i < k; ++i) x[i] -= a[i + k * kTile] * x[k];
    }
    for (int i = 0; i < kTile; ++i) uinv[i + j * kTile] = T(x[i]);
  }
  return true;
}

// out = x − y on a tile (y null: out = x).
template <typename T>
void tileDifference(const T* x, const T* y, T* out) {
  if (!y) {
    std::memcpy(out, x, kTileSize * sizeof(T));
    return;
  }
  for (size_t e = 0; e < kTileSize; ++e) out[e] = x[e] - y[e];
}

// Right-looking LU of the packed tiles: per block column k, the diagonal tile, then L's
// column panel (on the caller), then U's row panel and the Schur updates, one chunk of
// columns per pool thread. The first updates (k = 0) overwrite their sums, so the sums need
// no clearing.
template <typename T>
bool factorise(Factor<T>& f, Kernel<T> mul, Kernel<T> add) {
  const int R = f.R;
  T tmp[kTileSize];
  for (int k = 0; k < R; ++k) {
    auto sum = [&](int i, int j) -> const T* { return k == 0 ? nullptr : f.sum(i, j); };
    T* linv = f.linv.data() + size_t(k) * kTileSize;
    T* uinv = f.uinv.data() + size_t(k) * kTileSize;
    if (!factorDiagonal(f.tile(k, k), sum(k, k), linv, uinv)) return false;
    for (int i = k + 1; i < R; ++i) {  // L(i, k) = (A(i, k) − Σ) U(k, k)⁻¹
      tileDifference(f.tile(i, k), sum(i, k), tmp);
      mul(tmp, uinv, f.tile(i, k));
    }
    if (k + 1 == R) break;
    const Kernel<T> update = k == 0 ? mul : add;
    const std::function<void(int, int64_t, int64_t)> columns = [&](int, int64_t lo, int64_t hi) {
      T work[kTileSize];
      for (int64_t j = k + 1 + lo; j < k + 1 + hi; ++j) {  // U(k, j) = L(k, k)⁻¹ (A(k, j) − Σ)
        T* u = f.tile(k, int(j));
        tileDifference(u, sum(k, int(j)), work);
        mul(linv, work, u);
        for (int i = k + 1; i < R; ++i) update(f.tile(i, k), u, f.sum(i, int(j)));
      }
      clearUpperVectorState();
    };
    ParallelPool::instance().run(R - k - 1, 1, columns);
  }
  clearUpperVectorState();
  return true;
}

// One slab of M's rows, i.e. of the right-hand sides' columns in the column-major view
// (Y = Mᵀ, n × w, leading dimension n): Y ← 2 U⁻¹ L⁻¹ Y − Y, packed into tiles, solved
// against the factor's tiles a block row at a time (forward for L, backward for U), each
// tile's updates summed apart and subtracted once, and written back.
template <typename T>
void solveSlab(Factor<T>& f, int n, int w, T* Y, Kernel<T> mul, Kernel<T> add) {
  const int R = f.R, C = w / kTile;
  thread_local std::vector<T> scratch;
  const size_t slab = size_t(n) * size_t(w);
  if (scratch.size() < 2 * slab) scratch.resize(2 * slab);
  T* tiles = scratch.data();
  T* sums = tiles + slab;
  auto at = [&](T* base, int r, int c) { return base + (size_t(c) * R + size_t(r)) * kTileSize; };
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < kTile; ++k)
        std::memcpy(at(tiles, r, c) + k * kTile, Y + size_t(r) * kTile + (size_t(c) * kTile + k) * size_t(n), kTile * sizeof(T));
  T product[kTileSize];
  for (int pass = 0; pass < 2; ++pass) {  // L, then U; each pass's first block overwrites the sums
    const T* inverses = pass == 0 ? f.linv.data() : f.uinv.data();
    for (int s = 0; s < R; ++s) {
      const int b = pass == 0 ? s : R - 1 - s;
      const int lo = pass == 0 ? b + 1 : 0, hi = pass == 0 ? R : b;  // the block rows it updates
      const Kernel<T> update = s == 0 ? mul : add;
      for (int c = 0; c < C; ++c) {
        T* t = at(tiles, b, c);
        tileDifference(t, s == 0 ? nullptr : at(sums, b, c), product);
        mul(inverses + size_t(b) * kTileSize, product, t);
        for (int r = lo; r < hi; ++r) update(f.tile(r, b), t, at(sums, r, c));
      }
    }
  }
  for (int c = 0; c < C; ++c)
    for (int r = 0; r < R; ++r)
      for (int k = 0; k < kTile; ++k) {
        T* y = Y + size_t(r) * kTile + (size_t(c) * kTile + k) * size_t(n);
        const T* x = at(tiles, r, c) + k * kTile;
        for (int i = 0; i < kTile; ++i) y[i] = T(2) * x[i] - y[i];
      }
  clearUpperVectorState();
}

// The tiles of the column-major view A of the system S = I + α(F − Fᵀ) (F row-major), built
// from F a pair of mirrored tiles at a time (pairs split over the pool), with the same
// arithmetic as the backend's cayleySystem; returns whether every column of A (row of S) is
// strictly diagonally dominant (false on NaN or ∞), in which case LU needs no pivots (see
// cpu_backend.cpp).
template <typename T>
bool buildSystem(Factor<T>& f, int n, T alpha, const T* F) {
  const int R = f.R;
  std::vector<int> pairs;  // i + R j for i ≤ j
  for (int j = 0; j < R; ++j)
    for (int i = 0; i <= j; ++i) pairs.push_back(i + R * j);
  const std::function<void(int, int64_t, int64_t)> build = [&](int, int64_t lo, int64_t hi) {
    T x[kTileSize], y[kTileSize];  // the column-major view of F at tiles (i, j) and (j, i)
    for (int64_t p = lo; p < hi; ++p) {
      const int i = pairs[size_t(p)] % R, j = pairs[size_t(p)] / R;
      for (int c = 0; c < kTile; ++c) {
        std::memcpy(x + c * kTile, F + size_t(i) * kTile + (size_t(j) * kTile + c) * size_t(n), kTile * sizeof(T));
        std::memcpy(y + c * kTile, F + size_t(j) * kTile + (size_t(i) * kTile + c) * size_t(n), kTile * sizeof(T));
      }
      T* a = f.tile(i, j);
      T* b = f.tile(j, i);
      for (int c = 0; c < kTile; ++c)
        for (int r = 0; r < kTile; ++r) {
          a[r + c * kTile] = alpha * (x[r + c * kTile] - y[c + r * kTile]);
          b[r + c * kTile] = alpha * (y[r + c * kTile] - x[c + r * kTile]);
        }
      if (i == j)
        for (int d = 0; d < kTile; ++d) a[d + d * kTile] += T(1);
    }
  };
  ParallelPool::instance().run(int64_t(pairs.size()), 1, build);
  // Column by column: the off-diagonal sum against the diagonal.
  std::vector<char> dominant(size_t(R), 1);
  const std::function<void(int, int64_t, int64_t)> check = [&](int, int64_t lo, int64_t hi) {
    for (int64_t j = lo; j < hi; ++j) {
      double off[kTile] = {};
      for (int i = 0; i < R; ++i) {
        const T* t = f.tile(i, int(j));
        for (int c = 0; c < kTile; ++c)
          for (int r = 0; r < kTile; ++r) off[c] += std::abs(double(t[r + c * kTile]));
      }
      const T* d = f.tile(int(j), int(j));
      for (int c = 0; c < kTile; ++c) {
        const double diagonal = std::abs(double(d[c * (kTile + 1)]));
        if (!(off[c] - diagonal < diagonal)) dominant[size_t(j)] = 0;
      }
    }
  };
  ParallelPool::instance().run(R, 1, check);
  for (char d : dominant)
    if (!d) return false;
  return true;
}

}  // namespace

template <typename T>
bool fastCayleyFrameSolve(int n, T alpha, const T* F, T* M) {
  if (n < kFastCayleyMinN || n % kTile != 0) return false;
  static const Kernel<T> mul = tileKernel<T>(false), add = tileKernel<T>(true);
  if (!mul || !add) return false;
  // The caller's; the pool's threads reach it through this reference (a thread_local named
  // in a lambda would be each thread's own).
  thread_local Factor<T> factor;
  Factor<T>& f = factor;
  const int R = n / kTile;
  f.R = R;
  f.tiles.resize(size_t(n) * size_t(n));
  f.sums.resize(size_t(n) * size_t(n));
  f.linv.resize(size_t(n) * kTile);
  f.uinv.resize(size_t(n) * kTile);
  if (!buildSystem(f, n, alpha, F) || !factorise(f, mul, add)) return false;
  // X S = M is Sᵀ Xᵀ = Mᵀ = A Xᵀ, and Mᵀ is the column-major view of M: one slab of whole tiles of
  // its columns per chunk.
  const std::function<void(int, int64_t, int64_t)> body = [&](int, int64_t lo, int64_t hi) {
    solveSlab(f, n, int(hi - lo) * kTile, M + size_t(lo) * kTile * size_t(n), mul, add);
  };
  ParallelPool::instance().run(R, 1, body);
  return true;
}

template bool fastCayleyFrameSolve<float>(int, float, const float*, float*);
template bool fastCayleyFrameSolve<double>(int, double, const double*, double*);

}  // namespace orthornn

#endif
