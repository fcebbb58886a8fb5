// CUDA backend, part 5: the Elman recurrence as one persistent kernel per pass. Captured
// graphs still pay a few microseconds per node, two or three nodes per time step; here one
// cooperative launch runs all T steps, with a grid-wide barrier between them.
//
// Block g owns the hidden units [g·w, g·w + w) of every sequence in the batch. It keeps the
// matching w columns of the recurrent matrix in shared memory for the whole pass, and per
// step copies the previous step's B × n state (H_t forward, dA_{t+1} backward) from L2 into
// shared memory, then computes its B × w outputs, one dot product of length n per thread:
//   forward   A_t += H_t Wᵀ,   H_{t+1} = φ(A_t + b)
//   backward  dH_t += dA_{t+1} W,   dA_t = clip(dH_t ⊙ φ'(H_{t+1}))
// exactly the per-step work of Backend::elman*Recurrence (one product, then the element-wise
// kernel's arithmetic). Only the products' summation order differs from cuBLAS's.
//
// It runs when the device supports cooperative launches, the shared memory fits, and the
// grid fits on the device at once; otherwise the recurrence falls back to the graphs.
// ORTHORNN_CUDA_PERSISTENT=0 (read when the context is created) turns it off.
#include <cooperative_groups.h>

#include <algorithm>
#include <climits>

#include "../core/elementwise.h"
#include "cuda_backend.cuh"

namespace orthornn {
namespace cuda {
namespace {

namespace cg = cooperative_groups;

constexpr int kPersistentThreads = 256;

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

template <typename T>
__device__ void loadState(const StateCopy& copy, const T* src, int B, int n, T* state) {
  for (int b = copy.r0; b < B; b += copy.rowStride)
#pragma unroll 4
    for (int j = copy.j0; j < n; j += copy.colStride) state[b * (n + 1) + j] = loadFresh(src + size_t(b) * n + j);
}

template <typename T>
__device__ __forceinline__ T dotColumn(const T* row, const T* cols, int n, int w, int c) {
  T acc = T(0);
#pragma unroll 8
  for (int j = 0; j < n; ++j) acc += row[j] * cols[j * w + c];
  return acc;
}

// Forward: Wt is Wᵀ (n × n, row-major), so A_t[b, i] += Σ_j H_t[b, j] Wt[j, i].
template <typename T>
__global__ void __launch_bounds__(kPersistentThreads)
    elman_forward_persistent(int T_, int B, int n, int w, Activation act, const T* Wt, const T* bias, T* A, T* H) {
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
      const T a = dotColumn(tile.state + b * (n + 1), tile.cols, n, w, c) + At[at];
      At[at] = a;
      Hn[at] = activate<T>(act, bias ? a + bias[i0 + c] : a);
    }
    grid.sync();
  }
}

// Backward: W (n × n, row-major), dH_t[b, i] += Σ_j dA_{t+1}[b, j] W[j, i].
template <typename T>
__global__ void __launch_bounds__(kPersistentThreads)
    elman_backward_persistent(int T_, int B, int n, int w, Activation act, const T* W, const T* H, T* dH, T* dA,
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
        g = dotColumn(tile.state + b * (n + 1), tile.cols, n, w, c) + g;
        dHt[at] = g;
      }
      dAt[at] = clipGradient<T>(g * activationDerivativeFromOutput<T>(act, Hn[at]), clip);
    }
    grid.sync();
  }
}

}  // namespace

bool CudaBackend::persistentPlan(DType dt, int64_t T, int64_t B, int64_t n, PersistentPlan& plan) {
  if (!persistentEnabled_ || T > INT32_MAX || B * n > INT32_MAX) return false;
  const size_t elem = dt == DType::F64 ? sizeof(double) : sizeof(float);
  // Columns per block: about one output per thread, and no more blocks than multiprocessors.
  int64_t w = std::max<int64_t>((n + multiprocessors_ - 1) / multiprocessors_, (kPersistentThreads + B - 1) / B);
  w = std::min(w, n);
  auto bytes = [&](int64_t cols) { return (size_t(B) * size_t(n + 1) + size_t(n) * size_t(cols)) * elem; };
  while (w > 1 && bytes(w) > sharedPerBlockOptin_) w = (w + 1) / 2;
  if (bytes(w) > sharedPerBlockOptin_) return false;
  plan.w = int(w);
  plan.blocks = int((n + w - 1) / w);
  plan.sharedBytes = bytes(w);
  return true;
}

template <typename Kernel>
bool CudaBackend::launchPersistent(Kernel kernel, const PersistentPlan& plan, void** args, const char* name) {
  // Above 48 KiB a kernel must opt in to its shared memory; then the grid must fit at once.
  if (plan.sharedBytes > 48 * 1024)
    ORTHORNN_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(plan.sharedBytes)));
  int perMultiprocessor = 0;
  ORTHORNN_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perMultiprocessor, kernel, kPersistentThreads,
                                                              plan.sharedBytes));
  if (int64_t(perMultiprocessor) * multiprocessors_ < plan.blocks) return false;
  ORTHORNN_CUDA(cudaLaunchCooperativeKernel(reinterpret_cast<const void*>(kernel), dim3(unsigned(plan.blocks)),
                                            dim3(kPersistentThreads), args, plan.sharedBytes, stream()));
  launched(name);
  return true;
}

bool CudaBackend::elmanForwardPersistent(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* Wt,
                                         const void* bias, void* A, void* H) {
  PersistentPlan plan;
  if (!persistentPlan(dt, T, B, n, plan)) return false;
  int t = int(T), b = int(B), nn = int(n), w = plan.w;
  void* args[] = {&t, &b, &nn, &w, &act, const_cast<void**>(&Wt), const_cast<void**>(&bias), &A, &H};
  return dt == DType::F64
             ? launchPersistent(elman_forward_persistent<double>, plan, args, "elman_forward_persistent")
             : launchPersistent(elman_forward_persistent<float>, plan, args, "elman_forward_persistent");
}

bool CudaBackend::elmanBackwardPersistent(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* W,
                                          const void* H, void* dH, void* dA, double clip) {
  PersistentPlan plan;
  if (!persistentPlan(dt, T, B, n, plan)) return false;
  int t = int(T), b = int(B), nn = int(n), w = plan.w;
  if (dt == DType::F64) {
    double c = clip;
    void* args[] = {&t, &b, &nn, &w, &act, const_cast<void**>(&W), const_cast<void**>(&H), &dH, &dA, &c};
    return launchPersistent(elman_backward_persistent<double>, plan, args, "elman_backward_persistent");
  }
  float c = float(clip);
  void* args[] = {&t, &b, &nn, &w, &act, const_cast<void**>(&W), const_cast<void**>(&H), &dH, &dA, &c};
  return launchPersistent(elman_backward_persistent<float>, plan, args, "elman_backward_persistent");
}

}  // namespace cuda
}  // namespace orthornn
