// CUDA backend: device query, allocation and copies on the context's stream, cuBLAS
// products, and the seeded fills. The factorisations (cuSOLVER) and the fused model
// kernels arrive with the full CUDA backend; until then they raise Unsupported, and
// supports() says so, so callers and tests can skip instead of crashing.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <string>

#include "../core/backend.h"
#include "../core/random.h"

namespace orthornn {
namespace {

[[noreturn]] void cudaFail(cudaError_t status, const char* call) {
  cudaGetLastError();  // clear the sticky-free error so the context stays usable
  if (status == cudaErrorMemoryAllocation)
    fail(ErrorCode::OutOfMemory, std::string(call) + ": out of device memory");
  fail(ErrorCode::Device, std::string(call) + " failed: " + cudaGetErrorName(status) + " (" +
                              cudaGetErrorString(status) + ")");
}

#define ORTHORNN_CUDA(call)                          \
  do {                                               \
    cudaError_t status_ = (call);                    \
    if (status_ != cudaSuccess) cudaFail(status_, #call); \
  } while (0)

#define ORTHORNN_CUBLAS(call)                                                                       \
  do {                                                                                              \
    cublasStatus_t status_ = (call);                                                                \
    if (status_ != CUBLAS_STATUS_SUCCESS)                                                           \
      fail(status_ == CUBLAS_STATUS_ALLOC_FAILED ? ErrorCode::OutOfMemory : ErrorCode::Device,      \
           std::string(#call) + " failed: cuBLAS status " + std::to_string(static_cast<int>(status_))); \
  } while (0)

#define ORTHORNN_CUSOLVER(call)                                                                       \
  do {                                                                                                \
    cusolverStatus_t status_ = (call);                                                                \
    if (status_ != CUSOLVER_STATUS_SUCCESS)                                                           \
      fail(ErrorCode::Device, std::string(#call) + " failed: cuSOLVER status " + std::to_string(static_cast<int>(status_))); \
  } while (0)

template <typename T>
__global__ void fill_kernel(T* x, int64_t count, T value) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = value;
}

template <typename T>
__global__ void random_normal_kernel(T* x, int64_t count, uint64_t seed, double mean, double stddev) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = T(mean + stddev * philoxNormal(seed, uint64_t(i)));
}

template <typename T>
__global__ void random_uniform_kernel(T* x, int64_t count, uint64_t seed, double low, double high) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = T(low + (high - low) * philoxUniform(seed, uint64_t(i)));
}

unsigned gridFor(int64_t count) {
  int64_t blocks = (count + 255) / 256;
  return static_cast<unsigned>(blocks < 4096 ? (blocks < 1 ? 1 : blocks) : 4096);
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device) : device_(device) {
    ORTHORNN_CUDA(cudaSetDevice(device_));
    ORTHORNN_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    ORTHORNN_CUBLAS(cublasCreate(&blas_));
    ORTHORNN_CUBLAS(cublasSetStream(blas_, stream_));
    // Exact float32 products unless a caller opts into TF32 later.
    ORTHORNN_CUBLAS(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
    ORTHORNN_CUSOLVER(cusolverDnCreate(&solver_));
    ORTHORNN_CUSOLVER(cusolverDnSetStream(solver_, stream_));
  }
  ~CudaBackend() override {
    cudaSetDevice(device_);
    if (solver_) cusolverDnDestroy(solver_);
    if (blas_) cublasDestroy(blas_);
    if (stream_) cudaStreamDestroy(stream_);
  }

  const char* name() const override { return "cuda"; }
  std::string device() const override { return "cuda:" + std::to_string(device_); }

  bool supports(Op op, DType dt) const override {
    switch (op) {
      case Op::Gemm:
      case Op::GemmStridedBatched:
      case Op::Fill:
      case Op::RandomNormal:
      case Op::RandomUniform:
      case Op::Copy:
        return isFloat(dt);
      default:
        return false;
    }
  }

  void* allocate(size_t bytes) override {
    ORTHORNN_CUDA(cudaSetDevice(device_));
    void* p = nullptr;
    ORTHORNN_CUDA(cudaMalloc(&p, bytes));
    return p;
  }
  void deallocate(void* ptr, size_t) noexcept override {
    cudaSetDevice(device_);
    cudaFree(ptr);
  }
  void upload(void* dst, const void* src, size_t bytes) override {
    ORTHORNN_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    ORTHORNN_CUDA(cudaStreamSynchronize(stream_));
  }
  void download(void* dst, const void* src, size_t bytes) override {
    ORTHORNN_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    ORTHORNN_CUDA(cudaStreamSynchronize(stream_));
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (dst != src) ORTHORNN_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void synchronize() override { ORTHORNN_CUDA(cudaStreamSynchronize(stream_)); }

  // Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ: swap the operands.
  void gemm(DType dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const void* A, int64_t lda,
            const void* B, int64_t ldb, double beta, void* C, int64_t ldc) override {
    gemmStridedBatched(dt, ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
  }

  void gemmStridedBatched(DType dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const void* A,
                          int64_t lda, int64_t sA, const void* B, int64_t ldb, int64_t sB, double beta, void* C,
                          int64_t ldc, int64_t sC, int64_t batch) override {
    if (m == 0 || n == 0 || batch == 0) return;
    const cublasOperation_t opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
    if (dt == DType::F32) {
      const float a = float(alpha), b = float(beta);
      ORTHORNN_CUBLAS(cublasSgemmStridedBatched(blas_, opB, opA, int(n), int(m), int(k), &a,
                                                static_cast<const float*>(B), int(ldb), sB,
                                                static_cast<const float*>(A), int(lda), sA, &b,
                                                static_cast<float*>(C), int(ldc), sC, int(batch)));
    } else if (dt == DType::F64) {
      ORTHORNN_CUBLAS(cublasDgemmStridedBatched(blas_, opB, opA, int(n), int(m), int(k), &alpha,
                                                static_cast<const double*>(B), int(ldb), sB,
                                                static_cast<const double*>(A), int(lda), sA, &beta,
                                                static_cast<double*>(C), int(ldc), sC, int(batch)));
    } else {
      fail(ErrorCode::Type, "gemm: expected float32 or float64");
    }
  }

  void fill(DType dt, int64_t count, double value, void* x) override {
    if (count == 0) return;
    if (dt == DType::F32) fill_kernel<float><<<gridFor(count), 256, 0, stream_>>>(static_cast<float*>(x), count, float(value));
    else if (dt == DType::F64) fill_kernel<double><<<gridFor(count), 256, 0, stream_>>>(static_cast<double*>(x), count, value);
    else fill_kernel<int32_t><<<gridFor(count), 256, 0, stream_>>>(static_cast<int32_t*>(x), count, int32_t(value));
    ORTHORNN_CUDA(cudaGetLastError());
  }
  void randomNormal(DType dt, int64_t count, uint64_t seed, double mean, double stddev, void* x) override {
    if (count == 0) return;
    if (dt == DType::F32) random_normal_kernel<float><<<gridFor(count), 256, 0, stream_>>>(static_cast<float*>(x), count, seed, mean, stddev);
    else random_normal_kernel<double><<<gridFor(count), 256, 0, stream_>>>(static_cast<double*>(x), count, seed, mean, stddev);
    ORTHORNN_CUDA(cudaGetLastError());
  }
  void randomUniform(DType dt, int64_t count, uint64_t seed, double low, double high, void* x) override {
    if (count == 0) return;
    if (dt == DType::F32) random_uniform_kernel<float><<<gridFor(count), 256, 0, stream_>>>(static_cast<float*>(x), count, seed, low, high);
    else random_uniform_kernel<double><<<gridFor(count), 256, 0, stream_>>>(static_cast<double*>(x), count, seed, low, high);
    ORTHORNN_CUDA(cudaGetLastError());
  }

  [[noreturn]] void unsupported(const char* op) {
    fail(ErrorCode::Unsupported, std::string(op) + " is not implemented by the cuda backend yet");
  }
  void luFactor(DType, int64_t, void*, int32_t*) override { unsupported("luFactor"); }
  void luSolve(DType, int64_t, int64_t, const void*, const int32_t*, void*) override { unsupported("luSolve"); }
  void qr(DType, int64_t, int64_t, const void*, void*, void*) override { unsupported("qr"); }
  void svd(DType, int64_t, int64_t, const void*, void*, void*, void*) override { unsupported("svd"); }
  void axpby(DType, int64_t, double, const void*, double, const void*, void*) override { unsupported("axpby"); }
  void mul(DType, int64_t, const void*, const void*, void*) override { unsupported("mul"); }
  void biasActivation(DType, Activation, int64_t, int64_t, const void*, const void*, void*) override {
    unsupported("biasActivation");
  }
  void activationBackward(DType, Activation, int64_t, const void*, const void*, void*) override {
    unsupported("activationBackward");
  }
  void marginSigmoid(DType, int64_t, double, const void*, void*) override { unsupported("marginSigmoid"); }
  void marginSigmoidBackward(DType, int64_t, double, const void*, const void*, void*) override {
    unsupported("marginSigmoidBackward");
  }
  void scaleColumns(DType, int64_t, int64_t, const void*, const void*, void*) override { unsupported("scaleColumns"); }
  void columnDots(DType, int64_t, int64_t, const void*, const void*, void*) override { unsupported("columnDots"); }
  void addDiagonal(DType, int64_t, double, void*) override { unsupported("addDiagonal"); }
  void antisymmetrize(DType, int64_t, const void*, void*) override { unsupported("antisymmetrize"); }
  void transpose(DType, int64_t, int64_t, const void*, void*) override { unsupported("transpose"); }
  void lstmCellForward(DType, int64_t, int64_t, void*, const void*, const void*, const void*, void*, void*) override {
    unsupported("lstmCellForward");
  }
  void lstmCellBackward(DType, int64_t, int64_t, void*, const void*, const void*, const void*, void*) override {
    unsupported("lstmCellBackward");
  }
  void reduce(DType, Reduction, int64_t, const void*, void*) override { unsupported("reduce"); }
  void rmspropStep(DType, int64_t, double, double, double, double, void*, const void*, void*) override {
    unsupported("rmspropStep");
  }
  void adamStep(DType, int64_t, double, double, double, double, double, int64_t, void*, const void*, void*, void*) override {
    unsupported("adamStep");
  }
  void sgdStep(DType, int64_t, double, double, double, bool, void*, const void*, void*) override { unsupported("sgdStep"); }
  void columnSum(DType, int64_t, int64_t, const void*, double, void*) override { unsupported("columnSum"); }
  void groupNorms(DType, int64_t, int64_t, const void*, void*) override { unsupported("groupNorms"); }
  void softmaxCrossEntropy(DType, int64_t, int64_t, const void*, const int32_t*, const void*, void*, void*) override {
    unsupported("softmaxCrossEntropy");
  }
  void meanSquaredError(DType, int64_t, int64_t, const void*, const void*, const void*, void*, void*) override {
    unsupported("meanSquaredError");
  }

 private:
  int device_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cusolverDnHandle_t solver_ = nullptr;
};

}  // namespace

std::shared_ptr<Backend> createCudaBackend(int deviceIndex) { return std::make_shared<CudaBackend>(deviceIndex); }

BackendInfo cudaBackendInfo() {
  BackendInfo info;
  info.name = "cuda";
  info.compiled = true;
  int count = 0;
  cudaError_t status = cudaGetDeviceCount(&count);
  if (status != cudaSuccess || count == 0) {
    cudaGetLastError();
    info.available = false;
    info.reason = status != cudaSuccess ? std::string(cudaGetErrorString(status)) : "no CUDA-capable device is detected";
    return info;
  }
  info.available = true;
  info.deviceCount = count;
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
    info.device = std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ", " +
                  std::to_string(prop.totalGlobalMem >> 20) + " MiB)";
  }
  return info;
}

}  // namespace orthornn
