// CUDA backend, part 5: the Elman recurrence as one persistent kernel per pass. Captured
// graphs still pay a few microseconds per node, two or more nodes per time step; here one
// launch runs all T steps. Both kernels do exactly the per-step work of
// Backend::elman*Recurrence (one product, then the element-wise kernel's arithmetic):
//   forward   A_t += H_t Wᵀ,   H_{t+1} = φ(A_t + b)
//   backward  dH_t += dA_{t+1} W,   dA_t = clip(dH_t ⊙ φ'(H_{t+1}))
// Only the products' summation order differs from cuBLAS's.
//
// "rows": the sequences of a batch never interact, so block g takes R of them and runs all
// T steps alone, with the whole n × n matrix and its rows' state in shared memory: no
// traffic between blocks, one __syncthreads per step. It needs n² + 2Rn elements of shared
// memory (n up to about 235 in float32, 165 in float64, on a Hopper GPU).
//
// "units": block g owns the hidden units [g·w, g·w + w) of every sequence, keeps those w
// columns of the matrix in shared memory, and per step copies the whole B × n state of the
// previous step from L2; a grid-wide barrier separates the steps (a cooperative launch, so
// all blocks are resident at once). For matrices too large for "rows".
//
// ORTHORNN_CUDA_PERSISTENT (read when the context is created): 0 turns both off (the
// recurrence then runs as CUDA graphs), rows or units allows only that one; otherwise each
// recurrence takes the first that can run of those the policy in persistentPlan allows.
#include <cooperative_groups.h>

#include <algorithm>
#include <climits>

#include "../core/elementwise.h"
#include "cuda_backend.cuh"

