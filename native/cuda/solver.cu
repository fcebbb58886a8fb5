// CUDA backend, part 3: the factorisations, on cuSOLVER (getrf, geqrf/orgqr, gesvdj) and
// cuBLAS (trsm). Same conventions as the CPU backend (native/core/backend.h): the LU factors
// the column-major view of the row-major buffer, Aᵀ = P L U, and the solve works on the
// column-major view of B, so neither needs a transpose; QR has diag(R) ≥ 0; NaN/Inf input,
// a singular matrix and an SVD that does not converge are Numeric errors. Those conditions
// are found on the device and raised at the next synchronisation (cuda_backend.cuh), so a
// Cayley step queues without waiting for the GPU.
#include <algorithm>
#include <climits>

#include "../core/dispatch.h"
#include "cuda_backend.cuh"

namespace orthornn {
namespace cuda {
namespace {

// cuSOLVER's devInfo after getrf (op luFactor), or after gesvdj (op svd).
__global__ void solver_info_kernel(const int* info, DeviceFault* fault, int op) {
  const int v = *info;
  if (v < 0) raiseFault(fault, op, kSolverArgument, -v, 0, 0);
  else if (v > 0 && faultOpOf(op) == kOpLuFactor) raiseFault(fault, op, kSingular, v - 1, 0, 0);
  else if (v > 0) raiseFault(fault, op, kNoConvergence, v, 0, 0);
}

// P = P_1 ⋯ P_n applied to the rows of B (n × nrhs, row-major): the last swap first. One
// thread per column; the swaps are sequential in i. The pivots may be any int32 data a
// caller passed (ops.luSolve): one outside 1..n is a fault, raised at the next
// synchronisation, and is never used as an index.
template <typename T>
__global__ void row_swaps_kernel(int n, int nrhs, const int32_t* piv, T* b, DeviceFault* fault, int op) {
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < nrhs; j += int64_t(gridDim.x) * blockDim.x) {
    for (int i = n - 1; i >= 0; --i) {
      const int p = piv[i] - 1;
      if (p < 0 || p >= n) {
        raiseFault(fault, op, kBadPivot, i, piv[i], n);
        continue;
      }
      if (p != i) {
        const T t = b[int64_t(i) * nrhs + j];
        b[int64_t(i) * nrhs + j] = b[int64_t(p) * nrhs + j];
        b[int64_t(p) * nrhs + j] = t;
      }
    }
  }
}

// R (k × n, row-major) from geqrf's column-major m × n output, rows negated where
// diag(R) < 0; the signs are kept for Q.
template <typename T>
__global__ void qr_r_kernel(int m, int n, int k, const T* work, T* R, T* signs) {
  const int64_t count = int64_t(k) * n;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = e / n, j = e % n;
    const T sign = work[i * m + i] < T(0) ? T(-1) : T(1);
    R[e] = j >= i ? sign * work[j * m + i] : T(0);
    if (j == i) signs[i] = sign;
  }
}

// Q (m × k, row-major) from orgqr's column-major m × k output, columns signed like R's rows.
template <typename T>
__global__ void qr_q_kernel(int m, int k, const T* work, const T* signs, T* Q) {
  const int64_t count = int64_t(m) * k;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / k, c = e % k;
    Q[e] = signs[c] * work[c * m + r];
  }
}

// The pivots getrs will read, copied with every one outside 1..n replaced by "no swap" and
// reported as a fault: getrs indexes rows with them and has no check of its own.
__global__ void checked_pivots_kernel(int n, const int32_t* piv, int32_t* out, DeviceFault* fault, int op) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const int32_t p = piv[i];
    if (p < 1 || p > n) {
      raiseFault(fault, op, kBadPivot, i, p, n);
      out[i] = int32_t(i + 1);
    } else {
      out[i] = p;
    }
  }
}

