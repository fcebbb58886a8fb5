// CUDA backend, part 2: the fused kernels. Every element-wise rule is the shared one in
// native/core/elementwise.h (the CPU tests cover that arithmetic); reductions accumulate in
// double like the CPU's, combine per-block partial results in a fixed order (the last block
// to finish does it, so one launch suffices and results do not depend on scheduling), and
// propagate NaN.
#include <cfloat>
#include <climits>
#include <cmath>

#include "../core/dispatch.h"
#include "../core/random.h"
#include "cuda_backend.cuh"

namespace orthornn {
namespace cuda {
namespace {

#define GRID_STRIDE(i, count) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (count); i += int64_t(gridDim.x) * blockDim.x)

struct SumOp {
  __device__ double operator()(double a, double b) const { return a + b; }
};
// max that never hides a NaN (the CPU's maxAbs reports NaN when any element is NaN).
struct MaxNanOp {
  __device__ double operator()(double a, double b) const { return a != a ? a : (b != b ? b : (a > b ? a : b)); }
};

// Reduces v over the block (blockDim.x a multiple of 32, at most kThreads); the result is
// valid in thread 0. The identity of both ops on their inputs is 0.
template <typename Op>
__device__ double blockReduce(double v, Op op) {
  __shared__ double warps[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warps[warp] = v;
  __syncthreads();
  const int nw = (blockDim.x + 31) >> 5;
  v = threadIdx.x < nw ? warps[threadIdx.x] : 0.0;
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_down_sync(0xffffffffu, v, o));
  __syncthreads();  // warps[] may be reused by the caller's next reduction
  return v;
}

__device__ long long blockMin(long long v) {
  __shared__ long long warps[kThreads / 32];
  for (int o = 16; o > 0; o >>= 1) {
    long long u = __shfl_down_sync(0xffffffffu, v, o);
    v = u < v ? u : v;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) warps[warp] = v;
  __syncthreads();
  const int nw = (blockDim.x + 31) >> 5;
  v = threadIdx.x < nw ? warps[threadIdx.x] : LLONG_MAX;
  if (warp == 0)
    for (int o = 16; o > 0; o >>= 1) {
      long long u = __shfl_down_sync(0xffffffffu, v, o);
      v = u < v ? u : v;
    }
  __syncthreads();
  return v;
}

// True, in every thread of the block, for the last block of the grid to get here; the
// caller's writes made before the call are then visible to it.
__device__ bool lastBlockDone(unsigned* ticket, unsigned blocks) {
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0 && threadIdx.y == 0) last = atomicAdd(ticket, 1u) == blocks - 1;
  __syncthreads();
  return last;
}

// --- fills and random numbers --------------------------------------------------------------

template <typename T>
__global__ void fill_kernel(T* x, int64_t count, T value) {
  GRID_STRIDE(i, count) x[i] = value;
}

template <typename T>
__global__ void random_normal_kernel(T* x, int64_t count, uint64_t seed, double mean, double stddev) {
  GRID_STRIDE(i, count) x[i] = T(mean + stddev * philoxNormal(seed, uint64_t(i)));
}

template <typename T>
__global__ void random_uniform_kernel(T* x, int64_t count, uint64_t seed, double low, double high) {
  GRID_STRIDE(i, count) x[i] = T(low + (high - low) * philoxUniform(seed, uint64_t(i)));
}

// --- element-wise ----------------------------------------------------------------------------

template <typename T>
__global__ void axpby_kernel(int64_t count, T a, const T* x, T b, const T* y, T* out) {
  GRID_STRIDE(i, count) out[i] = a * x[i] + b * y[i];
}

template <typename T>
__global__ void mul_kernel(int64_t count, const T* x, const T* y, T* out) {
  GRID_STRIDE(i, count) out[i] = x[i] * y[i];
}

template <typename T>
__global__ void bias_activation_kernel(Activation act, int64_t rows, int64_t cols, const T* x, const T* bias, T* out) {
  GRID_STRIDE(i, rows * cols) {
    const T a = bias ? x[i] + bias[i % cols] : x[i];
    out[i] = activate<T>(act, a);
  }
}

template <typename T>
__global__ void activation_backward_kernel(Activation act, int64_t count, const T* dy, const T* h, T* out) {
  GRID_STRIDE(i, count) out[i] = dy[i] * activationDerivativeFromOutput<T>(act, h[i]);
}

template <typename T>
__global__ void clip_kernel(int64_t count, T c, T* x) {
  GRID_STRIDE(i, count) x[i] = clipGradient<T>(x[i], c);
}

template <typename T>
__global__ void margin_sigmoid_kernel(int64_t count, T margin, const T* p, T* s) {
  GRID_STRIDE(i, count) s[i] = marginSigmoid<T>(p[i], margin);
}

template <typename T>
__global__ void margin_sigmoid_backward_kernel(int64_t count, T margin, const T* p, const T* ds, T* dp) {
  GRID_STRIDE(i, count) dp[i] = ds[i] * marginSigmoidDerivative<T>(p[i], margin);
}

template <typename T>
__global__ void scale_columns_kernel(int64_t rows, int64_t cols, const T* x, const T* s, T* out) {
  GRID_STRIDE(i, rows * cols) out[i] = x[i] * s[i % cols];
}

template <typename T>
__global__ void add_diagonal_kernel(int64_t n, T value, T* x) {
  GRID_STRIDE(i, n) x[i * n + i] += value;
}

// out = I + alpha (x − xᵀ), one thread per entry (out does not overlap x).
template <typename T>
__global__ void cayley_system_kernel(int64_t n, T alpha, const T* x, T* out) {
  GRID_STRIDE(e, n * n) {
    const int64_t i = e / n, j = e % n;
    out[e] = alpha * (x[i * n + j] - x[j * n + i]) + (i == j ? T(1) : T(0));  // NaN on the diagonal shows
  }
}

constexpr int kTile = 32;

// out (cols × rows) = xᵀ through a shared-memory tile, so reads and writes both coalesce.
template <typename T>
__global__ void transpose_kernel(int64_t rows, int64_t cols, const T* x, T* out) {
  __shared__ T tile[kTile][kTile + 1];
  const int64_t tilesR = (rows + kTile - 1) / kTile, tilesC = (cols + kTile - 1) / kTile;
  for (int64_t t = blockIdx.x; t < tilesR * tilesC; t += gridDim.x) {
    const int64_t r0 = (t / tilesC) * kTile, c0 = (t % tilesC) * kTile;
    for (int k = threadIdx.y; k < kTile; k += blockDim.y) {
      const int64_t r = r0 + k, c = c0 + threadIdx.x;
      if (r < rows && c < cols) tile[k][threadIdx.x] = x[r * cols + c];
    }
    __syncthreads();
    for (int k = threadIdx.y; k < kTile; k += blockDim.y) {
      const int64_t c = c0 + k, r = r0 + threadIdx.x;
      if (r < rows && c < cols) out[c * rows + r] = tile[threadIdx.x][k];
    }
    __syncthreads();
  }
}

template <typename T>
__global__ void lstm_forward_kernel(int64_t rows, int64_t n, T* gates, const T* b1, const T* b2, const T* cPrev, T* c,
                                    T* h) {
  GRID_STRIDE(e, rows * n) {
    const int64_t r = e / n, j = e % n;
    T* zr = gates + r * 4 * n;
    for (int q = 0; q < 4; ++q) {
      const int64_t col = q * n + j;
      zr[col] += (b1 ? b1[col] : T(0)) + (b2 ? b2[col] : T(0));
    }
    lstmCellForwardAt<T>(zr[j], zr[n + j], zr[2 * n + j], zr[3 * n + j], cPrev[e], c[e], h[e]);
  }
}

template <typename T>
__global__ void lstm_backward_kernel(int64_t rows, int64_t n, T* gates, const T* cPrev, const T* c, const T* dh, T* dc) {
  GRID_STRIDE(e, rows * n) {
    const int64_t r = e / n, j = e % n;
    T* zr = gates + r * 4 * n;
    lstmCellBackwardAt<T>(zr[j], zr[n + j], zr[2 * n + j], zr[3 * n + j], cPrev[e], c[e], dh[e], dc[e]);
  }
}

template <typename T>
__global__ void rmsprop_kernel(int64_t count, T lr, T rho, T eps, bool epsInside, T decay, T* p, const T* g, T* ms) {
  GRID_STRIDE(i, count) rmspropUpdate<T>(p[i], g[i], ms[i], lr, rho, eps, decay, epsInside);
}

template <typename T>
__global__ void adam_kernel(int64_t count, T lr, T beta1, T beta2, T eps, T decay, T c1, T c2, T* p, const T* g, T* m,
                            T* v) {
  GRID_STRIDE(i, count) adamUpdate<T>(p[i], g[i], m[i], v[i], lr, beta1, beta2, eps, decay, c1, c2);
}

template <typename T>
__global__ void sgd_kernel(int64_t count, T lr, T momentum, T decay, bool first, T* p, const T* g, T* b) {
  GRID_STRIDE(i, count) sgdUpdate<T>(p[i], g[i], b[i], lr, momentum, decay, first);
}

// --- reductions ------------------------------------------------------------------------------

template <typename T, int Kind>
__global__ void reduce_kernel(int64_t count, const T* x, double* partials, unsigned* ticket, T* out) {
  double acc = 0;
  GRID_STRIDE(i, count) {
    const double v = double(x[i]);
    if (Kind == int(Reduction::Sum)) acc += v;
    else if (Kind == int(Reduction::SumSquares)) acc += v * v;
    else if (Kind == int(Reduction::MaxAbs)) acc = MaxNanOp()(acc, fabs(v));
    else acc += isFiniteValue<T>(x[i]) ? 0.0 : 1.0;
  }
  const bool isMax = Kind == int(Reduction::MaxAbs);
  acc = isMax ? blockReduce(acc, MaxNanOp()) : blockReduce(acc, SumOp());
  if (threadIdx.x == 0) partials[blockIdx.x] = acc;
  if (!lastBlockDone(ticket, gridDim.x)) return;
  double total = 0;
  const volatile double* vp = partials;
  for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) total = isMax ? MaxNanOp()(total, vp[b]) : total + vp[b];
  total = isMax ? blockReduce(total, MaxNanOp()) : blockReduce(total, SumOp());
  if (threadIdx.x == 0) {
    *out = T(total);
    *ticket = 0;
  }
}

// Records kNonFinite with the lowest index of a NaN or ±Inf in x.
template <typename T>
__global__ void first_nonfinite_kernel(int64_t count, const T* x, long long* partials, unsigned* ticket,
                                       DeviceFault* fault, int op) {
  long long first = LLONG_MAX;
  GRID_STRIDE(i, count) {
    if (!isFiniteValue<T>(x[i])) {
      first = i;
      break;  // the grid stride visits indices in increasing order
    }
  }
  first = blockMin(first);
  if (threadIdx.x == 0) partials[blockIdx.x] = first;
  if (!lastBlockDone(ticket, gridDim.x)) return;
  long long m = LLONG_MAX;
  const volatile long long* vp = partials;
  for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) m = vp[b] < m ? vp[b] : m;
  m = blockMin(m);
  if (threadIdx.x == 0) {
    if (m != LLONG_MAX) raiseFault(fault, op, kNonFinite, m, x[m] != x[m] ? 1 : 0, 0);
    *ticket = 0;
  }
}