namespace orthornn {
namespace cuda {
namespace {

namespace cg = cooperative_groups;

constexpr int kUnitsThreads = 256;
constexpr int kRowsMaxThreads = 1024;

// Loads that bypass L1: the data were written by other blocks during this kernel.
template <typename T>
__device__ __forceinline__ T loadFresh(const T* p) {
  return __ldcg(p);
}

// Shared memory layout: the state rows, each padded by one element (rows n apart would all
// start in the same bank), then the matrix columns M[j, i0 .. i0 + w) row by row.
template <typename T>
struct Tile {
  T* state;  // B × (n + 1)
  T* cols;   // n × w
};

template <typename T>
__device__ Tile<T> tileOf(int B, int n) {
  extern __shared__ __align__(16) unsigned char persistentSmem[];
  T* base = reinterpret_cast<T*>(persistentSmem);
  return {base, base + size_t(B) * (n + 1)};
}

template <typename T>
__device__ void loadColumns(const T* M, int n, int i0, int w, int wc, T* cols) {
  for (int e = threadIdx.x; e < n * w; e += blockDim.x) {
    const int j = e / w, c = e % w;
    cols[e] = c < wc ? M[size_t(j) * n + i0 + c] : T(0);
  }
}

// Which part of the B × n state a thread copies: for n < blockDim, rows r0, r0 + rowStride, ...
// at column j0; otherwise columns j0, j0 + blockDim, ... of every row.
struct StateCopy {
  int r0, rowStride, j0, colStride;
  __device__ StateCopy(int n) {
    if (n >= int(blockDim.x)) {
      r0 = 0, rowStride = 1, j0 = threadIdx.x, colStride = blockDim.x;
    } else {
      rowStride = blockDim.x / n, r0 = threadIdx.x / n, j0 = threadIdx.x % n, colStride = n;
      if (r0 >= rowStride) r0 = INT_MAX;  // the last threads of the block have no whole row
    }
  }
};

// Sixteen loads in flight per thread before the stores: the copy is L2-latency bound.
template <typename T>
__device__ void loadState(const StateCopy& copy, const T* src, int B, int n, T* state) {
  constexpr int kBatch = 16;
  for (int j = copy.j0; j < n; j += copy.colStride) {
    for (int b = copy.r0; b < B; b += kBatch * copy.rowStride) {
      T v[kBatch];
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        const int r = b + u * copy.rowStride;
        v[u] = r < B ? loadFresh(src + size_t(r) * n + j) : T(0);
      }
#pragma unroll
      for (int u = 0; u < kBatch; ++u) {
        const int r = b + u * copy.rowStride;
        if (r < B) state[r * (n + 1) + j] = v[u];
      }
    }
  }
}

// Σ_j row[j] · col[j · stride], in four partial sums (one dependent chain would wait on
// every addition).
template <typename T>
__device__ __forceinline__ T dot(const T* row, const T* col, int n, int stride) {
  T s0 = T(0), s1 = T(0), s2 = T(0), s3 = T(0);
  int j = 0;
#pragma unroll 2
  for (; j + 4 <= n; j += 4) {
    s0 += row[j] * col[j * stride];
    s1 += row[j + 1] * col[(j + 1) * stride];
    s2 += row[j + 2] * col[(j + 2) * stride];
    s3 += row[j + 3] * col[(j + 3) * stride];
  }
  for (; j < n; ++j) s0 += row[j] * col[j * stride];
  return (s0 + s1) + (s2 + s3);
}

// "rows" forward: block g runs sequences [g·R, g·R + R) through all T steps; thread i < n
// computes hidden unit i of each. Shared memory: M (n × n, M[j, i] = Wᵀ[j, i]), then the
// current and the next state (R × n each).
template <typename T>
__global__ void __launch_bounds__(kRowsMaxThreads)
    elman_forward_rows(int T_, int B, int n, int R, Activation act, const T* Wt, const T* bias, T* A, T* H) {
  extern __shared__ __align__(16) unsigned char rowsSmem[];
  T* M = reinterpret_cast<T*>(rowsSmem);
  T* cur = M + size_t(n) * n;
  T* next = cur + size_t(R) * n;
  const int b0 = blockIdx.x * R, rows = min(R, B - b0), i = threadIdx.x;
  const size_t step = size_t(B) * n, first = size_t(b0) * n;
  for (int e = threadIdx.x; e < n * n; e += blockDim.x) M[e] = Wt[e];
  for (int e = threadIdx.x; e < rows * n; e += blockDim.x) cur[e] = H[first + e];
  __syncthreads();
  const T beta = bias && i < n ? bias[i] : T(0);
  for (int t = 0; t < T_; ++t) {
    T* At = A + t * step + first;
    T* Hn = H + (t + 1) * step + first;
    if (i < n) {
      for (int r = 0; r < rows; ++r) {
        const T a = dot(cur + r * n, M + i, n, n) + At[r * n + i];
        At[r * n + i] = a;
        const T h = activate<T>(act, bias ? a + beta : a);
        Hn[r * n + i] = h;
        next[r * n + i] = h;
      }
    }
    __syncthreads();
    T* swap = cur;
    cur = next;
    next = swap;
  }
}

// "rows" backward: M = W, and the state is dA_{t+1}, which this block computed itself.
template <typename T>
__global__ void __launch_bounds__(kRowsMaxThreads)
    elman_backward_rows(int T_, int B, int n, int R, Activation act, const T* W, const T* H, T* dH, T* dA, T clip) {
  extern __shared__ __align__(16) unsigned char rowsSmem[];
  T* M = reinterpret_cast<T*>(rowsSmem);
  T* cur = M + size_t(n) * n;
  T* next = cur + size_t(R) * n;
  const int b0 = blockIdx.x * R, rows = min(R, B - b0), i = threadIdx.x;
  const size_t step = size_t(B) * n, first = size_t(b0) * n;
  for (int e = threadIdx.x; e < n * n; e += blockDim.x) M[e] = W[e];
  __syncthreads();
  for (int t = T_ - 1; t >= 0; --t) {
    T* dHt = dH + t * step + first;
    T* dAt = dA + t * step + first;
    const T* Hn = H + (t + 1) * step + first;
    if (i < n) {
      for (int r = 0; r < rows; ++r) {
        T g = dHt[r * n + i];
        if (t + 1 < T_) {
          g = dot(cur + r * n, M + i, n, n) + g;
          dHt[r * n + i] = g;
        }
        const T da = clipGradient<T>(g * activationDerivativeFromOutput<T>(act, Hn[r * n + i]), clip);
        dAt[r * n + i] = da;
        next[r * n + i] = da;
      }
    }
    __syncthreads();
    T* swap = cur;
    cur = next;
    next = swap;
  }
}

// Forward: Wt is Wᵀ (n × n, row-major), so A_t[b, i] += Σ_j H_t[b, j] Wt[j, i].
template <typename T>
__global__ void __launch_bounds__(kUnitsThreads)
    elman_forward_units(int T_, int B, int n, int w, Activation act, const T* Wt, const T* bias, T* A, T* H) {
  cg::grid_group grid = cg::this_grid();
  const Tile<T> tile = tileOf<T>(B, n);
  const int i0 = blockIdx.x * w, wc = min(w, n - i0);
  loadColumns(Wt, n, i0, w, wc, tile.cols);
  const StateCopy copy(n);
  const size_t step = size_t(B) * n;
  for (int t = 0; t < T_; ++t) {
    loadState(copy, H + t * step, B, n, tile.state);
    __syncthreads();
    T* At = A + t * step;
    T* Hn = H + (t + 1) * step;
    for (int o = threadIdx.x; o < B * wc; o += blockDim.x) {
      const int b = o / wc, c = o % wc;
      const size_t at = size_t(b) * n + i0 + c;
      const T a = dot(tile.state + b * (n + 1), tile.cols + c, n, w) + At[at];
      At[at] = a;
      Hn[at] = activate<T>(act, bias ? a + bias[i0 + c] : a);
    }
    grid.sync();
  }
}

// Backward: W (n × n, row-major), dH_t[b, i] += Σ_j dA_{t+1}[b, j] W[j, i].
template <typename T>
__global__ void __launch_bounds__(kUnitsThreads)
    elman_backward_units(int T_, int B, int n, int w, Activation act, const T* W, const T* H, T* dH, T* dA,
                              T clip) {
  cg::grid_group grid = cg::this_grid();
  const Tile<T> tile = tileOf<T>(B, n);
  const int i0 = blockIdx.x * w, wc = min(w, n - i0);
  loadColumns(W, n, i0, w, wc, tile.cols);
  const StateCopy copy(n);
  const size_t step = size_t(B) * n;
  for (int t = T_ - 1; t >= 0; --t) {
    const bool recurrent = t + 1 < T_;
    if (recurrent) loadState(copy, dA + (t + 1) * step, B, n, tile.state);
    __syncthreads();
    T* dHt = dH + t * step;
    T* dAt = dA + t * step;
    const T* Hn = H + (t + 1) * step;
    for (int o = threadIdx.x; o < B * wc; o += blockDim.x) {
      const int b = o / wc, c = o % wc;
      const size_t at = size_t(b) * n + i0 + c;
      T g = dHt[at];
      if (recurrent) {
        g = dot(tile.state + b * (n + 1), tile.cols + c, n, w) + g;
        dHt[at] = g;
      }
      dAt[at] = clipGradient<T>(g * activationDerivativeFromOutput<T>(act, Hn[at]), clip);
    }
    grid.sync();
  }
}

}  // namespace

bool CudaBackend::persistentPlan(DType dt, int64_t T, int64_t B, int64_t n, PersistentPlan& plan) {
  if (persistentMode_ == PersistentMode::Off || T > INT32_MAX || B * n > INT32_MAX) return false;
  const size_t elem = dt == DType::F64 ? sizeof(double) : sizeof(float);
  if (persistentMode_ != PersistentMode::Units && n <= kRowsMaxThreads) {
    // As many rows per block as it takes for one wave of blocks: at most one block per
    // multiprocessor per copy of M that fits beside another.
    const size_t matrix = size_t(n) * size_t(n) * elem, row = 2 * size_t(n) * elem;
    if (matrix + row <= sharedPerBlockOptin_) {
      const int64_t perMultiprocessor = std::max<int64_t>(1, int64_t(sharedPerMultiprocessor_ / (matrix + row)));
      const int64_t wave = std::max<int64_t>(1, perMultiprocessor * multiprocessors_);
      int64_t R = (B + wave - 1) / wave;
      R = std::min<int64_t>(R, int64_t((sharedPerBlockOptin_ - matrix) / row));
      plan.kind = PersistentPlan::Rows;
      plan.w = int(R);
      plan.blocks = int((B + R - 1) / R);
      plan.threads = int((n + 31) / 32 * 32);
      plan.sharedBytes = matrix + size_t(R) * row;
      return true;
    }
  }
  if (persistentMode_ == PersistentMode::Rows) return false;
  // "units": hidden units per block for about one output per thread, and no more blocks
  // than multiprocessors.
  int64_t w = std::max<int64_t>((n + multiprocessors_ - 1) / multiprocessors_, (kUnitsThreads + B - 1) / B);
  w = std::min(w, n);
  auto bytes = [&](int64_t cols) { return (size_t(B) * size_t(n + 1) + size_t(n) * size_t(cols)) * elem; };
  while (w > 1 && bytes(w) > sharedPerBlockOptin_) w = (w + 1) / 2;
  if (bytes(w) > sharedPerBlockOptin_) return false;
  plan.kind = PersistentPlan::Units;
  plan.w = int(w);
  plan.blocks = int((n + w - 1) / w);
  plan.threads = kUnitsThreads;
  plan.sharedBytes = bytes(w);
  return true;
}

template <typename Kernel>
bool CudaBackend::launchPersistent(Kernel kernel, const PersistentPlan& plan, void** args, const char* name) {
  // Above 48 KiB a kernel must opt in to its shared memory.
  if (plan.sharedBytes > 48 * 1024)
    ORTHORNN_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(plan.sharedBytes)));
  if (plan.kind == PersistentPlan::Rows) {
    ORTHORNN_CUDA(cudaLaunchKernel(reinterpret_cast<const void*>(kernel), dim3(unsigned(plan.blocks)),
                                   dim3(unsigned(plan.threads)), args, plan.sharedBytes, stream()));
  } else {
    // A grid-wide barrier needs every block resident at once.
    int perMultiprocessor = 0;
    ORTHORNN_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perMultiprocessor, kernel, plan.threads,
                                                                plan.sharedBytes));
    if (int64_t(perMultiprocessor) * multiprocessors_ < plan.blocks) return false;
    ORTHORNN_CUDA(cudaLaunchCooperativeKernel(reinterpret_cast<const void*>(kernel), dim3(unsigned(plan.blocks)),
                                              dim3(unsigned(plan.threads)), args, plan.sharedBytes, stream()));
  }
  launched(name);
  return true;
}

