// CUDA backend, part 5: the Elman recurrence as one kernel per pass. Captured graphs still pay
// a few microseconds per node, two or more nodes per time step; here one launch runs all T
// steps. The kernels do exactly the per-step work of Backend::elman*Recurrence (one product,
// then the element-wise kernel's arithmetic):
//   forward   A_t += H_t Wᵀ,   H_{t+1} = φ(A_t + b)
//   backward  dH_t += dA_{t+1} W,   dA_t = clip(dH_t ⊙ φ'(H_{t+1}))
// Only the products' summation order differs from cuBLAS's.
//
// The sequences of a batch never interact, so block g takes R of them and runs all T steps
// alone, with the whole n × n matrix and its sequences' state in shared memory: no traffic
// between blocks, no grid-wide barrier. Each hidden unit's dot product is split over S
// threads (S groups of warps; group q sums the q-th stretch of about n/S terms), whose partial
// sums meet in shared memory. It needs (n² + 2Rn + SRn) elements of shared memory, so n up to
// about 230 in float32 and 160 in float64 on a Hopper GPU; larger recurrences run as graphs.
//
// ORTHORNN_CUDA_PERSISTENT=0 (read when the context is created) turns it off;
// ORTHORNN_CUDA_PERSISTENT_SPLIT=1, 2 or 4 fixes S (by default the largest that fits 1,024
// threads).
#include <algorithm>
#include <cstdint>

#include "../core/elementwise.h"
#include "cuda_backend.cuh"

