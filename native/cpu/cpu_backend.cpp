// CPU backend: OpenBLAS (cblas) for products, LAPACKE for factorisations, OpenMP loops
// over the shared element-wise arithmetic of native/core/elementwise.h.
#include <cblas.h>
#include <lapacke.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <pthread.h>
#include <thread>
#include <type_traits>
#include <unistd.h>
#include <vector>

#include "../core/backend.h"
#include "../core/dispatch.h"
#include "../core/random.h"
#include "lu_block.h"
#include "parallel.h"
#include "solve.h"
#include "transpose.h"
#include "recurrence.h"

extern "C" char* openblas_get_config(void);

namespace orthornn {
namespace {

int blasDim(int64_t v, const char* what) {
  require(v >= 0 && v <= INT_MAX, ErrorCode::Range,
          std::string(what) + " = " + std::to_string(v) + " is outside the range BLAS/LAPACK accept");
  return static_cast<int>(v);
}


// BLAS and LAPACK run one call at a time per process (each call already uses every core it is
// given), and never while the process forks. OpenBLAS's pthreads build stops its thread server
// before every fork (its pthread_atfork handler) and restarts it at the next call; a threaded
// call under way in another thread at that moment waits for the stopped threads for ever. That
// froze training for good in a process that also spawned children (a serving benchmark's load
// generator, a worker's runs). Our fork handler, registered after OpenBLAS's and so run before
// it, waits for the call in flight and holds further calls until the fork is done.
std::mutex gBlasMutex;  // constant-initialised: usable before any constructor runs

std::mutex& blasMutex() {
  static const bool forkSafe = [] {
    pthread_atfork([] { gBlasMutex.lock(); }, [] { gBlasMutex.unlock(); }, [] { gBlasMutex.unlock(); });
    return true;
  }();
  (void)forkSafe;
  return gBlasMutex;
}
// Holds the BLAS lock for one call and gives OpenBLAS the calling context's thread count (its
// `threads` option, threadCap()): calls run one at a time, so the count set is the caller's for
// its call, and it is set only when it differs from the previous call's.
// OpenBLAS's own count (OPENBLAS_NUM_THREADS, or ORTHORNN_NUM_THREADS: createCpuBackend) is
// the most any context gets.
int gBlasThreads = 0;  // set once by createCpuBackend, before any call

class BlasLock {
 public:
  explicit BlasLock(std::mutex& m) : lock_(m) {
    static int current = gBlasThreads;  // guarded by the lock
    const int want = std::max(1, std::min(threadCap(), gBlasThreads));
    if (want != current) {
      openblas_set_num_threads(want);
      current = want;
    }
  }