constexpr int kColRows = 8;

// out[c] = Σ_r x[r, c] (· y[r, c]) + β out[c]: 32 columns per block, row chunks over
// gridDim.y; the last block of each column tile adds the chunks up in order.
template <typename T, bool Dots>
__global__ void column_reduce_kernel(int64_t rows, int64_t cols, const T* x, const T* y, double beta, T* out,
                                     double* partials, unsigned* tickets) {
  __shared__ double s[kColRows][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t col = int64_t(blockIdx.x) * kTile + tx;
  const int64_t chunks = gridDim.y;
  double acc = 0;
  if (col < cols)
    for (int64_t r = int64_t(blockIdx.y) * kColRows + ty; r < rows; r += chunks * kColRows)
      acc += Dots ? double(x[r * cols + col]) * double(y[r * cols + col]) : double(x[r * cols + col]);
  s[ty][tx] = acc;
  __syncthreads();
  if (ty == 0 && col < cols) {
    double t = 0;
    for (int k = 0; k < kColRows; ++k) t += s[k][tx];
    partials[int64_t(blockIdx.y) * cols + col] = t;
  }
  if (!lastBlockDone(&tickets[blockIdx.x], gridDim.y)) return;
  if (ty == 0 && col < cols) {
    const volatile double* vp = partials;
    double t = 0;
    for (int64_t c = 0; c < chunks; ++c) t += vp[c * cols + col];
    out[col] = T(t + (beta == 0 ? 0.0 : beta * double(out[col])));
  }
  if (tx == 0 && ty == 0) tickets[blockIdx.x] = 0;
}

template <typename T>
__global__ void group_norms_kernel(int64_t groups, int64_t size, const T* x, T* out) {
  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {
    const T* xg = x + g * size;
    double acc = 0;
    for (int64_t i = threadIdx.x; i < size; i += blockDim.x) acc += double(xg[i]) * double(xg[i]);
    acc = blockReduce(acc, SumOp());
    if (threadIdx.x == 0) out[g] = T(sqrt(acc));
  }
}

__device__ inline double warpSum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ inline double warpMax(double v) {
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// One warp per row, in double like the CPU: loss = Σ_r w_r (lse_r − x_r[t_r]),
// dlogits_r = w_r (softmax(x_r) − e_t). A class id out of range is a fault naming the first
// such row (like the CPU's check); its row adds nothing and gets a zero gradient.
template <typename T>
__global__ void softmax_xent_kernel(int64_t rows, int64_t classes, const T* logits, const int32_t* targets,
                                    const T* weights, T* dlogits, double* partials, long long* badPartials,
                                    unsigned* ticket, T* loss, DeviceFault* fault, int tag) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, perBlock = blockDim.x >> 5;
  double total = 0;
  long long firstBad = LLONG_MAX;
  for (int64_t r = int64_t(blockIdx.x) * perBlock + warp; r < rows; r += int64_t(gridDim.x) * perBlock) {
    const T* row = logits + r * classes;
    const int32_t t = targets[r];
    if (t < 0 || t >= classes) {
      if (lane == 0 && r < firstBad) firstBad = r;
      if (dlogits)
        for (int64_t c = lane; c < classes; c += 32) dlogits[r * classes + c] = T(0);
      continue;
    }
    double mx = -INFINITY;
    for (int64_t c = lane; c < classes; c += 32) mx = fmax(mx, double(row[c]));
    mx = warpMax(mx);
    double se = 0;
    for (int64_t c = lane; c < classes; c += 32) se += exp(double(row[c]) - mx);
    se = warpSum(se);
    const double lse = mx + log(se);
    const double w = weights ? double(weights[r]) : 1.0;
    if (lane == 0) total += w * (lse - double(row[t]));
    if (dlogits)
      for (int64_t c = lane; c < classes; c += 32)
        dlogits[r * classes + c] = T(w * (exp(double(row[c]) - lse) - (c == t ? 1.0 : 0.0)));
  }
  total = blockReduce(total, SumOp());
  firstBad = blockMin(firstBad);
  if (threadIdx.x == 0) {
    partials[blockIdx.x] = total;
    badPartials[blockIdx.x] = firstBad;
  }
  if (!lastBlockDone(ticket, gridDim.x)) return;
  double sum = 0;
  long long bad = LLONG_MAX;
  const volatile double* vp = partials;
  const volatile long long* vb = badPartials;
  for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) {
    sum += vp[b];
    bad = vb[b] < bad ? vb[b] : bad;
  }
  sum = blockReduce(sum, SumOp());
  bad = blockMin(bad);
  if (threadIdx.x == 0) {
    *loss = T(sum);
    if (bad != LLONG_MAX) raiseFault(fault, tag, kBadTarget, bad, targets[bad], classes);
    *ticket = 0;
  }
}

