// The CUDA backend: cuBLAS products, cuSOLVER factorisations, fused kernels over
// the element-wise arithmetic of native/core/elementwise.h, and the Elman recurrence as CUDA
// graphs. Shared by cuda_backend.cu (device, memory, products, faults), kernels.cu,
// solver.cu and recurrence.cu.
//
// Everything is queued on the context's stream; nothing synchronises with the host until a
// caller reads a result (download) or waits (synchronize). Conditions only the device can see
// (a class id out of range, NaN input to a factorisation, a singular matrix, an SVD that did
// not converge) are recorded by the kernels in a device-side fault record, and raised as the
// project's error by the next download() or synchronize() — the JS side's next await.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "../core/backend.h"

namespace orthornn {
namespace cuda {

[[noreturn]] void cudaFail(cudaError_t status, const char* call);
[[noreturn]] void cublasFail(cublasStatus_t status, const char* call);
[[noreturn]] void cusolverFail(cusolverStatus_t status, const char* call);

// cudaFree synchronises the whole device, and a synchronisation with a stream that is being
// captured invalidates that capture, whichever thread frees: a tensor of any context freed from
// the JS thread (or another context's worker) while a worker captures a recurrence graph would
// turn that context's recurrences to step by step for good. So while any capture of this
// process is in progress, frees are held back, and done when the last capture ends. A capture
// is one CaptureGuard's lifetime.
class CaptureGuard {
 public:
  CaptureGuard();
  ~CaptureGuard();
  CaptureGuard(const CaptureGuard&) = delete;
  CaptureGuard& operator=(const CaptureGuard&) = delete;
};

#define ORTHORNN_CUDA(call)                                          \
  do {                                                               \
    cudaError_t status_ = (call);                                    \
    if (status_ != cudaSuccess) ::orthornn::cuda::cudaFail(status_, #call); \
  } while (0)

#define ORTHORNN_CUBLAS(call)                                                    \
  do {                                                                           \
    cublasStatus_t status_ = (call);                                             \
    if (status_ != CUBLAS_STATUS_SUCCESS) ::orthornn::cuda::cublasFail(status_, #call); \
  } while (0)

#define ORTHORNN_CUSOLVER(call)                                                      \
  do {                                                                               \
    cusolverStatus_t status_ = (call);                                               \
    if (status_ != CUSOLVER_STATUS_SUCCESS) ::orthornn::cuda::cusolverFail(status_, #call); \
  } while (0)

// What a kernel found wrong, for the host to raise at the next synchronisation.
enum FaultKind : int {
  kNoFault = 0, kBadTarget = 1, kNonFinite = 2, kSingular = 3, kNoConvergence = 4, kSolverArgument = 5,
  kBadPivot = 6,  // a pivot outside 1..n (a = its index, b = its value, c = n)
};
enum FaultOp : int { kOpSoftmaxCrossEntropy = 1, kOpLuFactor = 2, kOpQr = 3, kOpSvd = 4, kOpLuSolve = 5, kOpLuSolveRight = 6 };

// A fault tag: the FaultOp in the low bits, above them the API op that queued the kernel
// (CudaBackend::faultTag), so the error names the call the user made.
constexpr int kFaultOpBits = 4;
__host__ __device__ inline int faultOpOf(int tag) { return tag & ((1 << kFaultOpBits) - 1); }

struct DeviceFault {
  int kind;  // FaultKind; the first fault wins
  int op;    // fault tag
  long long a, b, c;
};

__device__ inline void raiseFault(DeviceFault* f, int op, int kind, long long a, long long b, long long c) {
  if (atomicCAS(&f->kind, 0, kind) == 0) {
    f->op = op;
    f->a = a;
    f->b = b;
    f->c = c;
  }
}

constexpr int kThreads = 256;

inline unsigned gridFor(int64_t count, int64_t cap = 4096) {
  int64_t blocks = (count + kThreads - 1) / kThreads;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks < cap ? blocks : cap);
}

int cublasDim(int64_t v, const char* what);

// Lets `kernel` take `bytes` of dynamic shared memory: above 48 KiB a kernel must opt in.
template <typename Kernel>
void allowSharedMemory(Kernel kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    ORTHORNN_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

// Internal buffers, grown on demand and kept: a steady-state training step allocates nothing.
enum ScratchSlot : int {
  kSolverWork = 0,  // cuSOLVER workspace
  kSolverInfo,      // devInfo
  kSolverCopy,      // the column-major copy a factorisation works on
  kSolverAux,       // tau (QR), V (SVD)
  kSolverSigns,     // QR's diag(R) signs
  kPartials,        // per-block partial results of reductions (double)
  kCounters,        // last-block tickets of reductions (unsigned, kept at zero between kernels)
  kIndex,           // min-index reductions (long long)
  kPivots,          // luSolveRight: the checked copy of the pivots getrs reads
  kCayleyLu,        // cayleyFrameSolve: the factors of the Cayley system
  kCayleyFailed,    // cayleyFrameSolve: whether the factorisation failed (then M is left alone)
  kScratchSlots
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;

  const char* name() const override { return "cuda"; }
  std::string device() const override { return "cuda:" + std::to_string(device_); }
  LaunchCounters launchCounters() const override;
  // The recurrences' variants: step by step (the reference), one CUDA graph per recurrence,
  // or the Elman one as one persistent kernel (persistent.cu). A whole elmanLossAndGradients
  // call's, and a recorded sequence of ops': op by op (the reference), or one CUDA graph per
  // call's key (runCall), taken when forced, or by default where ORTHORNN_CUDA_STEP_GRAPHS=1. The frame-form Cayley solve's:
  // cuSOLVER's (the reference) or two kernels of our own (solver.cu), taken by default for
  // n ≤ kCayleyFusedAutoMaxN, where they were measured faster, and when forced up to
  // kCayleyFusedMaxN (where the system fits one block's shared memory).
  static constexpr int kReference = 0, kGraph = 1, kPersistent = 2, kFused = 1;
  static constexpr int64_t kCayleyFusedMaxN = 256, kCayleyFusedAutoMaxN = 64;
  std::vector<std::string> variants(Fused op) const override {
    switch (op) {
      case Fused::ElmanRecurrence: return {"reference", "graph", "persistent"};
      case Fused::LstmRecurrence: return {"reference", "graph"};
      case Fused::CayleyFrameSolve: return {"reference", "fused"};
      case Fused::CayleyFactor: return {"reference"};
      case Fused::ElmanStep: return {"reference", "graph"};
      case Fused::OpSequence: return {"reference", "graph"};
    }
    return {"reference"};
  }

  void* allocate(size_t bytes) override;
  void deallocate(void* ptr, size_t bytes) noexcept override;
  void upload(void* dst, const void* hostSrc, size_t bytes) override;
  void download(void* hostDst, const void* src, size_t bytes) override;
  void copy(void* dst, const void* src, size_t bytes) override;
  void synchronize() override;
  void beginOp(const std::string& op) override;
  bool replaysCalls(Fused op) const override;
  void runCall(Fused op, const std::vector<uint64_t>& key, const std::function<uint64_t()>& generation,
               const std::function<void()>& body) override;

  void gemm(DType dt, bool transA, bool transB, int64_t m, int64_t n, int64_t k, double alpha, const void* A,
            int64_t lda, const void* B, int64_t ldb, double beta, void* C, int64_t ldc) override;
  void gemmStridedBatched(DType dt, bool transA, bool transB, int64_t m, int64_t n, int64_t k, double alpha,
                          const void* A, int64_t lda, int64_t strideA, const void* B, int64_t ldb, int64_t strideB,
                          double beta, void* C, int64_t ldc, int64_t strideC, int64_t batch) override;

  void luFactor(DType dt, int64_t n, void* A, int32_t* pivots) override;
  void luSolve(DType dt, int64_t n, int64_t nrhs, const void* LU, const int32_t* pivots, void* B) override;
  void luSolveRight(DType dt, int64_t n, int64_t nrhs, const void* LU, const int32_t* pivots, void* B) override;
  bool cayleyFrameSolve(DType dt, int64_t n, double alpha, const void* F, void* M) override;
  void qr(DType dt, int64_t m, int64_t n, const void* A, void* Q, void* R) override;
  void svd(DType dt, int64_t m, int64_t n, const void* A, void* U, void* S, void* Vt) override;

  void fill(DType dt, int64_t count, double value, void* x) override;
  void randomNormal(DType dt, int64_t count, uint64_t seed, double mean, double stddev, void* x) override;
  void randomUniform(DType dt, int64_t count, uint64_t seed, double low, double high, void* x) override;
  void axpby(DType dt, int64_t count, double alpha, const void* x, double beta, const void* y, void* out) override;
  void mul(DType dt, int64_t count, const void* x, const void* y, void* out) override;
  void biasActivation(DType dt, Activation act, int64_t rows, int64_t cols, const void* x, const void* bias,
                      void* out) override;
  void activationBackward(DType dt, Activation act, int64_t count, const void* dy, const void* h, void* out) override;
  void marginSigmoid(DType dt, int64_t count, double margin, const void* p, void* s) override;
  void marginSigmoidBackward(DType dt, int64_t count, double margin, const void* p, const void* ds, void* dp) override;
  void scaleColumns(DType dt, int64_t rows, int64_t cols, const void* x, const void* s, void* out) override;
  void columnDots(DType dt, int64_t rows, int64_t cols, const void* x, const void* y, void* out) override;
  void addDiagonal(DType dt, int64_t n, double value, void* x) override;
  void transpose(DType dt, int64_t rows, int64_t cols, const void* x, void* out) override;
  void cayleySystem(DType dt, int64_t n, double alpha, const void* x, void* out) override;
  void lstmCellForward(DType dt, int64_t rows, int64_t n, void* gates, const void* biasIh, const void* biasHh,
                       const void* cPrev, void* c, void* h) override;
  void lstmCellBackward(DType dt, int64_t rows, int64_t n, void* gates, const void* cPrev, const void* c,
                        const void* dh, void* dc) override;
  void rmspropStep(DType dt, int64_t count, double lr, double rho, double eps, bool epsInside, double decay, void* param,
                   const void* grad, void* meanSquare) override;
  void adamStep(DType dt, int64_t count, double lr, double beta1, double beta2, double eps, double decay,
                int64_t step, void* param, const void* grad, void* m, void* v) override;
  void sgdStep(DType dt, int64_t count, double lr, double momentum, double decay, bool first, void* param,
               const void* grad, void* buffer) override;
  void reduce(DType dt, Reduction kind, int64_t count, const void* x, void* out) override;
  void columnSum(DType dt, int64_t rows, int64_t cols, const void* x, double beta, void* out) override;
  void groupNorms(DType dt, int64_t groups, int64_t groupSize, const void* x, void* out) override;
  void elmanForwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* Wt,
                              const void* bias, const Projection& input, const Logits& logits, void* A,
                              void* H) override;
  void elmanBackwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* W,
                               const void* H, const Projection& input, const Projection& output, void* dH, void* dA,
                               const BackwardSums& sums, int64_t givenFrom, double clip) override;
  void clipElements(DType dt, int64_t count, double c, void* x) override;
  void lstmForwardRecurrence(DType dt, int64_t T, int64_t B, int64_t n, const void* Whh, const void* biasIh,
                             const void* biasHh, void* Z, void* H, void* C) override;
  void lstmBackwardRecurrence(DType dt, int64_t T, int64_t B, int64_t n, const void* Whh, const void* C, void* Z,
                              void* dH, void* dC, const LstmSums& sums) override;
  void softmaxCrossEntropy(DType dt, int64_t rows, int64_t classes, const void* logits, const int32_t* targets,
                           const void* weights, void* loss, void* dlogits) override;
  void meanSquaredError(DType dt, int64_t rows, int64_t cols, const void* y, const void* target, const void* weights,
                        void* loss, void* dy) override;

  // --- for the .cu files ---------------------------------------------------------------
  // The stream, with this device made current on the calling thread (a context's worker
  // thread never chose one; every launch goes through here or bind()).
  cudaStream_t stream() {
    bind();
    return stream_;
  }
  void bind();
  // Checks a launch just made and counts it (a node of the graph being captured, if any).
  void launched(const char* kernel);
  // Counts a cuBLAS/cuSOLVER call made on the stream.
  void libraryCall() {
    if (!capturing_) counters_.libraryCalls.fetch_add(1, std::memory_order_relaxed);
  }
  void* scratch(ScratchSlot slot, size_t bytes);
  DeviceFault* fault() const { return fault_; }
  /** The tag a fault-raising kernel of kind `op` gets: `op` and the API op now running. */
  int faultTag(FaultOp op) const { return (hostOp_ << kFaultOpBits) | op; }
  // Last-block tickets: `count` counters, all zero between kernels.
  unsigned* tickets(size_t count);
  double* partials(size_t count) { return static_cast<double*>(scratch(kPartials, count * sizeof(double))); }
  // Records a fault when x (count elements) holds NaN or ±Inf, naming the lowest such index.
  void checkFinite(DType dt, int64_t count, const void* x, int op);

 private:
  enum GraphKind : int { kElmanForward, kElmanBackward, kLstmForward, kLstmBackward };
  struct Graph {
    int kind = kElmanForward;
    DType dt = DType::F32;
    Activation act = Activation::Tanh;
    int64_t T = 0, B = 0, n = 0;
    double clip = 0;  // baked into the backward graph's clip launches
    const void* p[6] = {};  // the pointers baked into the graph
    cudaGraphExec_t exec = nullptr;
    size_t nodes = 0;
    uint64_t lastUse = 0;
  };
  // A recurrence's entry checks: a float dtype, then false when there is nothing to do;
  // binds the device otherwise.
  bool startRecurrence(const char* op, DType dt, int64_t T, int64_t B, int64_t n);
  // Runs `steps` (the Backend's generic step loop, launching on this stream) directly, or as
  // the graph cached under these shapes, scalars and pointers.
  template <typename Steps>
  void replay(GraphKind kind, DType dt, Activation act, int64_t T, int64_t B, int64_t n, double clip,
              std::initializer_list<const void*> pointers, Steps&& steps);
  // Runs `steps` as a graph cached under `key`, capturing (or updating) it when the key is new.
  // Whether the steps ran as a graph (false: they ran directly, capture being unsupported).
  template <typename Steps>
  bool runAsGraph(const Graph& key, Steps&& steps);
  void releaseGraphs() noexcept;
  // Captures what `work` launches on the stream into `graph`, frees anywhere in the process held
  // back meanwhile (CaptureGuard). false, with nothing run and no graph, when the capture could
  // not begin or end, or something in `work` could not be captured (it synchronised, say); any
  // other error of `work` is thrown.
  bool capture(const std::function<void()>& work, cudaGraph_t& graph);
  // A whole call run through runCall: its key, the buffers' generations when it last ran or was
  // captured, and its graph once captured (null before, or when it could not be).
  struct CallGraph {
    Fused op = Fused::ElmanStep;
    std::vector<uint64_t> key;
    uint64_t generation = 0, scratchGeneration = 0;
    cudaGraphExec_t exec = nullptr;
    size_t nodes = 0;
    uint64_t lastUse = 0;
    bool uncapturable = false;  // a capture failed: this call runs directly from now on
  };
  // Captures `body` into g's graph; false, having run nothing, when it cannot be captured (then
  // g is marked uncapturable) or a buffer moved meanwhile.
  bool captureCall(CallGraph& g, const std::function<uint64_t()>& generation, const std::function<void()>& body);
  // The Elman recurrences as one kernel per pass (persistent.cu): false, having launched
  // nothing, where they cannot run (off, or too little shared memory).
  struct PersistentPlan {
    int R = 0;  // sequences per block
    int S = 0;  // threads per hidden unit's dot product
    int blocks = 0, threads = 0;
    size_t sharedBytes = 0;
  };
  bool persistentPlan(DType dt, int64_t T, int64_t B, int64_t n, PersistentPlan& plan);
  template <typename Kernel>
  void launchPersistent(Kernel kernel, const PersistentPlan& plan, void** args, const char* name);
  bool elmanForwardPersistent(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* Wt,
                              const void* bias, void* A, void* H);
  bool elmanBackwardPersistent(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* W,
                               const void* H, void* dH, void* dA, double clip);
  void release() noexcept;  // everything the constructor created (also after it failed part-way)
  void raisePendingFault();
  void* internalAllocate(size_t bytes);
  void internalRelease(void* p, size_t bytes) noexcept;

  struct Counters {
    std::atomic<int64_t> kernels{0}, libraryCalls{0}, graphs{0}, graphNodes{0}, graphsBuilt{0}, graphsUpdated{0};
  };

  int device_;
  std::string deviceName_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cusolverDnHandle_t solver_ = nullptr;
  gesvdjInfo_t gesvdj_ = nullptr;
  void* blasWorkspace_ = nullptr;
  size_t blasWorkspaceBytes_ = 0;
  DeviceFault* fault_ = nullptr;      // device
  DeviceFault* hostFault_ = nullptr;  // pinned host mirror
  int hostOp_ = 0;                     // index in hostOps_ of the API op now running
  std::vector<std::string> hostOps_{std::string()};  // the API op names seen, interned
  struct Buffer {
    void* ptr = nullptr;
    size_t bytes = 0;
  };
  Buffer scratch_[kScratchSlots];
  std::vector<Graph> graphs_;
  std::vector<CallGraph> callGraphs_;
  uint64_t graphClock_ = 0;
  uint64_t scratchGeneration_ = 0;  // bumped whenever a scratch buffer moves (a call graph bakes them in)
  bool graphsEnabled_ = true;
  bool callGraphsByDefault_ = false;  // ORTHORNN_CUDA_STEP_GRAPHS=1
  bool persistentEnabled_ = true;  // ORTHORNN_CUDA_PERSISTENT not 0
  int persistentSplit_ = 0;        // ORTHORNN_CUDA_PERSISTENT_SPLIT; 0: automatic
  int multiprocessors_ = 1;
  size_t sharedPerBlockOptin_ = 48 * 1024, sharedPerMultiprocessor_ = 48 * 1024;
  bool capturing_ = false;
  Counters counters_;
};

}  // namespace cuda
}  // namespace orthornn