// The frame-form Cayley solve for small n (CudaBackend::cayleyFrameSolve), part 1: one block
// builds S = I + alpha (F − Fᵀ) in shared memory and factorises it, S = L U (L unit lower),
// without pivots. None are needed: S's symmetric part is I, and each Schur complement keeps a
// symmetric part ≥ I, so every pivot is at least 1 in exact arithmetic. Right-looking, one
// barrier per column: while the trailing block takes column k's update, column k − 1 is
// divided by its pivot (neither touches what the other reads). A NaN or ±Inf in S is the
// fault luFactor would raise (the lowest index); a pivot that is not finite and nonzero is
// reported as singular. Either way *failed is set and nothing of M changes (part 2).
// blockDim = (32, 32): threadIdx.x walks columns, threadIdx.y rows.
template <typename T>
__global__ void cayley_lu_kernel(int n, T alpha, const T* F, T* LU, int* failed, DeviceFault* fault, int tag) {
  extern __shared__ __align__(16) unsigned char cayleyShared[];
  T* S = reinterpret_cast<T*>(cayleyShared);
  __shared__ long long firstBad;
  const int tx = threadIdx.x, ty = threadIdx.y;
  if (tx == 0 && ty == 0) firstBad = LLONG_MAX;
  __syncthreads();
  for (int i = ty; i < n; i += blockDim.y)
    for (int j = tx; j < n; j += blockDim.x) {
      const T v = alpha * (F[int64_t(i) * n + j] - F[int64_t(j) * n + i]) + (i == j ? T(1) : T(0));
      S[i * n + j] = v;
      if (!isFiniteValue<T>(v)) atomicMin(&firstBad, (long long)(i) * n + j);
    }
  __syncthreads();
  if (firstBad != LLONG_MAX) {
    if (tx == 0 && ty == 0) {
      const long long m = firstBad;
      raiseFault(fault, tag, kNonFinite, m, S[m] != S[m] ? 1 : 0, 0);
      *failed = 1;
    }
    return;
  }
  for (int k = 0; k < n; ++k) {
    if (k > 0 && tx == 0) {
      const T previous = S[(k - 1) * n + (k - 1)];
      for (int i = k + ty; i < n; i += blockDim.y) S[i * n + (k - 1)] /= previous;  // the multipliers used below
    }
    const T pivot = S[k * n + k];
    for (int i = k + 1 + ty; i < n; i += blockDim.y) {
      const T l = S[i * n + k] / pivot;
      for (int j = k + 1 + tx; j < n; j += blockDim.x) S[i * n + j] -= l * S[k * n + j];
    }
    __syncthreads();
  }
  // Column n − 1 has nothing below its pivot.
  for (int i = ty; i < n; i += blockDim.y)
    for (int j = tx; j < n; j += blockDim.x) LU[int64_t(i) * n + j] = S[i * n + j];
  if (tx == 0 && ty == 0) {
    int bad = -1;
    for (int k = 0; k < n && bad < 0; ++k)
      if (!(isFiniteValue<T>(S[k * n + k]) && S[k * n + k] != T(0))) bad = k;
    if (bad >= 0) raiseFault(fault, tag, kSingular, bad, 0, 0);
    *failed = bad >= 0 ? 1 : 0;
  }
}

// Part 2: for each row m of M (n × n), x S = m, i.e. z U = m then x L = z, and the row
// becomes 2x − m, as luSolveRight and axpby would leave it. One warp per row, the row's
// running values in shared memory; each column's value is final when the sweep reaches it,
// and the lanes then update the columns after it (z) or before it (x).
constexpr int kCayleyRowsPerBlock = 8;