bool CudaBackend::elmanForwardPersistent(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* Wt,
                                         const void* bias, void* A, void* H) {
  PersistentPlan plan;
  if (!persistentPlan(dt, T, B, n, plan)) return false;
  int t = int(T), b = int(B), nn = int(n), w = plan.w;
  void* args[] = {&t, &b, &nn, &w, &act, const_cast<void**>(&Wt), const_cast<void**>(&bias), &A, &H};
  const bool rows = plan.kind == PersistentPlan::Rows;
  if (dt == DType::F64)
    return rows ? launchPersistent(elman_forward_rows<double>, plan, args, "elman_forward_rows")
                : launchPersistent(elman_forward_units<double>, plan, args, "elman_forward_units");
  return rows ? launchPersistent(elman_forward_rows<float>, plan, args, "elman_forward_rows")
              : launchPersistent(elman_forward_units<float>, plan, args, "elman_forward_units");
}

bool CudaBackend::elmanBackwardPersistent(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* W,
                                          const void* H, void* dH, void* dA, double clip) {
  PersistentPlan plan;
  if (!persistentPlan(dt, T, B, n, plan)) return false;
  int t = int(T), b = int(B), nn = int(n), w = plan.w;
  const bool rows = plan.kind == PersistentPlan::Rows;
  if (dt == DType::F64) {
    double c = clip;
    void* args[] = {&t, &b, &nn, &w, &act, const_cast<void**>(&W), const_cast<void**>(&H), &dH, &dA, &c};
    return rows ? launchPersistent(elman_backward_rows<double>, plan, args, "elman_backward_rows")
                : launchPersistent(elman_backward_units<double>, plan, args, "elman_backward_units");
  }
  float c = float(clip);
  void* args[] = {&t, &b, &nn, &w, &act, const_cast<void**>(&W), const_cast<void**>(&H), &dH, &dA, &c};
  return rows ? launchPersistent(elman_backward_rows<float>, plan, args, "elman_backward_rows")
              : launchPersistent(elman_backward_units<float>, plan, args, "elman_backward_units");
}

}  // namespace cuda
}  // namespace orthornn
