// CUDA backend, part 1: the device and its handles, memory and copies, cuBLAS products,
// internal scratch, the deferred device faults and the backend listing.
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>

#include "../core/tensor.h"
#include "cuda_backend.cuh"

namespace orthornn {
namespace cuda {

void cudaFail(cudaError_t status, const char* call) {
  cudaGetLastError();  // clear a non-sticky error so that the context stays usable
  if (status == cudaErrorMemoryAllocation)
    fail(ErrorCode::OutOfMemory, std::string(call) + ": out of device memory (cudaErrorMemoryAllocation)");
  fail(ErrorCode::Device, std::string(call) + " failed: " + cudaGetErrorName(status) + " (" +
                              cudaGetErrorString(status) + ")");
}

void cublasFail(cublasStatus_t status, const char* call) {
  const std::string what = std::string(call) + " failed: " + cublasGetStatusName(status);
  if (status == CUBLAS_STATUS_ALLOC_FAILED) fail(ErrorCode::OutOfMemory, what + ": out of device memory");
  if (status == CUBLAS_STATUS_INVALID_VALUE) fail(ErrorCode::Range, what + " (an argument is out of range)");
  fail(ErrorCode::Device, what);
}

namespace {
const char* cusolverStatusName(cusolverStatus_t s) {
  switch (s) {
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_NOT_SUPPORTED: return "CUSOLVER_STATUS_NOT_SUPPORTED";
    default: return "cuSOLVER status";
  }
}
}  // namespace

void cusolverFail(cusolverStatus_t status, const char* call) {
  const std::string what = std::string(call) + " failed: " + cusolverStatusName(status) + " (" +
                           std::to_string(static_cast<int>(status)) + ")";
  if (status == CUSOLVER_STATUS_ALLOC_FAILED) fail(ErrorCode::OutOfMemory, what + ": out of device memory");
  if (status == CUSOLVER_STATUS_INVALID_VALUE) fail(ErrorCode::Range, what + " (an argument is out of range)");
  fail(ErrorCode::Device, what);
}

int cublasDim(int64_t v, const char* what) {
  require(v >= 0 && v <= INT_MAX, ErrorCode::Range,
          std::string(what) + " = " + std::to_string(v) + " is outside the range cuBLAS/cuSOLVER accept");
  return static_cast<int>(v);
}

namespace {
thread_local int tlsDevice = -1;  // the device this thread last made current through bind()

// CaptureGuard's state (cuda_backend.cuh): captures in progress in this process, and the frees
// held back meanwhile. A free holds the mutex through cudaFree, so no capture can begin during one.
std::mutex captureMutex;
int capturesInProgress = 0;
std::vector<std::pair<int, void*>> heldFrees;  // (device, pointer)

void freeOn(int device, void* ptr) noexcept {
  if (tlsDevice != device && cudaSetDevice(device) == cudaSuccess) tlsDevice = device;
  cudaFree(ptr);  // waits for the kernels still using it
}

template <typename T>
__global__ void scale_matrix_kernel(T* C, int64_t rows, int64_t cols, int64_t ldc, T beta) {
  const int64_t count = rows * cols;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x) {
    T& c = C[(i / cols) * ldc + i % cols];
    c = beta == T(0) ? T(0) : beta * c;
  }
}
}  // namespace

CudaBackend::CudaBackend(int device) : device_(device) {
  try {
    bind();
    cudaDeviceProp prop;
    ORTHORNN_CUDA(cudaGetDeviceProperties(&prop, device_));
    deviceName_ = "cuda:" + std::to_string(device_);
    ORTHORNN_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    ORTHORNN_CUBLAS(cublasCreate(&blas_));
    ORTHORNN_CUBLAS(cublasSetStream(blas_, stream_));
    // Exact float32 products: no TF32 (GPU results are compared with the CPU's).
    ORTHORNN_CUBLAS(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
    // A workspace of our own, so that cuBLAS never allocates while a graph is captured
    // (NVIDIA recommends 32 MiB on Hopper, 4 MiB before).
    blasWorkspaceBytes_ = prop.major >= 9 ? (size_t(32) << 20) : (size_t(4) << 20);
    blasWorkspace_ = internalAllocate(blasWorkspaceBytes_);
    ORTHORNN_CUBLAS(cublasSetWorkspace(blas_, blasWorkspace_, blasWorkspaceBytes_));
    ORTHORNN_CUSOLVER(cusolverDnCreate(&solver_));
    ORTHORNN_CUSOLVER(cusolverDnSetStream(solver_, stream_));
    ORTHORNN_CUSOLVER(cusolverDnCreateGesvdjInfo(&gesvdj_));
    fault_ = static_cast<DeviceFault*>(internalAllocate(sizeof(DeviceFault)));
    ORTHORNN_CUDA(cudaMemsetAsync(fault_, 0, sizeof(DeviceFault), stream_));
    ORTHORNN_CUDA(cudaHostAlloc(reinterpret_cast<void**>(&hostFault_), sizeof(DeviceFault), cudaHostAllocDefault));
    std::memset(hostFault_, 0, sizeof(DeviceFault));
    const char* graphs = std::getenv("ORTHORNN_CUDA_GRAPHS");
    graphsEnabled_ = !(graphs && std::string(graphs) == "0");
    const char* stepGraphs = std::getenv("ORTHORNN_CUDA_STEP_GRAPHS");
    callGraphsByDefault_ = stepGraphs && std::string(stepGraphs) == "1";
    int optin = 0, perMultiprocessor = 0;
    ORTHORNN_CUDA(cudaDeviceGetAttribute(&multiprocessors_, cudaDevAttrMultiProcessorCount, device_));
    ORTHORNN_CUDA(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device_));
    ORTHORNN_CUDA(cudaDeviceGetAttribute(&perMultiprocessor, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device_));
    sharedPerBlockOptin_ = size_t(std::max(optin, 48 * 1024));
    sharedPerMultiprocessor_ = size_t(std::max(perMultiprocessor, optin));
    const char* persistent = std::getenv("ORTHORNN_CUDA_PERSISTENT");
    persistentEnabled_ = !(persistent && std::string(persistent) == "0");
    if (const char* split = std::getenv("ORTHORNN_CUDA_PERSISTENT_SPLIT")) {
      const std::string s(split);
      if (s != "1" && s != "2" && s != "4")
        fail(ErrorCode::Range, "ORTHORNN_CUDA_PERSISTENT_SPLIT must be 1, 2 or 4, got '" + s + "'");
      persistentSplit_ = std::stoi(s);
    }
    ORTHORNN_CUDA(cudaStreamSynchronize(stream_));
  } catch (...) {
    release();
    throw;
  }
}

CudaBackend::~CudaBackend() { release(); }

void CudaBackend::release() noexcept {
  if (cudaSetDevice(device_) == cudaSuccess) tlsDevice = device_;
  if (stream_) cudaStreamSynchronize(stream_);
  releaseGraphs();
  for (Buffer& b : scratch_) {
    if (b.ptr) internalRelease(b.ptr, b.bytes);
    b = Buffer{};
  }
  if (gesvdj_) cusolverDnDestroyGesvdjInfo(gesvdj_);
  if (solver_) cusolverDnDestroy(solver_);
  if (blas_) cublasDestroy(blas_);
  if (blasWorkspace_) internalRelease(blasWorkspace_, blasWorkspaceBytes_);
  if (fault_) internalRelease(fault_, sizeof(DeviceFault));
  if (hostFault_) cudaFreeHost(hostFault_);
  if (stream_) cudaStreamDestroy(stream_);
  gesvdj_ = nullptr;
  solver_ = nullptr;
  blas_ = nullptr;
  blasWorkspace_ = nullptr;
  fault_ = nullptr;
  hostFault_ = nullptr;
  stream_ = nullptr;
  cudaGetLastError();
}


LaunchCounters CudaBackend::launchCounters() const {
  LaunchCounters c;
  c.kernels = counters_.kernels.load();
  c.libraryCalls = counters_.libraryCalls.load();
  c.graphs = counters_.graphs.load();
  c.graphNodes = counters_.graphNodes.load();
  c.graphsBuilt = counters_.graphsBuilt.load();
  c.graphsUpdated = counters_.graphsUpdated.load();
  return c;
}

void CudaBackend::bind() {
  if (tlsDevice == device_) return;
  ORTHORNN_CUDA(cudaSetDevice(device_));
  tlsDevice = device_;
}

void CudaBackend::launched(const char* kernel) {
  cudaError_t status = cudaGetLastError();
  if (status != cudaSuccess) cudaFail(status, kernel);
  if (!capturing_) counters_.kernels.fetch_add(1, std::memory_order_relaxed);
}

// --- memory ------------------------------------------------------------------------------

void* CudaBackend::allocate(size_t bytes) {
  bind();
  void* p = nullptr;
  ORTHORNN_CUDA(cudaMalloc(&p, bytes));
  return p;
}

void CudaBackend::deallocate(void* ptr, size_t) noexcept {
  std::lock_guard<std::mutex> lock(captureMutex);
  if (capturesInProgress == 0) return freeOn(device_, ptr);
  try {
    heldFrees.emplace_back(device_, ptr);
  } catch (...) {
    // No memory to remember it: leaking one buffer is better than breaking a capture.
  }
}

CaptureGuard::CaptureGuard() {
  std::lock_guard<std::mutex> lock(captureMutex);
  ++capturesInProgress;
}

CaptureGuard::~CaptureGuard() {
  std::lock_guard<std::mutex> lock(captureMutex);
  if (--capturesInProgress > 0 || heldFrees.empty()) return;
  const int current = tlsDevice;
  for (const auto& [device, ptr] : heldFrees) freeOn(device, ptr);
  heldFrees.clear();
  if (current >= 0 && tlsDevice != current && cudaSetDevice(current) == cudaSuccess) tlsDevice = current;
}

// Internal buffers count in memory() like tensors do, under the same device name.
void* CudaBackend::internalAllocate(size_t bytes) {
  void* p = allocate(bytes);
  recordAllocation(deviceName_, int64_t(bytes));
  return p;
}

void CudaBackend::internalRelease(void* p, size_t bytes) noexcept {
  deallocate(p, bytes);
  recordRelease(deviceName_, int64_t(bytes));
}

void* CudaBackend::scratch(ScratchSlot slot, size_t bytes) {
  Buffer& b = scratch_[slot];
  if (b.bytes >= bytes && b.ptr) return b.ptr;
  const size_t grown = std::max(bytes, b.bytes + b.bytes / 2);
  if (b.ptr) {
    ORTHORNN_CUDA(cudaStreamSynchronize(stream_));  // queued kernels may still use the old buffer
    internalRelease(b.ptr, b.bytes);
  }
  ++scratchGeneration_;
  b = Buffer{};
  b.ptr = internalAllocate(grown == 0 ? 16 : grown);
  b.bytes = grown == 0 ? 16 : grown;
  if (slot == kCounters) ORTHORNN_CUDA(cudaMemsetAsync(b.ptr, 0, b.bytes, stream_));
  return b.ptr;
}

unsigned* CudaBackend::tickets(size_t count) {
  return static_cast<unsigned*>(scratch(kCounters, std::max<size_t>(count, 64) * sizeof(unsigned)));
}

void CudaBackend::upload(void* dst, const void* src, size_t bytes) {
  bind();
  if (bytes == 0) return;
  ORTHORNN_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
  ORTHORNN_CUDA(cudaStreamSynchronize(stream_));  // the source is the caller's staging memory
  counters_.kernels.fetch_add(1, std::memory_order_relaxed);
}

void CudaBackend::download(void* dst, const void* src, size_t bytes) {
  bind();
  if (bytes > 0) {
    ORTHORNN_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    counters_.kernels.fetch_add(1, std::memory_order_relaxed);
  }
  synchronize();
}

void CudaBackend::copy(void* dst, const void* src, size_t bytes) {
  bind();
  if (dst == src || bytes == 0) return;
  ORTHORNN_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  if (!capturing_) counters_.kernels.fetch_add(1, std::memory_order_relaxed);
}

void CudaBackend::synchronize() {
  bind();
  ORTHORNN_CUDA(cudaMemcpyAsync(hostFault_, fault_, sizeof(DeviceFault), cudaMemcpyDeviceToHost, stream_));
  ORTHORNN_CUDA(cudaStreamSynchronize(stream_));
  if (hostFault_->kind != kNoFault) raisePendingFault();
}

void CudaBackend::beginOp(const std::string& op) {
  // The names are the API's ops, a small fixed set: a linear search of a few dozen strings.
  for (size_t i = 0; i < hostOps_.size(); ++i)
    if (hostOps_[i] == op) {
      hostOp_ = int(i);
      return;
    }
  hostOps_.push_back(op);
  hostOp_ = int(hostOps_.size() - 1);
}

void CudaBackend::raisePendingFault() {
  const DeviceFault f = *hostFault_;
  std::memset(hostFault_, 0, sizeof(DeviceFault));
  // Cleared before raising, so the context stays usable after the error is reported.
  ORTHORNN_CUDA(cudaMemsetAsync(fault_, 0, sizeof(DeviceFault), stream_));
  ORTHORNN_CUDA(cudaStreamSynchronize(stream_));
  const int kernelOp = faultOpOf(f.op);
  const std::string kernel = kernelOp == kOpSoftmaxCrossEntropy ? "softmaxCrossEntropy"
                             : kernelOp == kOpLuFactor           ? "luFactor"
                             : kernelOp == kOpQr                 ? "qr"
                             : kernelOp == kOpSvd                ? "svd"
                             : kernelOp == kOpLuSolve            ? "luSolve"
                             : kernelOp == kOpLuSolveRight       ? "luSolveRight"
                                                                 : "a cuda op";
  // The API op that queued the kernel, with the kernel's own name when they differ
  // ("lstmLossAndGradients (softmaxCrossEntropy): target 5 at row 13 ...").
  const size_t host = size_t(f.op >> kFaultOpBits);
  const std::string& api = host < hostOps_.size() ? hostOps_[host] : hostOps_[0];
  const std::string op = api.empty() || api == kernel ? kernel : api + " (" + kernel + ")";
  switch (f.kind) {
    case kBadTarget:
      fail(ErrorCode::Range, std::string(op) + ": target " + std::to_string(f.b) + " at row " + std::to_string(f.a) +
                                 " is not a class id in [0, " + std::to_string(f.c) + ")");
    case kNonFinite:
      fail(ErrorCode::Numeric, std::string(op) + ": the input contains " + (f.b ? "NaN" : "Inf") + " at flat index " +
                                   std::to_string(f.a));
    case kSingular:
      fail(ErrorCode::Numeric, std::string(op) + ": the matrix is singular: U[" + std::to_string(f.a) + ", " +
                                   std::to_string(f.a) + "] is exactly zero");
    case kNoConvergence:
      fail(ErrorCode::Numeric, std::string(op) + ": the SVD did not converge (gesvdj info " + std::to_string(f.a) + ")");
    case kSolverArgument:
      fail(ErrorCode::Internal, std::string(op) + ": cuSOLVER rejected argument " + std::to_string(f.a));
    case kBadPivot:
      fail(ErrorCode::Range, std::string(op) + ": argument 'pivots' must hold row numbers in 1.." + std::to_string(f.c) +
                                 " (luFactor's output), got " + std::to_string(f.b) + " at index " + std::to_string(f.a));
    default:
      fail(ErrorCode::Internal, std::string(op) + ": unknown device fault " + std::to_string(f.kind));
  }
}

// --- products ----------------------------------------------------------------------------

void CudaBackend::gemm(DType dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const void* A,
                       int64_t lda, const void* B, int64_t ldb, double beta, void* C, int64_t ldc) {
  gemmStridedBatched(dt, ta, tb, m, n, k, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
}

// Row-major C = op(A) op(B) is column-major Cᵀ = op(B)ᵀ op(A)ᵀ: swap the operands.
void CudaBackend::gemmStridedBatched(DType dt, bool ta, bool tb, int64_t m64, int64_t n64, int64_t k64, double alpha,
                                     const void* A, int64_t lda64, int64_t sA, const void* B, int64_t ldb64, int64_t sB,
                                     double beta, void* C, int64_t ldc64, int64_t sC, int64_t batch64) {
  require(isFloat(dt), ErrorCode::Type, std::string("gemm: expected float32 or float64, got ") + dtypeName(dt));
  bind();
  const int m = cublasDim(m64, "m"), n = cublasDim(n64, "n"), k = cublasDim(k64, "k");
  const int batch = cublasDim(batch64, "batch");
  const int ldc = cublasDim(ldc64, "ldc");
  if (m == 0 || n == 0 || batch == 0) return;
  if (k == 0) {  // C = β C (cuBLAS would reject the zero leading dimensions of A and B)
    for (int i = 0; i < batch; ++i) {
      if (dt == DType::F32)
        scale_matrix_kernel<float><<<gridFor(int64_t(m) * n), kThreads, 0, stream_>>>(
            static_cast<float*>(C) + i * sC, m, n, ldc, float(beta));
      else
        scale_matrix_kernel<double><<<gridFor(int64_t(m) * n), kThreads, 0, stream_>>>(
            static_cast<double*>(C) + i * sC, m, n, ldc, beta);
      launched("scale_matrix_kernel");
    }
    return;
  }
  const int lda = cublasDim(lda64, "lda"), ldb = cublasDim(ldb64, "ldb");
  const cublasOperation_t opA = ta ? CUBLAS_OP_T : CUBLAS_OP_N, opB = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  if (dt == DType::F32) {
    const float a = float(alpha), b = float(beta);
    if (batch == 1)
      ORTHORNN_CUBLAS(cublasSgemm(blas_, opB, opA, n, m, k, &a, static_cast<const float*>(B), ldb,
                                  static_cast<const float*>(A), lda, &b, static_cast<float*>(C), ldc));
    else
      ORTHORNN_CUBLAS(cublasSgemmStridedBatched(blas_, opB, opA, n, m, k, &a, static_cast<const float*>(B), ldb, sB,
                                                static_cast<const float*>(A), lda, sA, &b, static_cast<float*>(C), ldc,
                                                sC, batch));
  } else {
    if (batch == 1)
      ORTHORNN_CUBLAS(cublasDgemm(blas_, opB, opA, n, m, k, &alpha, static_cast<const double*>(B), ldb,
                                  static_cast<const double*>(A), lda, &beta, static_cast<double*>(C), ldc));
    else
      ORTHORNN_CUBLAS(cublasDgemmStridedBatched(blas_, opB, opA, n, m, k, &alpha, static_cast<const double*>(B), ldb,
                                                sB, static_cast<const double*>(A), lda, sA, &beta,
                                                static_cast<double*>(C), ldc, sC, batch));
  }
  libraryCall();
}

}  // namespace cuda

std::shared_ptr<Backend> createCudaBackend(int deviceIndex) { return std::make_shared<cuda::CudaBackend>(deviceIndex); }

BackendInfo cudaBackendInfo() {
  BackendInfo info;
  info.name = "cuda";
  info.compiled = true;
  int count = 0;
  // No driver, an old driver or no device: an error status, never a crash.
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
  } else {
    cudaGetLastError();
  }
  return info;
}

}  // namespace orthornn