template <typename T>
__global__ void cayley_rows_kernel(int n, const T* LU, const int* failed, T* M) {
  extern __shared__ __align__(16) unsigned char cayleyRowsShared[];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row = blockIdx.x * kCayleyRowsPerBlock + warp;
  if (*failed != 0 || row >= n) return;
  T* r = reinterpret_cast<T*>(cayleyRowsShared) + int64_t(warp) * n;
  T* m = M + int64_t(row) * n;
  for (int j = lane; j < n; j += 32) r[j] = m[j];
  __syncwarp();
  for (int j = 0; j < n; ++j) {
    const T z = r[j] / LU[int64_t(j) * n + j];
    __syncwarp();
    if (lane == 0) r[j] = z;
    for (int c = j + 1 + lane; c < n; c += 32) r[c] -= z * LU[int64_t(j) * n + c];
    __syncwarp();
  }
  for (int j = n - 1; j > 0; --j) {
    const T x = r[j];
    for (int c = lane; c < j; c += 32) r[c] -= x * LU[int64_t(j) * n + c];
    __syncwarp();
  }
  for (int j = lane; j < n; j += 32) m[j] = T(2) * r[j] - m[j];
}

template <typename T>
cusolverStatus_t getrfBufferSize(cusolverDnHandle_t h, int n, T* A, int* lwork) {
  if constexpr (std::is_same_v<T, float>) return cusolverDnSgetrf_bufferSize(h, n, n, A, n, lwork);
  else return cusolverDnDgetrf_bufferSize(h, n, n, A, n, lwork);
}

}  // namespace

void CudaBackend::luFactor(DType dt, int64_t n64, void* A, int32_t* piv) {
  const int n = cublasDim(n64, "n");
  if (n == 0) return;
  require(isFloat(dt), ErrorCode::Type, std::string("luFactor: expected float32 or float64, got ") + dtypeName(dt));
  bind();
  checkFinite(dt, int64_t(n) * n, A, kOpLuFactor);
  int* info = static_cast<int*>(scratch(kSolverInfo, sizeof(int)));
  int lwork = 0;
  if (dt == DType::F32) {
    ORTHORNN_CUSOLVER(cusolverDnSgetrf_bufferSize(solver_, n, n, static_cast<float*>(A), n, &lwork));
    auto* work = static_cast<float*>(scratch(kSolverWork, size_t(std::max(lwork, 1)) * sizeof(float)));
    ORTHORNN_CUSOLVER(cusolverDnSgetrf(solver_, n, n, static_cast<float*>(A), n, work, piv, info));
  } else {
    ORTHORNN_CUSOLVER(cusolverDnDgetrf_bufferSize(solver_, n, n, static_cast<double*>(A), n, &lwork));
    auto* work = static_cast<double*>(scratch(kSolverWork, size_t(std::max(lwork, 1)) * sizeof(double)));
    ORTHORNN_CUSOLVER(cusolverDnDgetrf(solver_, n, n, static_cast<double*>(A), n, work, piv, info));
  }
  libraryCall();
  solver_info_kernel<<<1, 1, 0, stream_>>>(info, fault_, faultTag(kOpLuFactor));
  launched("solver_info_kernel");
}

// With Aᵀ = P L U, A X = B is X = P L⁻ᵀ U⁻ᵀ B, i.e. Xᵀ = Bᵀ U⁻¹ L⁻¹ Pᵀ: two right-side
// triangular solves on the column-major view of B (which is Bᵀ), then P's row swaps.
void CudaBackend::luSolve(DType dt, int64_t n64, int64_t nrhs64, const void* LU, const int32_t* piv, void* B) {
  const int n = cublasDim(n64, "n"), nrhs = cublasDim(nrhs64, "nrhs");
  if (n == 0 || nrhs == 0) return;
  require(isFloat(dt), ErrorCode::Type, std::string("luSolve: expected float32 or float64, got ") + dtypeName(dt));
  bind();
  if (dt == DType::F32) {
    const float one = 1.0f;
    const float* lu = static_cast<const float*>(LU);
    float* b = static_cast<float*>(B);
    ORTHORNN_CUBLAS(cublasStrsm(blas_, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT,
                                nrhs, n, &one, lu, n, b, nrhs));
    ORTHORNN_CUBLAS(cublasStrsm(blas_, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, CUBLAS_DIAG_UNIT, nrhs,
                                n, &one, lu, n, b, nrhs));
    row_swaps_kernel<float><<<gridFor(nrhs), kThreads, 0, stream_>>>(n, nrhs, piv, b, fault_, faultTag(kOpLuSolve));
  } else {
    const double one = 1.0;
    const double* lu = static_cast<const double*>(LU);
    double* b = static_cast<double*>(B);
    ORTHORNN_CUBLAS(cublasDtrsm(blas_, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_UPPER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT,
                                nrhs, n, &one, lu, n, b, nrhs));
    ORTHORNN_CUBLAS(cublasDtrsm(blas_, CUBLAS_SIDE_RIGHT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, CUBLAS_DIAG_UNIT, nrhs,
                                n, &one, lu, n, b, nrhs));
    row_swaps_kernel<double><<<gridFor(nrhs), kThreads, 0, stream_>>>(n, nrhs, piv, b, fault_, faultTag(kOpLuSolve));
  }
  libraryCall();
  libraryCall();
  launched("row_swaps_kernel");
}