 private:
  std::lock_guard<std::mutex> lock_;
};

template <typename T>
void blasGemm(bool ta, bool tb, int m, int n, int k, T alpha, const T* A, int lda, const T* B, int ldb, T beta,
              T* C, int ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // C = β C; BLAS implementations disagree on k = 0
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) C[int64_t(i) * ldc + j] = beta == T(0) ? T(0) : beta * C[int64_t(i) * ldc + j];
    return;
  }
  const CBLAS_TRANSPOSE a = ta ? CblasTrans : CblasNoTrans, b = tb ? CblasTrans : CblasNoTrans;
  const BlasLock lock(blasMutex());
  if constexpr (std::is_same_v<T, float>)
    cblas_sgemm(CblasRowMajor, a, b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
  else
    cblas_dgemm(CblasRowMajor, a, b, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}

// LAPACK on NaN/Inf input returns garbage or iterates without end; refuse it up front.
// The scan tests exponent bits with integer operations, which vectorise (a floating-point
// test of every element would not); only a matrix that fails is searched for the index.
template <typename T>
void requireFiniteMatrix(const T* x, int64_t count, const char* what) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr Bits exponent = sizeof(T) == 4 ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
  Bits nonFinite = 0;
  for (int64_t i = 0; i < count; ++i) {
    Bits b;
    std::memcpy(&b, x + i, sizeof b);
    nonFinite |= Bits((b & exponent) == exponent);
  }
  if (!nonFinite) return;
  for (int64_t i = 0; i < count; ++i)
    if (!isFiniteValue<T>(x[i]))
      fail(ErrorCode::Numeric, std::string(what) + ": the input contains " + (x[i] != x[i] ? "NaN" : "Inf") +
                                   " at flat index " + std::to_string(i));
}

// Whether every row of the row-major n × n A (every column of the column-major view that
// LAPACK factorises) is strictly diagonally dominant: Σ_{c ≠ r} |a_rc| < |a_rr|. Partial
// pivoting then makes no row interchanges (Golub & Van Loan, Thm 3.4.3), so LU without
// pivoting is the same elimination, with every multiplier at most 1.
template <typename T>
bool diagonallyDominant(const T* A, int64_t n) {
  constexpr int64_t kLanes = 16;
  for (int64_t r = 0; r < n; ++r) {
    const T* row = A + r * n;
    T lanes[kLanes] = {};
    int64_t c = 0;
    for (; c + kLanes <= n; c += kLanes)
      for (int64_t l = 0; l < kLanes; ++l) lanes[l] += std::abs(row[c + l]);
    T off = 0;
    for (; c < n; ++c) off += std::abs(row[c]);
    for (int64_t l = 0; l < kLanes; ++l) off += lanes[l];
    const T diagonal = std::abs(row[r]);
    if (!(off - diagonal < diagonal)) return false;
  }
  return true;
}

// Pivots are int32 data a caller may have written (ops.luSolve takes any int32 tensor):
// every one must be a row number in 1..n before the row swaps or getrs index with it.
void requirePivots(int n, const int32_t* piv) {
  for (int i = 0; i < n; ++i)
    if (piv[i] < 1 || piv[i] > n)
      fail(ErrorCode::Range, "argument 'pivots' must hold row numbers in 1.." + std::to_string(n) +
                                 " (luFactor's output), got " + std::to_string(piv[i]) + " at index " + std::to_string(i));
}

// LAPACK's LU with partial pivoting of the column-major n × n A (checked finite by the caller:
// the _work variants skip LAPACKE's own NaN scan); a singular matrix is a NumericError.
template <typename T>
void getrf(int n, T* A, int32_t* piv) {
  static_assert(sizeof(lapack_int) == sizeof(int32_t), "orthornn expects 32-bit LAPACK integers");
  if (n == 0) return;
  lapack_int info;
  const BlasLock lock(blasMutex());
  if constexpr (std::is_same_v<T, float>)
    info = LAPACKE_sgetrf_work(LAPACK_COL_MAJOR, n, n, A, n, piv);
  else
    info = LAPACKE_dgetrf_work(LAPACK_COL_MAJOR, n, n, A, n, piv);
  if (info > 0)
    fail(ErrorCode::Numeric, "the matrix is singular: U[" + std::to_string(info - 1) + ", " + std::to_string(info - 1) +
                                 "] is exactly zero");
  if (info < 0) fail(ErrorCode::Internal, "getrf rejected argument " + std::to_string(-info));
}

// Unpivoted LU of the column-major m × m matrix A (leading dimension lda), in place, by
// recursive halving: the two triangular solves and the Schur-complement product carry all
// but O(m · 64²) of the work, at BLAS-3 rates. The diagonal blocks are eliminated in double:
// in float32, right-looking updates rounded onto entries near 1 left 6× the residual of
// getrf on I + small skew; in double, half of it. Returns the 1-based index of the first zero
// or non-finite pivot, 0 when there is none.
template <typename T>
int luNoPivot(int m, T* A, int lda) {
  constexpr int kBase = 64;
  if (m <= kBase) {
    double a[kBase * kBase];  // column-major, leading dimension m
    for (int j = 0; j < m; ++j)
      for (int i = 0; i < m; ++i) a[i + j * m] = double(A[i + int64_t(j) * lda]);
    const int bad = eliminateNoPivot(a, m);
    for (int j = 0; j < m; ++j)
      for (int i = 0; i < m; ++i) A[i + int64_t(j) * lda] = T(a[i + j * m]);
    return bad;
  }
  const int h = std::max(kBase, m / 2 / 16 * 16), r = m - h;
  T* A12 = A + int64_t(h) * lda;
  T* A21 = A + h;
  T* A22 = A12 + h;
  if (int bad = luNoPivot(h, A, lda)) return bad;
  if constexpr (const BlasLock lock(blasMutex()); std::is_same_v<T, float>) {
    cblas_strsm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans, CblasUnit, h, r, 1.0f, A, lda, A12, lda);
    cblas_strsm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, r, h, 1.0f, A, lda, A21, lda);
    cblas_sgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, r, r, h, -1.0f, A21, lda, A12, lda, 1.0f, A22, lda);
  } else {
    cblas_dtrsm(CblasColMajor, CblasLeft, CblasLower, CblasNoTrans, CblasUnit, h, r, 1.0, A, lda, A12, lda);
    cblas_dtrsm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, r, h, 1.0, A, lda, A21, lda);
    cblas_dgemm(CblasColMajor, CblasNoTrans, CblasNoTrans, r, r, h, -1.0, A21, lda, A12, lda, 1.0, A22, lda);
  }
  const int bad = luNoPivot(r, A22, lda);
  return bad ? h + bad : 0;
}