template <typename T>
__global__ void mse_kernel(int64_t rows, int64_t cols, const T* y, const T* target, const T* weights, T* dy,
                           double* partials, unsigned* ticket, T* loss) {
  double total = 0;
  GRID_STRIDE(i, rows * cols) {
    const double w = weights ? double(weights[i / cols]) : 1.0;
    const double e = double(y[i]) - double(target[i]);
    total += w * e * e;
    if (dy) dy[i] = T(2.0 * w * e);
  }
  total = blockReduce(total, SumOp());
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
  if (!lastBlockDone(ticket, gridDim.x)) return;
  double sum = 0;
  const volatile double* vp = partials;
  for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) sum += vp[b];
  sum = blockReduce(sum, SumOp());
  if (threadIdx.x == 0) {
    *loss = T(sum);
    *ticket = 0;
  }
}

constexpr int64_t kReduceBlocks = 1024;

}  // namespace

// --- host launchers ------------------------------------------------------------------------

#define LAUNCH(kernel, count, ...)                                                   \
  do {                                                                               \
    kernel<<<gridFor(count), kThreads, 0, stream()>>>(__VA_ARGS__);                  \
    launched(#kernel);                                                               \
  } while (0)

void CudaBackend::fill(DType dt, int64_t count, double value, void* x) {
  if (count <= 0) return;
  if (dt == DType::F32) LAUNCH(fill_kernel<float>, count, mp<float>(x), count, float(value));
  else if (dt == DType::F64) LAUNCH(fill_kernel<double>, count, mp<double>(x), count, value);
  else LAUNCH(fill_kernel<int32_t>, count, mp<int32_t>(x), count, int32_t(value));
}

void CudaBackend::randomNormal(DType dt, int64_t count, uint64_t seed, double mean, double stddev, void* x) {
  if (count <= 0) return;
  onFloat(dt, "randomNormal", [&](auto z) {
    using T = decltype(z);
    LAUNCH(random_normal_kernel<T>, count, mp<T>(x), count, seed, mean, stddev);
  });
}

void CudaBackend::randomUniform(DType dt, int64_t count, uint64_t seed, double low, double high, void* x) {
  if (count <= 0) return;
  onFloat(dt, "randomUniform", [&](auto z) {
    using T = decltype(z);
    LAUNCH(random_uniform_kernel<T>, count, mp<T>(x), count, seed, low, high);
  });
}

void CudaBackend::axpby(DType dt, int64_t count, double alpha, const void* x, double beta, const void* y, void* out) {
  if (count <= 0) return;
  onFloat(dt, "axpby", [&](auto z) {
    using T = decltype(z);
    LAUNCH(axpby_kernel<T>, count, count, T(alpha), cp<T>(x), T(beta), cp<T>(y), mp<T>(out));
  });
}

void CudaBackend::mul(DType dt, int64_t count, const void* x, const void* y, void* out) {
  if (count <= 0) return;
  onFloat(dt, "mul", [&](auto z) {
    using T = decltype(z);
    LAUNCH(mul_kernel<T>, count, count, cp<T>(x), cp<T>(y), mp<T>(out));
  });
}

void CudaBackend::biasActivation(DType dt, Activation act, int64_t rows, int64_t cols, const void* x, const void* bias,
                                 void* out) {
  if (rows * cols <= 0) return;
  onFloat(dt, "biasActivation", [&](auto z) {
    using T = decltype(z);
    LAUNCH(bias_activation_kernel<T>, rows * cols, act, rows, cols, cp<T>(x), cp<T>(bias), mp<T>(out));
  });
}

void CudaBackend::activationBackward(DType dt, Activation act, int64_t count, const void* dy, const void* h, void* out) {
  if (count <= 0) return;
  onFloat(dt, "activationBackward", [&](auto z) {
    using T = decltype(z);
    LAUNCH(activation_backward_kernel<T>, count, act, count, cp<T>(dy), cp<T>(h), mp<T>(out));
  });
}

void CudaBackend::clipElements(DType dt, int64_t count, double c, void* x) {
  if (count <= 0 || !(c > 0)) return;
  onFloat(dt, "clipElements", [&](auto z) {
    using T = decltype(z);
    LAUNCH(clip_kernel<T>, count, count, T(c), mp<T>(x));
  });
}

void CudaBackend::marginSigmoid(DType dt, int64_t count, double margin, const void* p, void* s) {
  if (count <= 0) return;
  onFloat(dt, "marginSigmoid", [&](auto z) {
    using T = decltype(z);
    LAUNCH(margin_sigmoid_kernel<T>, count, count, T(margin), cp<T>(p), mp<T>(s));
  });
}

void CudaBackend::marginSigmoidBackward(DType dt, int64_t count, double margin, const void* p, const void* ds,
                                        void* dp) {
  if (count <= 0) return;
  onFloat(dt, "marginSigmoidBackward", [&](auto z) {
    using T = decltype(z);
    LAUNCH(margin_sigmoid_backward_kernel<T>, count, count, T(margin), cp<T>(p), cp<T>(ds), mp<T>(dp));
  });
}

void CudaBackend::scaleColumns(DType dt, int64_t rows, int64_t cols, const void* x, const void* s, void* out) {
  if (rows * cols <= 0) return;
  onFloat(dt, "scaleColumns", [&](auto z) {
    using T = decltype(z);
    LAUNCH(scale_columns_kernel<T>, rows * cols, rows, cols, cp<T>(x), cp<T>(s), mp<T>(out));
  });
}

void CudaBackend::addDiagonal(DType dt, int64_t n, double value, void* x) {
  if (n <= 0) return;
  onFloat(dt, "addDiagonal", [&](auto z) {
    using T = decltype(z);
    LAUNCH(add_diagonal_kernel<T>, n, n, T(value), mp<T>(x));
  });
}

void CudaBackend::cayleySystem(DType dt, int64_t n, double alpha, const void* x, void* out) {
  if (n <= 0) return;
  onFloat(dt, "cayleySystem", [&](auto z) {
    using T = decltype(z);
    LAUNCH(cayley_system_kernel<T>, n * n, n, T(alpha), cp<T>(x), mp<T>(out));
  });
}

void CudaBackend::transpose(DType dt, int64_t rows, int64_t cols, const void* x, void* out) {
  if (rows <= 0 || cols <= 0) return;
  onFloat(dt, "transpose", [&](auto z) {
    using T = decltype(z);
    const int64_t tiles = ((rows + kTile - 1) / kTile) * ((cols + kTile - 1) / kTile);
    const unsigned blocks = unsigned(tiles < 65535 ? tiles : 65535);
    transpose_kernel<T><<<blocks, dim3(kTile, 8), 0, stream()>>>(rows, cols, cp<T>(x), mp<T>(out));
    launched("transpose_kernel");
  });
}

void CudaBackend::lstmCellForward(DType dt, int64_t rows, int64_t n, void* gates, const void* biasIh,
                                  const void* biasHh, const void* cPrev, void* c, void* h) {
  if (rows * n <= 0) return;
  onFloat(dt, "lstmCellForward", [&](auto z) {
    using T = decltype(z);
    LAUNCH(lstm_forward_kernel<T>, rows * n, rows, n, mp<T>(gates), cp<T>(biasIh), cp<T>(biasHh), cp<T>(cPrev),
           mp<T>(c), mp<T>(h));
  });
}

void CudaBackend::lstmCellBackward(DType dt, int64_t rows, int64_t n, void* gates, const void* cPrev, const void* c,
                                   const void* dh, void* dc) {
  if (rows * n <= 0) return;
  onFloat(dt, "lstmCellBackward", [&](auto z) {
    using T = decltype(z);
    LAUNCH(lstm_backward_kernel<T>, rows * n, rows, n, mp<T>(gates), cp<T>(cPrev), cp<T>(c), cp<T>(dh), mp<T>(dc));
  });
}

void CudaBackend::rmspropStep(DType dt, int64_t count, double lr, double rho, double eps, bool epsInside, double decay,
                              void* param, const void* grad, void* meanSquare) {
  if (count <= 0) return;
  onFloat(dt, "rmspropStep", [&](auto z) {
    using T = decltype(z);
    LAUNCH(rmsprop_kernel<T>, count, count, T(lr), T(rho), T(eps), epsInside, T(decay), mp<T>(param), cp<T>(grad),
           mp<T>(meanSquare));
  });
}

void CudaBackend::adamStep(DType dt, int64_t count, double lr, double beta1, double beta2, double eps, double decay,
                           int64_t step, void* param, const void* grad, void* m, void* v) {
  if (count <= 0) return;
  const double c1 = 1 - std::pow(beta1, double(step)), c2 = 1 - std::pow(beta2, double(step));
  onFloat(dt, "adamStep", [&](auto z) {
    using T = decltype(z);
    LAUNCH(adam_kernel<T>, count, count, T(lr), T(beta1), T(beta2), T(eps), T(decay), T(c1), T(c2), mp<T>(param),
           cp<T>(grad), mp<T>(m), mp<T>(v));
  });
}

void CudaBackend::sgdStep(DType dt, int64_t count, double lr, double momentum, double decay, bool first, void* param,
                          const void* grad, void* buffer) {
  if (count <= 0) return;
  onFloat(dt, "sgdStep", [&](auto z) {
    using T = decltype(z);
    LAUNCH(sgd_kernel<T>, count, count, T(lr), T(momentum), T(decay), first, mp<T>(param), cp<T>(grad), mp<T>(buffer));
  });
}

void CudaBackend::reduce(DType dt, Reduction kind, int64_t count, const void* x, void* out) {
  require(count >= 0, ErrorCode::Range, "reduce: negative count");
  onFloat(dt, "reduce", [&](auto z) {
    using T = decltype(z);
    const unsigned blocks = gridFor(count, kReduceBlocks);
    double* part = partials(blocks);
    unsigned* ticket = tickets(1);
    switch (kind) {
      case Reduction::Sum:
        reduce_kernel<T, 0><<<blocks, kThreads, 0, stream()>>>(count, cp<T>(x), part, ticket, mp<T>(out));
        break;
      case Reduction::SumSquares:
        reduce_kernel<T, 1><<<blocks, kThreads, 0, stream()>>>(count, cp<T>(x), part, ticket, mp<T>(out));
        break;
      case Reduction::MaxAbs:
        reduce_kernel<T, 2><<<blocks, kThreads, 0, stream()>>>(count, cp<T>(x), part, ticket, mp<T>(out));
        break;
      case Reduction::CountNonFinite:
        reduce_kernel<T, 3><<<blocks, kThreads, 0, stream()>>>(count, cp<T>(x), part, ticket, mp<T>(out));
        break;
      default: fail(ErrorCode::Range, "reduce: unknown reduction " + std::to_string(int(kind)));
    }
    launched("reduce_kernel");
  });
}

void CudaBackend::checkFinite(DType dt, int64_t count, const void* x, int op) {
  if (count <= 0) return;
  onFloat(dt, "checkFinite", [&](auto z) {
    using T = decltype(z);
    const unsigned blocks = gridFor(count, kReduceBlocks);
    auto* part = static_cast<long long*>(scratch(kIndex, blocks * sizeof(long long)));
    first_nonfinite_kernel<T><<<blocks, kThreads, 0, stream()>>>(count, cp<T>(x), part, tickets(1), fault(), faultTag(FaultOp(op)));
    launched("first_nonfinite_kernel");
  });
}

namespace {
template <bool Dots>
void columnReduce(CudaBackend& be, DType dt, int64_t rows, int64_t cols, const void* x, const void* y, double beta,
                  void* out, const char* op) {
  if (cols <= 0) return;
  require(rows >= 0, ErrorCode::Range, std::string(op) + ": negative row count");
  int64_t chunks = (rows + 255) / 256;
  chunks = chunks < 1 ? 1 : (chunks > 64 ? 64 : chunks);
  const int64_t tiles = (cols + kTile - 1) / kTile;
  require(tiles <= INT_MAX, ErrorCode::Range, std::string(op) + ": too many columns");
  double* part = be.partials(size_t(chunks * cols));
  unsigned* tick = be.tickets(size_t(tiles));
  onFloat(dt, op, [&](auto z) {
    using T = decltype(z);
    column_reduce_kernel<T, Dots><<<dim3(unsigned(tiles), unsigned(chunks)), dim3(kTile, kColRows), 0, be.stream()>>>(
        rows, cols, cp<T>(x), cp<T>(y), beta, mp<T>(out), part, tick);
  });
  be.launched("column_reduce_kernel");
}
}  // namespace

void CudaBackend::columnSum(DType dt, int64_t rows, int64_t cols, const void* x, double beta, void* out) {
  columnReduce<false>(*this, dt, rows, cols, x, nullptr, beta, out, "columnSum");
}

void CudaBackend::columnDots(DType dt, int64_t rows, int64_t cols, const void* x, const void* y, void* out) {
  columnReduce<true>(*this, dt, rows, cols, x, y, 0.0, out, "columnDots");
}

void CudaBackend::groupNorms(DType dt, int64_t groups, int64_t size, const void* x, void* out) {
  if (groups <= 0) return;
  onFloat(dt, "groupNorms", [&](auto z) {
    using T = decltype(z);
    const unsigned blocks = unsigned(groups < 65535 ? groups : 65535);
    group_norms_kernel<T><<<blocks, kThreads, 0, stream()>>>(groups, size, cp<T>(x), mp<T>(out));
    launched("group_norms_kernel");
  });
}

void CudaBackend::softmaxCrossEntropy(DType dt, int64_t rows, int64_t classes, const void* logits,
                                      const int32_t* targets, const void* weights, void* loss, void* dlogits) {
  require(rows >= 0 && classes > 0, ErrorCode::Range, "softmaxCrossEntropy: needs rows ≥ 0 and classes ≥ 1");
  onFloat(dt, "softmaxCrossEntropy", [&](auto z) {
    using T = decltype(z);
    const int64_t warps = kThreads / 32;
    int64_t blocks = (rows + warps - 1) / warps;
    blocks = blocks < 1 ? 1 : (blocks > kReduceBlocks ? kReduceBlocks : blocks);
    softmax_xent_kernel<T><<<unsigned(blocks), kThreads, 0, stream()>>>(
        rows, classes, cp<T>(logits), targets, cp<T>(weights), mp<T>(dlogits), partials(size_t(blocks)),
        static_cast<long long*>(scratch(kIndex, size_t(blocks) * sizeof(long long))), tickets(1), mp<T>(loss), fault(), faultTag(kOpSoftmaxCrossEntropy));
    launched("softmax_xent_kernel");
  });
}

void CudaBackend::meanSquaredError(DType dt, int64_t rows, int64_t cols, const void* y, const void* target,
                                   const void* weights, void* loss, void* dy) {
  require(rows >= 0 && cols >= 0, ErrorCode::Range, "meanSquaredError: negative size");
  onFloat(dt, "meanSquaredError", [&](auto z) {
    using T = decltype(z);
    const unsigned blocks = gridFor(rows * cols, kReduceBlocks);
    mse_kernel<T><<<blocks, kThreads, 0, stream()>>>(rows, cols, cp<T>(y), cp<T>(target), cp<T>(weights), mp<T>(dy),
                                                     partials(blocks), tickets(1), mp<T>(loss));
    launched("mse_kernel");
  });
}

}  // namespace cuda
}  // namespace orthornn