// X A = B is Aᵀ Xᵀ = Bᵀ, and Bᵀ is the column-major view of B (n × nrhs): getrs on the
// factorisation of Aᵀ as it stands, with no transposes. Its devInfo reports only invalid
// arguments, which the dimensions checked here rule out.
void CudaBackend::luSolveRight(DType dt, int64_t n64, int64_t nrhs64, const void* LU, const int32_t* piv, void* B) {
  const int n = cublasDim(n64, "n"), nrhs = cublasDim(nrhs64, "nrhs");
  if (n == 0 || nrhs == 0) return;
  require(isFloat(dt), ErrorCode::Type, std::string("luSolveRight: expected float32 or float64, got ") + dtypeName(dt));
  bind();
  int* info = static_cast<int*>(scratch(kSolverInfo, sizeof(int)));
  auto* checked = static_cast<int32_t*>(scratch(kPivots, size_t(n) * sizeof(int32_t)));
  checked_pivots_kernel<<<gridFor(n), kThreads, 0, stream_>>>(n, piv, checked, fault_, faultTag(kOpLuSolveRight));
  launched("checked_pivots_kernel");
  if (dt == DType::F32)
    ORTHORNN_CUSOLVER(cusolverDnSgetrs(solver_, CUBLAS_OP_N, n, nrhs, static_cast<const float*>(LU), n, checked,
                                       static_cast<float*>(B), n, info));
  else
    ORTHORNN_CUSOLVER(cusolverDnDgetrs(solver_, CUBLAS_OP_N, n, nrhs, static_cast<const double*>(LU), n, checked,
                                       static_cast<double*>(B), n, info));
  libraryCall();
}

// M ← 2X − M with X S = M, S = I + alpha (F − Fᵀ), in two kernels (above) where S fits one
// block's shared memory and n ≤ kCayleyFusedMaxN (forced), or n ≤ kCayleyFusedAutoMaxN (the
// automatic choice); else false, and the caller takes the reference: cayleySystem,
// luFactorNoPivot (getrf), luSolveRight (getrs), axpby. On an H200 (docs/gpu.md) the kernels
// took 0.10 ms per float32 step at n = 64 against cuSOLVER's 0.14, but 0.30 against 0.25 at
// n = 128 and 0.63 against 0.45 at n = 200: the rows' sweeps wait on global loads of the factors.
bool CudaBackend::cayleyFrameSolve(DType dt, int64_t n64, double alpha, const void* F, void* M) {
  if (!mayUse(Fused::CayleyFrameSolve, kFused) || !isFloat(dt) || n64 < 1 || n64 > kCayleyFusedMaxN) return false;
  if (n64 > kCayleyFusedAutoMaxN && !forcedTo(Fused::CayleyFrameSolve, kFused)) return false;
  const int n = int(n64);
  const size_t es = dtypeSize(dt), shared = size_t(n) * n * es;
  if (shared + 64 > sharedPerBlockOptin_) return false;  // and the kernel's own few bytes
  bind();
  void* lu = scratch(kCayleyLu, size_t(n) * n * es);
  int* failed = static_cast<int*>(scratch(kCayleyFailed, sizeof(int)));
  const int tag = faultTag(kOpLuFactor);
  const unsigned rowBlocks = unsigned((n + kCayleyRowsPerBlock - 1) / kCayleyRowsPerBlock);
  const size_t rowShared = size_t(kCayleyRowsPerBlock) * n * es;
  onFloat(dt, "cayleyFrameSolve", [&](auto z) {
    using T = decltype(z);
    allowSharedMemory(cayley_lu_kernel<T>, shared);
    cayley_lu_kernel<T><<<1, dim3(32, 32), shared, stream_>>>(n, T(alpha), static_cast<const T*>(F), static_cast<T*>(lu),
                                                                failed, fault_, tag);
    launched("cayley_lu_kernel");
    cayley_rows_kernel<T><<<rowBlocks, 32 * kCayleyRowsPerBlock, rowShared, stream_>>>(n, static_cast<const T*>(lu), failed,
                                                                                       static_cast<T*>(M));
    launched("cayley_rows_kernel");
  });
  ran(Fused::CayleyFrameSolve, kFused);
  return true;
}