std::string cpuModelName() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(colon + 2);
    }
  }
  return "unknown CPU";
}

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  std::string device() const override { return "cpu"; }

  void limitThreads(int threads) override { setThreadCap(threads); }

  void* allocate(size_t bytes) override {
    // More than the machine's memory is refused outright: with overcommit the allocation
    // could succeed and the process be killed when the pages are touched.
    static const size_t physical = [] {
      const long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
      return pages > 0 && size > 0 ? size_t(pages) * size_t(size) : SIZE_MAX / 2;
    }();
    if (bytes > physical)
      fail(ErrorCode::OutOfMemory, "cannot allocate " + std::to_string(bytes) + " bytes of host memory (the machine has " +
                                       std::to_string(physical) + ")");
    size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) fail(ErrorCode::OutOfMemory, "cannot allocate " + std::to_string(bytes) + " bytes of host memory");
    return p;
  }
  void deallocate(void* ptr, size_t) noexcept override { std::free(ptr); }
  void upload(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (dst != src) std::memmove(dst, src, bytes);
  }
  void synchronize() override {}

  void gemm(DType dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const void* A, int64_t lda,
            const void* B, int64_t ldb, double beta, void* C, int64_t ldc) override {
    onFloat(dt, "gemm", [&](auto z) {
      using T = decltype(z);
      blasGemm<T>(ta, tb, blasDim(m, "m"), blasDim(n, "n"), blasDim(k, "k"), T(alpha), cp<T>(A), blasDim(lda, "lda"),
                  cp<T>(B), blasDim(ldb, "ldb"), T(beta), mp<T>(C), blasDim(ldc, "ldc"));
    });
  }

  void gemmStridedBatched(DType dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const void* A,
                          int64_t lda, int64_t sA, const void* B, int64_t ldb, int64_t sB, double beta, void* C,
                          int64_t ldc, int64_t sC, int64_t batch) override {
    onFloat(dt, "gemmStridedBatched", [&](auto z) {
      using T = decltype(z);
      for (int64_t i = 0; i < batch; ++i)
        blasGemm<T>(ta, tb, blasDim(m, "m"), blasDim(n, "n"), blasDim(k, "k"), T(alpha), cp<T>(A) + i * sA,
                    blasDim(lda, "lda"), cp<T>(B) + i * sB, blasDim(ldb, "ldb"), T(beta), mp<T>(C) + i * sC,
                    blasDim(ldc, "ldc"));
    });
  }

  // Row-major A is column-major Aᵀ to LAPACK: factorising that directly (Aᵀ = P L U) avoids
  // the two full transposes LAPACKE's row-major interface makes on every call.
  void luFactor(DType dt, int64_t n64, void* A, int32_t* piv) override {
    const int n = blasDim(n64, "n");
    onFloat(dt, "luFactor", [&](auto z) {
      using T = decltype(z);
      requireFiniteMatrix(cp<T>(A), int64_t(n) * n, "luFactor");
      getrf(n, mp<T>(A), piv);
    });
  }

  // The variant 'unpivoted' of CayleyFactor: without pivoting only where partial pivoting
  // would not interchange rows anyway (diagonally dominant, as I + η/2 A is for small steps):
  // the same factorisation at BLAS-3 rates throughout, where getrf's panels run at a third of
  // them. Otherwise the reference, luFactor: I + skew needs no pivoting to exist, but for large
  // η A its unpivoted multipliers grow, and the measured orthogonality of Cayley steps was 20×
  // worse.
  void luFactorNoPivot(DType dt, int64_t n64, void* A, int32_t* piv) override {
    const int n = blasDim(n64, "n");
    bool dominant = false;
    int bad = 0;
    const bool unpivoted = mayUse(Fused::CayleyFactor, kUnpivoted);
    onFloat(dt, "luFactorNoPivot", [&](auto z) {
      using T = decltype(z);
      requireFiniteMatrix(cp<T>(A), int64_t(n) * n, "luFactorNoPivot");
      dominant = unpivoted && diagonallyDominant(cp<T>(A), n);
      if (dominant) bad = luNoPivot<T>(n, mp<T>(A), n);
      else getrf(n, mp<T>(A), piv);
    });
    ran(Fused::CayleyFactor, dominant ? kUnpivoted : kReference);
    if (!dominant) return;
    if (bad)  // not reached for a dominant matrix, whose pivots are non-zero
      fail(ErrorCode::Numeric, "the matrix is singular: pivot " + std::to_string(bad - 1) + " is zero");
    for (int i = 0; i < n; ++i) piv[i] = i + 1;
  }

  // With Aᵀ = P L U, A X = B is X = P L⁻ᵀ U⁻ᵀ B, i.e. Xᵀ = Bᵀ U⁻¹ L⁻¹ Pᵀ: two right-side
  // triangular solves on the column-major view of B (which is Bᵀ), then P's row swaps.
  void luSolve(DType dt, int64_t n64, int64_t nrhs64, const void* LU, const int32_t* piv, void* B) override {
    const int n = blasDim(n64, "n"), nrhs = blasDim(nrhs64, "nrhs");
    if (n == 0 || nrhs == 0) return;
    requirePivots(n, piv);
    onFloat(dt, "luSolve", [&](auto z) {
      using T = decltype(z);
      T* b = mp<T>(B);
      if constexpr (const BlasLock lock(blasMutex()); std::is_same_v<T, float>) {
        cblas_strsm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, nrhs, n, 1.0f, cp<T>(LU), n, b, nrhs);
        cblas_strsm(CblasColMajor, CblasRight, CblasLower, CblasNoTrans, CblasUnit, nrhs, n, 1.0f, cp<T>(LU), n, b, nrhs);
      } else {
        cblas_dtrsm(CblasColMajor, CblasRight, CblasUpper, CblasNoTrans, CblasNonUnit, nrhs, n, 1.0, cp<T>(LU), n, b, nrhs);
        cblas_dtrsm(CblasColMajor, CblasRight, CblasLower, CblasNoTrans, CblasUnit, nrhs, n, 1.0, cp<T>(LU), n, b, nrhs);
      }
      for (int i = n - 1; i >= 0; --i) {  // P = P_1 ⋯ P_n applied to rows: the last swap first
        const int p = piv[i] - 1;
        if (p != i) std::swap_ranges(b + int64_t(i) * nrhs, b + int64_t(i + 1) * nrhs, b + int64_t(p) * nrhs);
      }
    });
  }

  // X A = B is Aᵀ Xᵀ = Bᵀ, and Bᵀ is the column-major view of B (n × nrhs): getrs on the
  // factorisation of Aᵀ as it stands.
  void luSolveRight(DType dt, int64_t n64, int64_t nrhs64, const void* LU, const int32_t* piv, void* B) override {
    const int n = blasDim(n64, "n"), nrhs = blasDim(nrhs64, "nrhs");
    if (n == 0 || nrhs == 0) return;
    requirePivots(n, piv);
    onFloat(dt, "luSolveRight", [&](auto z) {
      using T = decltype(z);
      lapack_int info;
      const BlasLock lock(blasMutex());
      if constexpr (std::is_same_v<T, float>)
        info = LAPACKE_sgetrs_work(LAPACK_COL_MAJOR, 'N', n, nrhs, cp<T>(LU), n, piv, mp<T>(B), n);
      else
        info = LAPACKE_dgetrs_work(LAPACK_COL_MAJOR, 'N', n, nrhs, cp<T>(LU), n, piv, mp<T>(B), n);
      if (info != 0) fail(ErrorCode::Internal, "getrs rejected argument " + std::to_string(-info));
    });
  }

  // Where fastCayleyFrameSolve applies: large n, a system that needs no pivots (diagonally
  // dominant, as it is for small steps). A NaN or ∞ fails the dominance test, and luFactor
  // then reports it.
  bool cayleyFrameSolve(DType dt, int64_t n64, double alpha, const void* F, void* M) override {
    const int n = blasDim(n64, "n");
    if (!mayUse(Fused::CayleyFrameSolve, kTiled)) return false;
    bool done = false;
    onFloat(dt, "cayleyFrameSolve", [&](auto z) {
      using T = decltype(z);
      done = fastCayleyFrameSolve<T>(n, T(alpha), cp<T>(F), mp<T>(M));
    });
    if (done) ran(Fused::CayleyFrameSolve, kTiled);
    return done;
  }

  // The fast paths: the libxsmm recurrences (recurrence.cpp) and the tiled Cayley solve
  // (solve.cpp), which a build without libxsmm lacks, and the unpivoted Cayley factorisation.
  static constexpr int kReference = 0, kLibxsmm = 1, kTiled = 1, kUnpivoted = 1;
  std::vector<std::string> variants(Fused op) const override {
    switch (op) {
      case Fused::ElmanRecurrence:
      case Fused::LstmRecurrence:
        if (fastRecurrenceCompiled()) return {"reference", "libxsmm"};
        return {"reference"};
      case Fused::CayleyFrameSolve:
        // Its tiles are libxsmm kernels too.
        if (fastRecurrenceCompiled()) return {"reference", "tiled"};
        return {"reference"};
      case Fused::CayleyFactor:
        return {"reference", "unpivoted"};
      case Fused::ElmanStep:
      case Fused::OpSequence:
        return {"reference"};  // whole calls run op by op here
    }
    return {"reference"};
  }

  void qr(DType dt, int64_t m64, int64_t n64, const void* A, void* Qv, void* Rv) override {
    const int m = blasDim(m64, "m"), n = blasDim(n64, "n"), k = std::min(m, n);
    if (k == 0) return;
    onFloat(dt, "qr", [&](auto z) {
      using T = decltype(z);
      requireFiniteMatrix(cp<T>(A), int64_t(m) * n, "qr");
      std::vector<T> work(cp<T>(A), cp<T>(A) + int64_t(m) * n), tau(k);
      const BlasLock lock(blasMutex());
      lapack_int info;
      if constexpr (std::is_same_v<T, float>)
        info = LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, m, n, work.data(), n, tau.data());
      else
        info = LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, m, n, work.data(), n, tau.data());
      if (info != 0) fail(ErrorCode::Internal, "geqrf returned " + std::to_string(info));
      T* R = mp<T>(Rv);
      for (int i = 0; i < k; ++i)
        for (int j = 0; j < n; ++j) R[int64_t(i) * n + j] = j >= i ? work[int64_t(i) * n + j] : T(0);
      // Q's k columns are the first k columns of the reflector storage.
      T* Q = mp<T>(Qv);
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < k; ++j) Q[int64_t(i) * k + j] = work[int64_t(i) * n + j];
      if constexpr (std::is_same_v<T, float>)
        info = LAPACKE_sorgqr(LAPACK_ROW_MAJOR, m, k, k, Q, k, tau.data());
      else
        info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, m, k, k, Q, k, tau.data());
      if (info != 0) fail(ErrorCode::Internal, "orgqr returned " + std::to_string(info));
      for (int i = 0; i < k; ++i) {
        if (R[int64_t(i) * n + i] >= T(0)) continue;
        for (int j = i; j < n; ++j) R[int64_t(i) * n + j] = -R[int64_t(i) * n + j];
        for (int r = 0; r < m; ++r) Q[int64_t(r) * k + i] = -Q[int64_t(r) * k + i];
      }
    });
  }

  void svd(DType dt, int64_t m64, int64_t n64, const void* A, void* U, void* S, void* Vt) override {
    const int m = blasDim(m64, "m"), n = blasDim(n64, "n"), k = std::min(m, n);
    if (k == 0) return;
    onFloat(dt, "svd", [&](auto z) {
      using T = decltype(z);
      requireFiniteMatrix(cp<T>(A), int64_t(m) * n, "svd");
      std::vector<T> work(cp<T>(A), cp<T>(A) + int64_t(m) * n);
      const BlasLock lock(blasMutex());
      lapack_int info;
      if constexpr (std::is_same_v<T, float>)
        info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'S', m, n, work.data(), n, mp<T>(S), mp<T>(U), k, mp<T>(Vt), n);
      else
        info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', m, n, work.data(), n, mp<T>(S), mp<T>(U), k, mp<T>(Vt), n);
      if (info > 0) {  // divide and conquer did not converge: fall back to QR iteration
        work.assign(cp<T>(A), cp<T>(A) + int64_t(m) * n);
        std::vector<T> superb(std::max(1, k - 1));
        if constexpr (std::is_same_v<T, float>)
          info = LAPACKE_sgesvd(LAPACK_ROW_MAJOR, 'S', 'S', m, n, work.data(), n, mp<T>(S), mp<T>(U), k, mp<T>(Vt), n,
                                superb.data());
        else
          info = LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'S', 'S', m, n, work.data(), n, mp<T>(S), mp<T>(U), k, mp<T>(Vt), n,
                                superb.data());
      }
      if (info > 0) fail(ErrorCode::Numeric, "the SVD did not converge (is the input finite?)");
      if (info < 0) fail(ErrorCode::Internal, "gesdd rejected argument " + std::to_string(-info));
    });
  }

  void fill(DType dt, int64_t count, double value, void* x) override {
    if (dt == DType::I32) {
      int32_t* p = mp<int32_t>(x);
      std::fill(p, p + count, static_cast<int32_t>(value));
      return;
    }
    onFloat(dt, "fill", [&](auto z) {
      using T = decltype(z);
      std::fill(mp<T>(x), mp<T>(x) + count, T(value));
    });
  }

  void randomNormal(DType dt, int64_t count, uint64_t seed, double mean, double stddev, void* x) override {
    onFloat(dt, "randomNormal", [&](auto z) {
      using T = decltype(z);
      T* p = mp<T>(x);
      parallelFor(count, 8, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) p[i] = T(mean + stddev * philoxNormal(seed, uint64_t(i)));
      });
    });
  }

  void randomUniform(DType dt, int64_t count, uint64_t seed, double low, double high, void* x) override {
    onFloat(dt, "randomUniform", [&](auto z) {
      using T = decltype(z);
      T* p = mp<T>(x);
      parallelFor(count, 8, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) p[i] = T(low + (high - low) * philoxUniform(seed, uint64_t(i)));
      });
    });
  }

  void axpby(DType dt, int64_t count, double alpha, const void* x, double beta, const void* y, void* out) override {
    onFloat(dt, "axpby", [&](auto z) {
      using T = decltype(z);
      const T a = T(alpha), b = T(beta);
      const T *px = cp<T>(x), *py = cp<T>(y);
      T* po = mp<T>(out);
      parallelFor(count, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) po[i] = a * px[i] + b * py[i];
      });
    });
  }

  void mul(DType dt, int64_t count, const void* x, const void* y, void* out) override {
    onFloat(dt, "mul", [&](auto z) {
      using T = decltype(z);
      const T *px = cp<T>(x), *py = cp<T>(y);
      T* po = mp<T>(out);
      parallelFor(count, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) po[i] = px[i] * py[i];
      });
    });
  }

  void biasActivation(DType dt, Activation act, int64_t rows, int64_t cols, const void* x, const void* bias,
                      void* out) override {
    onFloat(dt, "biasActivation", [&](auto z) {
      using T = decltype(z);
      const T *px = cp<T>(x), *pb = cp<T>(bias);
      T* po = mp<T>(out);
      // One loop per activation so that each vectorises (a switch inside would not).
      auto loop = [&](auto phi) {
        parallelFor(rows, cols, [&](int64_t lo, int64_t hi) {
          for (int64_t r = lo; r < hi; ++r) {
            const T* xr = px + r * cols;
            T* orow = po + r * cols;
            if (pb)
              for (int64_t c = 0; c < cols; ++c) orow[c] = phi(xr[c] + pb[c]);
            else
              for (int64_t c = 0; c < cols; ++c) orow[c] = phi(xr[c]);
          }
        });
      };
      switch (act) {
        case Activation::Tanh: loop([](T a) { return activate<T>(Activation::Tanh, a); }); break;
        case Activation::Relu: loop([](T a) { return activate<T>(Activation::Relu, a); }); break;
        default: loop([](T a) { return a; }); break;
      }
    });
  }

  void activationBackward(DType dt, Activation act, int64_t count, const void* dy, const void* h,
                          void* out) override {
    onFloat(dt, "activationBackward", [&](auto z) {
      using T = decltype(z);
      const T *pd = cp<T>(dy), *ph = cp<T>(h);
      T* po = mp<T>(out);
      parallelFor(count, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) po[i] = pd[i] * activationDerivativeFromOutput<T>(act, ph[i]);
      });
    });
  }

  void marginSigmoid(DType dt, int64_t count, double margin, const void* p, void* s) override {
    onFloat(dt, "marginSigmoid", [&](auto z) {
      using T = decltype(z);
      for (int64_t i = 0; i < count; ++i) mp<T>(s)[i] = orthornn::marginSigmoid<T>(cp<T>(p)[i], T(margin));
    });
  }

  void marginSigmoidBackward(DType dt, int64_t count, double margin, const void* p, const void* ds,
                             void* dp) override {
    onFloat(dt, "marginSigmoidBackward", [&](auto z) {
      using T = decltype(z);
      for (int64_t i = 0; i < count; ++i)
        mp<T>(dp)[i] = cp<T>(ds)[i] * marginSigmoidDerivative<T>(cp<T>(p)[i], T(margin));
    });
  }

  void scaleColumns(DType dt, int64_t rows, int64_t cols, const void* x, const void* sc, void* out) override {
    onFloat(dt, "scaleColumns", [&](auto z) {
      using T = decltype(z);
      const T *px = cp<T>(x), *ps = cp<T>(sc);
      T* po = mp<T>(out);
      parallelFor(rows, cols, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r)
          for (int64_t c = 0; c < cols; ++c) po[r * cols + c] = px[r * cols + c] * ps[c];
      });
    });
  }

  void columnDots(DType dt, int64_t rows, int64_t cols, const void* x, const void* y, void* out) override {
    onFloat(dt, "columnDots", [&](auto z) {
      using T = decltype(z);
      const T *px = cp<T>(x), *py = cp<T>(y);
      std::vector<double> acc(cols, 0.0);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) acc[c] += double(px[r * cols + c]) * double(py[r * cols + c]);
      for (int64_t c = 0; c < cols; ++c) mp<T>(out)[c] = T(acc[c]);
    });
  }

  void addDiagonal(DType dt, int64_t n, double value, void* x) override {
    onFloat(dt, "addDiagonal", [&](auto z) {
      using T = decltype(z);
      for (int64_t i = 0; i < n; ++i) mp<T>(x)[i * n + i] += T(value);
    });
  }

  void elmanForwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* Wt,
                              const void* bias, const Projection& input, const Logits& logits, void* A,
                              void* H) override {
    const bool inSteps = !logits.W_out || logits.k <= kLogitsInStepsMaxClasses;
    if (mayUse(Fused::ElmanRecurrence, kLibxsmm) &&
        fastElmanForwardRecurrence(dt, act, T, B, n, Wt, bias, input, inSteps ? logits : Logits{}, A, H)) {
      ran(Fused::ElmanRecurrence, kLibxsmm);
      if (!inSteps) forwardLogits(dt, T, B, n, H, logits);
      return;
    }
    ran(Fused::ElmanRecurrence, kReference);
    Backend::elmanForwardRecurrence(dt, act, T, B, n, Wt, bias, input, logits, A, H);
  }

  void lstmForwardRecurrence(DType dt, int64_t T, int64_t B, int64_t n, const void* Whh, const void* biasIh,
                             const void* biasHh, void* Z, void* H, void* C) override {
    if (mayUse(Fused::LstmRecurrence, kLibxsmm) && fastLstmForwardRecurrence(dt, T, B, n, Whh, biasIh, biasHh, Z, H, C)) {
      ran(Fused::LstmRecurrence, kLibxsmm);
      return;
    }
    ran(Fused::LstmRecurrence, kReference);
    Backend::lstmForwardRecurrence(dt, T, B, n, Whh, biasIh, biasHh, Z, H, C);
  }

  void lstmBackwardRecurrence(DType dt, int64_t T, int64_t B, int64_t n, const void* Whh, const void* C, void* Z,
                              void* dH, void* dC, const LstmSums& sums) override {
    if (mayUse(Fused::LstmRecurrence, kLibxsmm) && fastLstmBackwardRecurrence(dt, T, B, n, Whh, C, Z, dH, dC, sums)) {
      ran(Fused::LstmRecurrence, kLibxsmm);
      return;
    }
    ran(Fused::LstmRecurrence, kReference);
    Backend::lstmBackwardRecurrence(dt, T, B, n, Whh, C, Z, dH, dC, sums);
  }

  void elmanBackwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* W, const void* H,
                               const Projection& input, const Projection& output, void* dH, void* dA,
                               const BackwardSums& sums, int64_t givenFrom, double clip) override {
    if (mayUse(Fused::ElmanRecurrence, kLibxsmm) &&
        fastElmanBackwardRecurrence(dt, act, T, B, n, W, H, input, output, dH, dA, sums, givenFrom, clip)) {
      ran(Fused::ElmanRecurrence, kLibxsmm);
      return;
    }
    ran(Fused::ElmanRecurrence, kReference);
    Backend::elmanBackwardRecurrence(dt, act, T, B, n, W, H, input, output, dH, dA, sums, givenFrom, clip);
  }

  void clipElements(DType dt, int64_t count, double c, void* x) override {
    onFloat(dt, "clipElements", [&](auto z) {
      using T = decltype(z);
      T* px = mp<T>(x);
      parallelFor(count, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) px[i] = clipGradient<T>(px[i], T(c));
      });
    });
  }

  // Bands of 32 output rows (transposeColumns and antisymmetricRows walk each band in
  // register blocks), split across the pool for large matrices.
  static constexpr int64_t kBand = 32;

  void transpose(DType dt, int64_t rows, int64_t cols, const void* x, void* out) override {
    onFloat(dt, "transpose", [&](auto z) {
      using T = decltype(z);
      const int64_t bands = (cols + kBand - 1) / kBand;
      parallelFor(bands, 4 * kBand * rows, [&](int64_t lo, int64_t hi) {
        transposeColumns(cp<T>(x), rows, cols, mp<T>(out), lo * kBand, std::min(cols, hi * kBand));
      });
    });
  }

  // The diagonal is 1 + alpha (x_ii − x_ii), not 1, so that a NaN or ∞ there still shows.
  void cayleySystem(DType dt, int64_t n, double alpha, const void* x, void* out) override {
    onFloat(dt, "cayleySystem", [&](auto z) {
      using T = decltype(z);
      T* po = mp<T>(out);
      const int64_t bands = (n + kBand - 1) / kBand;
      parallelFor(bands, 4 * kBand * n, [&](int64_t lo, int64_t hi) {
        const int64_t i0 = lo * kBand, i1 = std::min(n, hi * kBand);
        antisymmetricRows(cp<T>(x), n, T(alpha), po, i0, i1);
        for (int64_t i = i0; i < i1; ++i) po[i * n + i] += T(1);
      });
    });
  }

  void lstmCellForward(DType dt, int64_t rows, int64_t n, void* gates, const void* biasIh, const void* biasHh,
                       const void* cPrev, void* c, void* h) override {
    onFloat(dt, "lstmCellForward", [&](auto z) {
      using T = decltype(z);
      T* pz = mp<T>(gates);
      const T *b1 = cp<T>(biasIh), *b2 = cp<T>(biasHh), *pcp = cp<T>(cPrev);
      T *pc = mp<T>(c), *ph = mp<T>(h);
      parallelFor(rows, n * 4, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          T* zr = pz + r * 4 * n;
          for (int64_t j = 0; j < n; ++j) {
            for (int64_t q = 0; q < 4; ++q) {
              const int64_t col = q * n + j;
              zr[col] += (b1 ? b1[col] : T(0)) + (b2 ? b2[col] : T(0));
            }
            lstmCellForwardAt<T>(zr[j], zr[n + j], zr[2 * n + j], zr[3 * n + j], pcp[r * n + j], pc[r * n + j],
                                 ph[r * n + j]);
          }
        }
      });
    });
  }

  void lstmCellBackward(DType dt, int64_t rows, int64_t n, void* gates, const void* cPrev, const void* c,
                        const void* dh, void* dc) override {
    onFloat(dt, "lstmCellBackward", [&](auto z) {
      using T = decltype(z);
      T* pz = mp<T>(gates);
      const T *pcp = cp<T>(cPrev), *pc = cp<T>(c), *pdh = cp<T>(dh);
      T* pdc = mp<T>(dc);
      parallelFor(rows, n * 4, [&](int64_t lo, int64_t hi) {
        for (int64_t r = lo; r < hi; ++r) {
          T* zr = pz + r * 4 * n;
          for (int64_t j = 0; j < n; ++j) {
            const int64_t e = r * n + j;
            lstmCellBackwardAt<T>(zr[j], zr[n + j], zr[2 * n + j], zr[3 * n + j], pcp[e], pc[e], pdh[e], pdc[e]);
          }
        }
      });
    });
  }

  void rmspropStep(DType dt, int64_t count, double lr, double rho, double eps, bool epsInside, double decay,
                   void* param, const void* grad, void* meanSquare) override {
    onFloat(dt, "rmspropStep", [&](auto z) {
      using T = decltype(z);
      T *p = mp<T>(param), *ms = mp<T>(meanSquare);
      const T* g = cp<T>(grad);
      parallelFor(count, 8, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) rmspropUpdate<T>(p[i], g[i], ms[i], T(lr), T(rho), T(eps), T(decay), epsInside);
      });
    });
  }

  void adamStep(DType dt, int64_t count, double lr, double beta1, double beta2, double eps, double decay, int64_t step,
                void* param, const void* grad, void* m, void* v) override {
    const double c1 = 1 - std::pow(beta1, double(step)), c2 = 1 - std::pow(beta2, double(step));
    onFloat(dt, "adamStep", [&](auto z) {
      using T = decltype(z);
      T *p = mp<T>(param), *pm = mp<T>(m), *pv = mp<T>(v);
      const T* g = cp<T>(grad);
      parallelFor(count, 8, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i)
          adamUpdate<T>(p[i], g[i], pm[i], pv[i], T(lr), T(beta1), T(beta2), T(eps), T(decay), T(c1), T(c2));
      });
    });
  }

  void sgdStep(DType dt, int64_t count, double lr, double momentum, double decay, bool first, void* param,
               const void* grad, void* buffer) override {
    onFloat(dt, "sgdStep", [&](auto z) {
      using T = decltype(z);
      T *p = mp<T>(param), *b = mp<T>(buffer);
      const T* g = cp<T>(grad);
      parallelFor(count, 4, [&](int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; ++i) sgdUpdate<T>(p[i], g[i], b[i], T(lr), T(momentum), T(decay), first);
      });
    });
  }

  void reduce(DType dt, Reduction kind, int64_t count, const void* x, void* out) override {
    onFloat(dt, "reduce", [&](auto z) {
      using T = decltype(z);
      const T* px = cp<T>(x);
      double acc = 0;  // float32 sums accumulate in double
      switch (kind) {
        case Reduction::Sum:
          acc += parallelSum(count, 1, [&](int64_t lo, int64_t hi) {
            double acc = 0;
            for (int64_t i = lo; i < hi; ++i) acc += double(px[i]);
            return acc;
          });
          break;
        case Reduction::SumSquares:
          acc += parallelSum(count, 1, [&](int64_t lo, int64_t hi) {
            double acc = 0;
            for (int64_t i = lo; i < hi; ++i) acc += double(px[i]) * double(px[i]);
            return acc;
          });
          break;
        case Reduction::MaxAbs: {
          bool nan = false;
          for (int64_t i = 0; i < count; ++i) {
            double v = std::fabs(double(px[i]));
            if (v != v) nan = true;
            acc = std::max(acc, v);
          }
          if (nan) acc = NAN;  // never hide a NaN behind a max
          break;
        }
        case Reduction::CountNonFinite:
          acc += parallelSum(count, 1, [&](int64_t lo, int64_t hi) {
            double acc = 0;
            for (int64_t i = lo; i < hi; ++i) acc += isFiniteValue<T>(px[i]) ? 0.0 : 1.0;
            return acc;
          });
          break;
      }
      *mp<T>(out) = T(acc);
    });
  }

  void columnSum(DType dt, int64_t rows, int64_t cols, const void* x, double beta, void* out) override {
    onFloat(dt, "columnSum", [&](auto z) {
      using T = decltype(z);
      const T* px = cp<T>(x);
      T* po = mp<T>(out);
      std::vector<double> acc(cols, 0.0);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) acc[c] += double(px[r * cols + c]);
      for (int64_t c = 0; c < cols; ++c) po[c] = T(acc[c] + (beta == 0 ? 0.0 : beta * double(po[c])));
    });
  }

  void groupNorms(DType dt, int64_t groups, int64_t size, const void* x, void* out) override {
    onFloat(dt, "groupNorms", [&](auto z) {
      using T = decltype(z);
      const T* px = cp<T>(x);
      T* po = mp<T>(out);
      parallelFor(groups, size, [&](int64_t lo, int64_t hi) {
        for (int64_t g = lo; g < hi; ++g) {
          double acc = 0;
          for (int64_t i = 0; i < size; ++i) acc += double(px[g * size + i]) * double(px[g * size + i]);
          po[g] = T(std::sqrt(acc));
        }
      });
    });
  }

  void softmaxCrossEntropy(DType dt, int64_t rows, int64_t classes, const void* logits, const int32_t* targets,
                           const void* weights, void* loss, void* dlogits) override {
    for (int64_t r = 0; r < rows; ++r)
      if (targets[r] < 0 || targets[r] >= classes)
        fail(ErrorCode::Range, "target " + std::to_string(targets[r]) + " at row " + std::to_string(r) +
                                   " is not a class id in [0, " + std::to_string(classes) + ")");
    onFloat(dt, "softmaxCrossEntropy", [&](auto z) {
      using T = decltype(z);
      const T *pl = cp<T>(logits), *pw = cp<T>(weights);
      T* pd = mp<T>(dlogits);
      double total = 0;
      // A row costs about 20 operations per class (an exponential each): long enough to split.
      total += parallelSum(rows, 20 * classes, [&](int64_t lo, int64_t hi) {
        double total = 0;
        std::vector<double> e(static_cast<size_t>(classes));
        for (int64_t r = lo; r < hi; ++r) {
          const T* row = pl + r * classes;
          const double w = pw ? double(pw[r]) : 1.0;
          double mx = -INFINITY;
          for (int64_t c = 0; c < classes; ++c) mx = std::max(mx, double(row[c]));
          double se = 0;
          for (int64_t c = 0; c < classes; ++c) se += e[size_t(c)] = std::exp(double(row[c]) - mx);
          const double lse = mx + std::log(se);
          total += w * (lse - double(row[targets[r]]));
          if (pd) {  // softmax = e / se: the exponentials once per entry
            for (int64_t c = 0; c < classes; ++c)
              pd[r * classes + c] = T(w * (e[size_t(c)] / se - (c == targets[r] ? 1.0 : 0.0)));
          }
        }
        return total;
      });
      *mp<T>(loss) = T(total);
    });
  }

  void meanSquaredError(DType dt, int64_t rows, int64_t cols, const void* y, const void* target, const void* weights,
                        void* loss, void* dy) override {
    onFloat(dt, "meanSquaredError", [&](auto z) {
      using T = decltype(z);
      const T *py = cp<T>(y), *pt = cp<T>(target), *pw = cp<T>(weights);
      T* pd = mp<T>(dy);
      double total = 0;
      total += parallelSum(rows, cols, [&](int64_t lo, int64_t hi) {
        double total = 0;
        for (int64_t r = lo; r < hi; ++r) {
          const double w = pw ? double(pw[r]) : 1.0;
          for (int64_t c = 0; c < cols; ++c) {
            const double e = double(py[r * cols + c]) - double(pt[r * cols + c]);
            total += w * e * e;
            if (pd) pd[r * cols + c] = T(2.0 * w * e);
          }
        }
        return total;
      });
      *mp<T>(loss) = T(total);
    });
  }
};

}  // namespace

std::shared_ptr<Backend> createCpuBackend() {
  blasMutex();  // installs the fork handler before any BLAS call can be under way
  static const bool threadsSet = [] {
    const char* env = std::getenv("ORTHORNN_NUM_THREADS");
    if (env && *env) openblas_set_num_threads(int(cpuThreads()));
    gBlasThreads = std::max(1, openblas_get_num_threads());
    return true;
  }();
  (void)threadsSet;
  return std::make_shared<CpuBackend>();
}

BackendInfo cpuBackendInfo() {
  BackendInfo info;
  info.name = "cpu";
  info.compiled = true;
  info.available = true;
  info.deviceCount = 1;
  std::string blas = openblas_get_config();
  info.device = cpuModelName() + ", " + std::to_string(std::thread::hardware_concurrency()) + " threads, " + blas;
  return info;
}

}  // namespace orthornn
