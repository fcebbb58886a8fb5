#include "transpose.h"

#include <algorithm>
#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ORTHORNN_X86 1
#endif

namespace orthornn {
namespace {

template <typename T>
void transposeScalar(const T* x, int64_t rows, int64_t cols, T* out, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j)
    for (int64_t i = i0; i < i1; ++i) out[j * rows + i] = x[i * cols + j];
}

template <typename T>
void antisymmetricScalar(const T* x, int64_t n, T a, T* out, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t j = j0; j < j1; ++j) out[i * n + j] = a * (x[i * n + j] - x[j * n + i]);
}

#ifdef ORTHORNN_X86
const bool hasAvx2 = __builtin_cpu_supports("avx2");

// r[k] ← column k of the 8 × 8 block whose rows are r[0..7].
__attribute__((target("avx2"))) inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int k = 0; k < 8; k += 2) {
    t[k] = _mm256_unpacklo_ps(r[k], r[k + 1]);
    t[k + 1] = _mm256_unpackhi_ps(r[k], r[k + 1]);
  }
  for (int k = 0; k < 8; k += 4) {
    u[k] = _mm256_shuffle_ps(t[k], t[k + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[k + 1] = _mm256_shuffle_ps(t[k], t[k + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[k + 2] = _mm256_shuffle_ps(t[k + 1], t[k + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[k + 3] = _mm256_shuffle_ps(t[k + 1], t[k + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int k = 0; k < 4; ++k) {
    r[k] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x20);
    r[k + 4] = _mm256_permute2f128_ps(u[k], u[k + 4], 0x31);
  }
}

__attribute__((target("avx2"))) inline void transpose4(__m256d r[4]) {
  const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);
  const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
  r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
  r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
  r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
  r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

// One register block: the L × L block of x at (i, j), transposed, in r.
template <typename T>
struct Avx;
template <>
struct Avx<float> {
  static constexpr int64_t L = 8;
  using V = __m256;
  __attribute__((target("avx2"))) static void loadT(const float* x, int64_t ld, V r[8]) {
    for (int k = 0; k < 8; ++k) r[k] = _mm256_loadu_ps(x + k * ld);
    transpose8(r);
  }
  __attribute__((target("avx2"))) static V load(const float* p) { return _mm256_loadu_ps(p); }
  __attribute__((target("avx2"))) static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  __attribute__((target("avx2"))) static V antisym(float a, V d, V t) { return _mm256_mul_ps(_mm256_set1_ps(a), _mm256_sub_ps(d, t)); }
};
template <>
struct Avx<double> {
  static constexpr int64_t L = 4;
  using V = __m256d;
  __attribute__((target("avx2"))) static void loadT(const double* x, int64_t ld, V r[4]) {
    for (int k = 0; k < 4; ++k) r[k] = _mm256_loadu_pd(x + k * ld);
    transpose4(r);
  }
  __attribute__((target("avx2"))) static V load(const double* p) { return _mm256_loadu_pd(p); }
  __attribute__((target("avx2"))) static void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  __attribute__((target("avx2"))) static V antisym(double a, V d, V t) { return _mm256_mul_pd(_mm256_set1_pd(a), _mm256_sub_pd(d, t)); }
};

// Bands of 2L output rows: each row of x gives a whole 64-byte line to a band, so no line is
// read twice (n = 1024 rows a page apart share few L2 sets, and a half-used line is gone by
// the time the next band would want its other half).
template <typename T>
__attribute__((target("avx2"))) void transposeAvx2(const T* x, int64_t rows, int64_t cols, T* out, int64_t j0, int64_t j1) {
  using A = Avx<T>;
  constexpr int64_t L = A::L, W = 2 * L;
  const int64_t iFull = rows / L * L;
  int64_t j = j0;
  for (; j + W <= j1; j += W) {
    typename A::V r[L], q[L];
    for (int64_t i = 0; i < iFull; i += L) {
      A::loadT(x + i * cols + j, cols, r);
      A::loadT(x + i * cols + j + L, cols, q);
      for (int64_t k = 0; k < L; ++k) A::store(out + (j + k) * rows + i, r[k]);
      for (int64_t k = 0; k < L; ++k) A::store(out + (j + L + k) * rows + i, q[k]);
    }
    transposeScalar(x, rows, cols, out, iFull, rows, j, j + W);
  }
  transposeScalar(x, rows, cols, out, 0, rows, j, j1);
}

template <typename T>
__attribute__((target("avx2"))) void antisymmetricAvx2(const T* x, int64_t n, T a, T* out, int64_t i0, int64_t i1) {
  using A = Avx<T>;
  constexpr int64_t L = A::L, W = 2 * L;
  const int64_t jFull = n / L * L;
  int64_t i = i0;
  for (; i + W <= i1; i += W) {
    typename A::V r[W];
    for (int64_t j = 0; j < jFull; j += L) {
      A::loadT(x + j * n + i, n, r);  // rows i … i + L − 1 of xᵀ at columns j …
      A::loadT(x + j * n + i + L, n, r + L);
      for (int64_t k = 0; k < W; ++k) {
        T* o = out + (i + k) * n + j;
        A::store(o, A::antisym(a, A::load(x + (i + k) * n + j), r[k]));
      }
    }
    antisymmetricScalar(x, n, a, out, i, i + W, jFull, n);
  }
  antisymmetricScalar(x, n, a, out, i, i1, 0, n);
}
#endif

}  // namespace

template <typename T>
void transposeColumns(const T* x, int64_t rows, int64_t cols, T* out, int64_t j0, int64_t j1) {
#ifdef ORTHORNN_X86
  if (hasAvx2) return transposeAvx2(x, rows, cols, out, j0, j1);
#endif
  constexpr int64_t kTile = 32;
  for (int64_t jb = j0; jb < j1; jb += kTile)
    for (int64_t ib = 0; ib < rows; ib += kTile)
      transposeScalar(x, rows, cols, out, ib, std::min(rows, ib + kTile), jb, std::min(j1, jb + kTile));
}

template <typename T>
void antisymmetricRows(const T* x, int64_t n, T a, T* out, int64_t i0, int64_t i1) {
#ifdef ORTHORNN_X86
  if (hasAvx2) return antisymmetricAvx2(x, n, a, out, i0, i1);
#endif
  constexpr int64_t kTile = 32;
  for (int64_t ib = i0; ib < i1; ib += kTile)
    for (int64_t jb = 0; jb < n; jb += kTile)
      antisymmetricScalar(x, n, a, out, ib, std::min(i1, ib + kTile), jb, std::min(n, jb + kTile));
}

template void transposeColumns<float>(const float*, int64_t, int64_t, float*, int64_t, int64_t);
template void transposeColumns<double>(const double*, int64_t, int64_t, double*, int64_t, int64_t);
template void antisymmetricRows<float>(const float*, int64_t, float, float*, int64_t, int64_t);
template void antisymmetricRows<double>(const double*, int64_t, double, double*, int64_t, int64_t);

}  // namespace orthornn