// Thin QR of row-major A (m × n): the transpose into a column-major copy, geqrf, R with the
// sign fix, orgqr in place, Q with the same signs.
void CudaBackend::qr(DType dt, int64_t m64, int64_t n64, const void* A, void* Q, void* R) {
  const int m = cublasDim(m64, "m"), n = cublasDim(n64, "n"), k = std::min(m, n);
  if (k == 0) return;
  require(isFloat(dt), ErrorCode::Type, std::string("qr: expected float32 or float64, got ") + dtypeName(dt));
  bind();
  const size_t es = dtypeSize(dt);
  checkFinite(dt, int64_t(m) * n, A, kOpQr);
  void* work = scratch(kSolverCopy, size_t(m) * n * es);
  transpose(dt, m, n, A, work);  // row-major n × m is column-major m × n
  void* tau = scratch(kSolverAux, size_t(k) * es);
  void* signs = scratch(kSolverSigns, size_t(k) * es);
  int* info = static_cast<int*>(scratch(kSolverInfo, sizeof(int)));
  int lq = 0, lo = 0;
  if (dt == DType::F32) {
    float *w = static_cast<float*>(work), *t = static_cast<float*>(tau);
    ORTHORNN_CUSOLVER(cusolverDnSgeqrf_bufferSize(solver_, m, n, w, m, &lq));
    ORTHORNN_CUSOLVER(cusolverDnSorgqr_bufferSize(solver_, m, k, k, w, m, t, &lo));
    auto* ws = static_cast<float*>(scratch(kSolverWork, size_t(std::max({lq, lo, 1})) * es));
    ORTHORNN_CUSOLVER(cusolverDnSgeqrf(solver_, m, n, w, m, t, ws, std::max(lq, 1), info));
    libraryCall();
    qr_r_kernel<float><<<gridFor(int64_t(k) * n), kThreads, 0, stream_>>>(m, n, k, w, static_cast<float*>(R),
                                                                           static_cast<float*>(signs));
    launched("qr_r_kernel");
    ORTHORNN_CUSOLVER(cusolverDnSorgqr(solver_, m, k, k, w, m, t, ws, std::max(lo, 1), info));
    libraryCall();
    qr_q_kernel<float><<<gridFor(int64_t(m) * k), kThreads, 0, stream_>>>(m, k, w, static_cast<const float*>(signs),
                                                                          static_cast<float*>(Q));
  } else {
    double *w = static_cast<double*>(work), *t = static_cast<double*>(tau);
    ORTHORNN_CUSOLVER(cusolverDnDgeqrf_bufferSize(solver_, m, n, w, m, &lq));
    ORTHORNN_CUSOLVER(cusolverDnDorgqr_bufferSize(solver_, m, k, k, w, m, t, &lo));
    auto* ws = static_cast<double*>(scratch(kSolverWork, size_t(std::max({lq, lo, 1})) * es));
    ORTHORNN_CUSOLVER(cusolverDnDgeqrf(solver_, m, n, w, m, t, ws, std::max(lq, 1), info));
    libraryCall();
    qr_r_kernel<double><<<gridFor(int64_t(k) * n), kThreads, 0, stream_>>>(m, n, k, w, static_cast<double*>(R),
                                                                            static_cast<double*>(signs));
    launched("qr_r_kernel");
    ORTHORNN_CUSOLVER(cusolverDnDorgqr(solver_, m, k, k, w, m, t, ws, std::max(lo, 1), info));
    libraryCall();
    qr_q_kernel<double><<<gridFor(int64_t(m) * k), kThreads, 0, stream_>>>(m, k, w, static_cast<const double*>(signs),
                                                                           static_cast<double*>(Q));
  }
  launched("qr_q_kernel");
}