namespace orthornn {
namespace cuda {
namespace {

constexpr int kMaxThreads = 1024;

// Σ_{j in [lo, hi)} row[j] · M[j · n + i], in four partial sums (one dependent chain would
// wait on every addition).
template <typename T>
__device__ __forceinline__ T partialDot(const T* row, const T* M, int n, int i, int lo, int hi) {
  T s0 = T(0), s1 = T(0), s2 = T(0), s3 = T(0);
  int j = lo;
#pragma unroll 2
  for (; j + 4 <= hi; j += 4) {
    s0 += row[j] * M[j * n + i];
    s1 += row[j + 1] * M[(j + 1) * n + i];
    s2 += row[j + 2] * M[(j + 2) * n + i];
    s3 += row[j + 3] * M[(j + 3) * n + i];
  }
  for (; j < hi; ++j) s0 += row[j] * M[j * n + i];
  return (s0 + s1) + (s2 + s3);
}

// Shared memory: M (n × n), the current and the next state (R × n each), the partial sums
// (S × R × n). Thread t works on hidden unit i = t mod n32 (n32 = n rounded up to a warp) and
// stretch q = t / n32 of the dot products.
template <typename T>
struct Rows {
  T *M, *cur, *next, *part;
  int b0, rows, i, q, lo, hi;
  __device__ Rows(int B, int n, int R, int S) {
    extern __shared__ __align__(16) unsigned char rowsSmem[];
    M = reinterpret_cast<T*>(rowsSmem);
    cur = M + size_t(n) * n;
    next = cur + size_t(R) * n;
    part = next + size_t(R) * n;
    b0 = blockIdx.x * R;
    rows = min(R, B - b0);
    const int n32 = (n + 31) / 32 * 32;
    i = threadIdx.x % n32;
    q = threadIdx.x / n32;
    const int stretch = (n + S - 1) / S;
    lo = min(n, q * stretch);
    hi = min(n, lo + stretch);
  }
  // Σ_j cur[r, j] M[j, i] for every row r of this block: each thread adds its stretch, then
  // the threads of stretch 0 add the S partial sums in order. Returns in part[r · n + i].
  __device__ void products(int n, int S) {
    if (i < n)
      for (int r = 0; r < rows; ++r) part[(q * rows + r) * n + i] = partialDot(cur + r * n, M, n, i, lo, hi);
    __syncthreads();
    if (q == 0 && i < n)
      for (int r = 0; r < rows; ++r) {
        T s = part[r * n + i];
        for (int p = 1; p < S; ++p) s += part[(p * rows + r) * n + i];
        part[r * n + i] = s;
      }
  }
  __device__ void swap() {
    T* t = cur;
    cur = next;
    next = t;
  }
};

// Forward: block g runs sequences [g·R, g·R + R); M = Wᵀ, so (cur M)[r, i] = Σ_j H_t[r, j] W[i, j].
template <typename T>
__global__ void __launch_bounds__(kMaxThreads)
    elman_forward_rows(int T_, int B, int n, int R, int S, Activation act, const T* Wt, const T* bias, T* A, T* H) {
  Rows<T> s(B, n, R, S);
  const size_t step = size_t(B) * n, first = size_t(s.b0) * n;
  for (int e = threadIdx.x; e < n * n; e += blockDim.x) s.M[e] = Wt[e];
  for (int e = threadIdx.x; e < s.rows * n; e += blockDim.x) s.cur[e] = H[first + e];
  __syncthreads();
  const T beta = bias && s.i < n ? bias[s.i] : T(0);
  for (int t = 0; t < T_; ++t) {
    s.products(n, S);
    if (s.q == 0 && s.i < n) {
      T* At = A + t * step + first;
      T* Hn = H + (t + 1) * step + first;
      for (int r = 0; r < s.rows; ++r) {
        const int at = r * n + s.i;
        const T a = s.part[at] + At[at];
        At[at] = a;
        const T h = activate<T>(act, bias ? a + beta : a);
        Hn[at] = h;
        s.next[at] = h;
      }
    }
    __syncthreads();
    s.swap();
  }
}

// Backward: M = W, and the state is dA_{t+1}, which this block computed itself.
template <typename T>
__global__ void __launch_bounds__(kMaxThreads)
    elman_backward_rows(int T_, int B, int n, int R, int S, Activation act, const T* W, const T* H, T* dH, T* dA,
                        T clip) {
  Rows<T> s(B, n, R, S);
  const size_t step = size_t(B) * n, first = size_t(s.b0) * n;
  for (int e = threadIdx.x; e < n * n; e += blockDim.x) s.M[e] = W[e];
  __syncthreads();
  for (int t = T_ - 1; t >= 0; --t) {
    const bool recurrent = t + 1 < T_;
    if (recurrent) s.products(n, S);
    if (s.q == 0 && s.i < n) {
      T* dHt = dH + t * step + first;
      T* dAt = dA + t * step + first;
      const T* Hn = H + (t + 1) * step + first;
      for (int r = 0; r < s.rows; ++r) {
        const int at = r * n + s.i;
        T g = dHt[at];
        if (recurrent) {
          g = s.part[at] + g;
          dHt[at] = g;
        }
        const T da = clipGradient<T>(g * activationDerivativeFromOutput<T>(act, Hn[at]), clip);
        dAt[at] = da;
        s.next[at] = da;
      }
    }
    __syncthreads();
    s.swap();
  }
}

}  // namespace

bool CudaBackend::persistentPlan(DType dt, int64_t T, int64_t B, int64_t n, PersistentPlan& plan) {
  if (!persistentEnabled_ || !mayUse(Fused::ElmanRecurrence, kPersistent) || T > INT32_MAX || B > INT32_MAX || n > kMaxThreads) return false;
  const int64_t n32 = (n + 31) / 32 * 32;
  int64_t S = persistentSplit_ > 0 ? persistentSplit_ : 4;
  while (S > 1 && S * n32 > kMaxThreads) S /= 2;
  if (S * n32 > kMaxThreads) return false;
  const size_t elem = dt == DType::F64 ? sizeof(double) : sizeof(float);
  const size_t matrix = size_t(n) * size_t(n) * elem, row = size_t(2 + S) * size_t(n) * elem;
  if (matrix + row > sharedPerBlockOptin_) return false;
  // As many sequences per block as it takes for one wave of blocks.
  const int64_t perMultiprocessor = std::max<int64_t>(1, int64_t(sharedPerMultiprocessor_ / (matrix + row)));
  const int64_t wave = perMultiprocessor * multiprocessors_;
  int64_t R = std::min<int64_t>((B + wave - 1) / wave, int64_t((sharedPerBlockOptin_ - matrix) / row));
  plan.R = int(R);
  plan.S = int(S);
  plan.blocks = int((B + R - 1) / R);
  plan.threads = int(S * n32);
  plan.sharedBytes = matrix + size_t(R) * row;
  return true;
}

template <typename Kernel>
void CudaBackend::launchPersistent(Kernel kernel, const PersistentPlan& plan, void** args, const char* name) {
  allowSharedMemory(kernel, plan.sharedBytes);
  ORTHORNN_CUDA(cudaLaunchKernel(reinterpret_cast<const void*>(kernel), dim3(unsigned(plan.blocks)),
                                 dim3(unsigned(plan.threads)), args, plan.sharedBytes, stream()));
  launched(name);
}

bool CudaBackend::elmanForwardPersistent(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* Wt,
                                         const void* bias, void* A, void* H) {
  PersistentPlan plan;
  if (!persistentPlan(dt, T, B, n, plan)) return false;
  int t = int(T), b = int(B), nn = int(n), R = plan.R, S = plan.S;
  void* args[] = {&t, &b, &nn, &R, &S, &act, const_cast<void**>(&Wt), const_cast<void**>(&bias), &A, &H};
  if (dt == DType::F64) launchPersistent(elman_forward_rows<double>, plan, args, "elman_forward_rows");
  else launchPersistent(elman_forward_rows<float>, plan, args, "elman_forward_rows");
  return true;
}

bool CudaBackend::elmanBackwardPersistent(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* W,
                                          const void* H, void* dH, void* dA, double clip) {
  PersistentPlan plan;
  if (!persistentPlan(dt, T, B, n, plan)) return false;
  int t = int(T), b = int(B), nn = int(n), R = plan.R, S = plan.S;
  if (dt == DType::F64) {
    double c = clip;
    void* args[] = {&t, &b, &nn, &R, &S, &act, const_cast<void**>(&W), const_cast<void**>(&H), &dH, &dA, &c};
    launchPersistent(elman_backward_rows<double>, plan, args, "elman_backward_rows");
  } else {
    float c = float(clip);
    void* args[] = {&t, &b, &nn, &R, &S, &act, const_cast<void**>(&W), const_cast<void**>(&H), &dH, &dA, &c};
    launchPersistent(elman_backward_rows<float>, plan, args, "elman_backward_rows");
  }
  return true;
}

}  // namespace cuda
}  // namespace orthornn