// Thin SVD by Jacobi (gesvdj, singular values sorted descending). The column-major view of
// row-major A (m × n) is Aᵀ = V S Uᵀ: gesvdj of that n × m matrix returns V as its "U" —
// column-major n × k, which is exactly row-major Vt (k × n) — and U as its "V", column-major
// m × k, which one transpose turns into row-major U (m × k).
void CudaBackend::svd(DType dt, int64_t m64, int64_t n64, const void* A, void* U, void* S, void* Vt) {
  const int m = cublasDim(m64, "m"), n = cublasDim(n64, "n"), k = std::min(m, n);
  if (k == 0) return;
  require(isFloat(dt), ErrorCode::Type, std::string("svd: expected float32 or float64, got ") + dtypeName(dt));
  bind();
  const size_t es = dtypeSize(dt);
  checkFinite(dt, int64_t(m) * n, A, kOpSvd);
  void* work = scratch(kSolverCopy, size_t(m) * n * es);
  copy(work, A, size_t(m) * n * es);  // gesvdj destroys its input
  void* Ucm = scratch(kSolverAux, size_t(m) * k * es);
  int* info = static_cast<int*>(scratch(kSolverInfo, sizeof(int)));
  int lwork = 0;
  if (dt == DType::F32) {
    auto *w = static_cast<float*>(work), *s = static_cast<float*>(S), *vt = static_cast<float*>(Vt),
         *u = static_cast<float*>(Ucm);
    ORTHORNN_CUSOLVER(cusolverDnSgesvdj_bufferSize(solver_, CUSOLVER_EIG_MODE_VECTOR, 1, n, m, w, n, s, vt, n, u, m,
                                                   &lwork, gesvdj_));
    auto* ws = static_cast<float*>(scratch(kSolverWork, size_t(std::max(lwork, 1)) * es));
    ORTHORNN_CUSOLVER(cusolverDnSgesvdj(solver_, CUSOLVER_EIG_MODE_VECTOR, 1, n, m, w, n, s, vt, n, u, m, ws,
                                        std::max(lwork, 1), info, gesvdj_));
  } else {
    auto *w = static_cast<double*>(work), *s = static_cast<double*>(S), *vt = static_cast<double*>(Vt),
         *u = static_cast<double*>(Ucm);
    ORTHORNN_CUSOLVER(cusolverDnDgesvdj_bufferSize(solver_, CUSOLVER_EIG_MODE_VECTOR, 1, n, m, w, n, s, vt, n, u, m,
                                                   &lwork, gesvdj_));
    auto* ws = static_cast<double*>(scratch(kSolverWork, size_t(std::max(lwork, 1)) * es));
    ORTHORNN_CUSOLVER(cusolverDnDgesvdj(solver_, CUSOLVER_EIG_MODE_VECTOR, 1, n, m, w, n, s, vt, n, u, m, ws,
                                        std::max(lwork, 1), info, gesvdj_));
  }
  libraryCall();
  solver_info_kernel<<<1, 1, 0, stream_>>>(info, fault_, faultTag(kOpSvd));
  launched("solver_info_kernel");
  transpose(dt, k, m, Ucm, U);  // column-major m × k is row-major k × m
}

}  // namespace cuda
}  // namespace orthornn
