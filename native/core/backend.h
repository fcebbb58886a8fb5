// The one interface every backend implements. Arguments are raw row-major
// buffers owned by the backend's device; callers (native/napi, later the model code) check
// shapes before calling, and backends re-check what would otherwise read out of bounds.
// Every method runs on its context's worker thread and throws orthornn::Error on failure.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include "dtype.h"
#include "elementwise.h"
#include "error.h"
#include "ops.gen.h"

namespace orthornn {

// A product folded into a recurrence: x (row-major, rows × width) times a matrix w. See
// Backend::elmanForwardRecurrence and elmanBackwardRecurrence for which rows and which w.
struct Projection {
  const void* x = nullptr;  // null: no projection
  const void* w = nullptr;
  int64_t width = 0;
};

// The output layer's logits a forward recurrence may also compute, without their bias:
// Y = H[from + 1 … T] · W_outᵀ, (T − from)·B × k, row-major.
struct Logits {
  const void* W_out = nullptr;  // k × n; null: none
  int64_t k = 0;
  int64_t from = 0;  // the first scored step
  void* Y = nullptr;
};

// What Backend::elmanBackwardRecurrence also computes, each where not null, from blocks it
// has in cache anyway.
struct BackwardSums {
  void* hiddenNorms = nullptr;  // T: ‖dH[t]‖
  void* db = nullptr;           // n: Σ_t Σ_b dA[t]
  void* dW_in = nullptr;        // n × d: dAᵀ X over all T·B rows (needs the input projection's X)
  void* dW_out = nullptr;       // k × n: dYᵀ H[givenFrom + 1 … T] (needs the output projection's dY)
};

enum class Reduction : int { Sum = 0, SumSquares = 1, MaxAbs = 2, CountNonFinite = 3 };

// Work a backend has submitted to its device since it was created, for benchmarks (launches
// per training step): kernels and copies launched one by one, library calls (cuBLAS, cuSOLVER;
// each may run several kernels), CUDA graph launches with the nodes they ran, graphs captured and
// instantiated (new shapes), and instantiated graphs updated in place (the same shapes on other
// buffers: captured again, not instantiated). All zero on the CPU.
struct LaunchCounters {
  int64_t kernels = 0;
  int64_t libraryCalls = 0;
  int64_t graphs = 0;
  int64_t graphNodes = 0;
  int64_t graphsBuilt = 0;
  int64_t graphsUpdated = 0;
};

// The fused operations with more than one implementation ("variants"). Each backend names its
// variants of each (variants()); the first is always the reference composite, the op-by-op loop
// over the Backend's primitives, which every other variant is tested against. A fast variant
// runs where its own rule applies (the shape fits its cache or kernels, the library is there);
// a Context may force one variant per op (the reference, or one fast variant and the reference
// where it does not apply), and lastVariant() says which ran. CayleyFactor is the LU
// factorisation of the Cayley system (luFactorNoPivot): its reference is the pivoted one.
// ElmanStep is a whole elmanLossAndGradients call (forward, loss, BPTT, every gradient), and
// OpSequence a recorded sequence of ops queued as one (Context.sequence: a training step's
// updates): their references run the work op by op; see Backend::runCall.
enum class Fused : int { ElmanRecurrence = 0, LstmRecurrence = 1, CayleyFrameSolve = 2, CayleyFactor = 3, ElmanStep = 4, OpSequence = 5 };
constexpr int kFusedCount = 6;
const char* fusedName(Fused op);

class Backend {
 public:
  virtual ~Backend() = default;

  // The variants of `op` on this backend, the reference first.
  virtual std::vector<std::string> variants(Fused op) const;
  // Restricts `op` to `variant` (its name, or "" for the automatic choice); throws Range for a
  // name this backend does not have. Work already queued may run under either choice.
  void forceVariant(Fused op, const std::string& variant);
  // The forced variant of `op` ("" when none) and the one that ran last ("" before the first run).
  std::string forcedVariant(Fused op) const;
  std::string lastVariant(Fused op) const;
  // Whether variant index `v` of `op` may run, and the record that it ran (backends call these
  // where they choose; safe from the worker thread while JS reads lastVariant).
  bool mayUse(Fused op, int v) const {
    const int forced = forced_[int(op)].load(std::memory_order_relaxed);
    return forced < 0 || forced == v;
  }
  void ran(Fused op, int v) { last_[int(op)].store(v, std::memory_order_relaxed); }
  // Whether `op` is forced to variant index `v` (a variant a backend takes only when asked).
  bool forcedTo(Fused op, int v) const { return forced_[int(op)].load(std::memory_order_relaxed) == v; }

  // A whole call of fused op `op` (ElmanStep, OpSequence): `body` queues all of its work on
  // this backend. The reference (this default) runs it directly. A backend may instead replay
  // it: CUDA captures it once into a graph per `key` and launches that graph in its place. So
  // `key` must determine every pointer, shape and scalar the body's launches take, and
  // `generation()` (called on the worker thread) must change whenever a buffer the body takes
  // from its callers' workspaces may have moved. When replaysCalls(op), a caller whose inputs
  // move from call to call first copies them into buffers of its own.
  virtual bool replaysCalls(Fused /*op*/) const { return false; }
  virtual void runCall(Fused op, const std::vector<uint64_t>& /*key*/, const std::function<uint64_t()>& /*generation*/,
                       const std::function<void()>& body) {
    body();
    ran(op, 0);
  }

  virtual const char* name() const = 0;        // "cpu", "cuda"
  virtual std::string device() const = 0;      // "cpu", "cuda:0"
  // Whether this backend runs `op` on `dtype`: native/ops.json's answer for this backend.
  bool supports(Op op, DType dtype) const;
  // Safe to call from any thread.
  virtual LaunchCounters launchCounters() const { return {}; }
  // Called on the context's worker thread: at most `threads` threads for this context's loops
  // and recurrences from now on (the CPU's; a GPU backend has nothing to limit).
  virtual void limitThreads(int /*threads*/) {}

  // Memory. Uploads and downloads are complete when the call returns.
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* ptr, size_t bytes) noexcept = 0;
  virtual void upload(void* dst, const void* hostSrc, size_t bytes) = 0;
  virtual void download(void* hostDst, const void* src, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  virtual void synchronize() = 0;
  /** The context is about to run the queued op `op` (its API name): for errors found later. */
  virtual void beginOp(const std::string& /*op*/) {}

  // C[m×n] = α op(A) op(B) + β C, row-major with leading dimensions.
  virtual void gemm(DType dt, bool transA, bool transB, int64_t m, int64_t n, int64_t k, double alpha,
                    const void* A, int64_t lda, const void* B, int64_t ldb, double beta, void* C,
                    int64_t ldc) = 0;
  // The same over `batch` matrices spaced by the strides (in elements; a stride of 0 shares one matrix).
  virtual void gemmStridedBatched(DType dt, bool transA, bool transB, int64_t m, int64_t n, int64_t k,
                                  double alpha, const void* A, int64_t lda, int64_t strideA, const void* B,
                                  int64_t ldb, int64_t strideB, double beta, void* C, int64_t ldc,
                                  int64_t strideC, int64_t batch) = 0;

  // In-place LU with partial pivoting of an n×n row-major matrix A, stored as LAPACK's
  // factorisation of the column-major view of the buffer, Aᵀ = P L U (no transposes needed);
  // pivots are LAPACK's 1-based row interchanges. A singular matrix raises ErrorCode::Numeric.
  virtual void luFactor(DType dt, int64_t n, void* A, int32_t* pivots) = 0;
  // The same factorisation, skipping the search for pivots where a backend can tell that
  // partial pivoting would make no interchanges (then pivots is the identity); the Cayley
  // system I + η/2 A usually is such a matrix (the fused op CayleyFactor). By default, luFactor
  // (its reference variant).
  virtual void luFactorNoPivot(DType dt, int64_t n, void* A, int32_t* pivots) {
    luFactor(dt, n, A, pivots);
    ran(Fused::CayleyFactor, 0);
  }
  // Solves A X = B in place of B (n×nrhs) from luFactor's output.
  virtual void luSolve(DType dt, int64_t n, int64_t nrhs, const void* LU, const int32_t* pivots, void* B) = 0;
  // Solves X A = B in place of B (nrhs×n) from luFactor's output.
  virtual void luSolveRight(DType dt, int64_t n, int64_t nrhs, const void* LU, const int32_t* pivots, void* B) = 0;
  // M ← 2 X − M with X S = M, S = I + alpha (F − Fᵀ) the n×n Cayley system, built,
  // factorised and solved in one where a backend can (the Cayley step in the frame form);
  // returns false, having changed nothing, where it cannot (then the caller builds S with
  // cayleySystem, factorises it and solves a copy of M with luSolveRight).
  virtual bool cayleyFrameSolve(DType /*dt*/, int64_t /*n*/, double /*alpha*/, const void* /*F*/, void* /*M*/) {
    return false;
  }
  // Thin QR of A (m×n), k = min(m, n): Q m×k with orthonormal columns, R k×n upper
  // triangular with diag(R) ≥ 0 (the sign fix that makes the factorisation unique).
  virtual void qr(DType dt, int64_t m, int64_t n, const void* A, void* Q, void* R) = 0;
  // Thin SVD A = U diag(S) Vt: U m×k, S k (descending), Vt k×n.
  virtual void svd(DType dt, int64_t m, int64_t n, const void* A, void* U, void* S, void* Vt) = 0;

  virtual void fill(DType dt, int64_t count, double value, void* x) = 0;
  virtual void randomNormal(DType dt, int64_t count, uint64_t seed, double mean, double stddev, void* x) = 0;
  virtual void randomUniform(DType dt, int64_t count, uint64_t seed, double low, double high, void* x) = 0;

  // out = α x + β y (out may alias x or y).
  virtual void axpby(DType dt, int64_t count, double alpha, const void* x, double beta, const void* y,
                     void* out) = 0;
  // out = x ⊙ y.
  virtual void mul(DType dt, int64_t count, const void* x, const void* y, void* out) = 0;
  // out[r, c] = φ(x[r, c] + bias[c]); bias may be null.
  virtual void biasActivation(DType dt, Activation act, int64_t rows, int64_t cols, const void* x,
                              const void* bias, void* out) = 0;
  // out = dy ⊙ φ'(a), with φ' computed from h = φ(a).
  virtual void activationBackward(DType dt, Activation act, int64_t count, const void* dy, const void* h,
                                  void* out) = 0;
  virtual void marginSigmoid(DType dt, int64_t count, double margin, const void* p, void* s) = 0;
  // dp = ds ⊙ ds/dp.
  virtual void marginSigmoidBackward(DType dt, int64_t count, double margin, const void* p, const void* ds,
                                     void* dp) = 0;

  // out[r, c] = x[r, c] · s[c]   (U diag(s); out may alias x).
  virtual void scaleColumns(DType dt, int64_t rows, int64_t cols, const void* x, const void* s, void* out) = 0;
  // out[c] = Σ_r x[r, c] · y[r, c]   (diag(Xᵀ Y), e.g. ∂L/∂s = diag(Uᵀ G V)).
  virtual void columnDots(DType dt, int64_t rows, int64_t cols, const void* x, const void* y, void* out) = 0;
  // x[i, i] += value for an n×n matrix.
  virtual void addDiagonal(DType dt, int64_t n, double value, void* x) = 0;
  // out (cols × rows) = xᵀ for a rows × cols x; out must not overlap x.
  virtual void transpose(DType dt, int64_t rows, int64_t cols, const void* x, void* out) = 0;
  // out = I + alpha (x − xᵀ) for an n×n matrix (the Cayley system); out must not overlap x.
  virtual void cayleySystem(DType dt, int64_t n, double alpha, const void* x, void* out) = 0;

  // One LSTM step for `rows` sequences of n units (PyTorch gate order i, f, g, o), fused:
  // gates (rows × 4n) holds the pre-activations without biases on entry and the activated
  // gates on return; biasIh and biasHh (4n each, either may be null) are added first;
  // c = f ⊙ cPrev + i ⊙ g and h = o ⊙ tanh(c) are written (rows × n each).
  virtual void lstmCellForward(DType dt, int64_t rows, int64_t n, void* gates, const void* biasIh,
                               const void* biasHh, const void* cPrev, void* c, void* h) = 0;
  // Its backward: gates (rows × 4n) holds the activated gates on entry and ∂L/∂(gate
  // pre-activations) on return; dh (rows × n) is ∂L/∂h_t; dc (rows × n) holds on entry
  // ∂L/∂c_t through the next step only, on return ∂L/∂c_{t−1} (elementwise.h's
  // lstmCellBackwardAt).
  virtual void lstmCellBackward(DType dt, int64_t rows, int64_t n, void* gates, const void* cPrev, const void* c,
                                const void* dh, void* dc) = 0;

  // Optimiser steps over `count` parameters in place (elementwise.h has the rules). `state1`
  // is RMSprop's mean square, Adam's m, or SGD's momentum buffer; `state2` is Adam's v.
  virtual void rmspropStep(DType dt, int64_t count, double lr, double rho, double eps, bool epsInside, double decay,
                           void* param, const void* grad, void* meanSquare) = 0;
  virtual void adamStep(DType dt, int64_t count, double lr, double beta1, double beta2, double eps, double decay,
                        int64_t step, void* param, const void* grad, void* m, void* v) = 0;
  virtual void sgdStep(DType dt, int64_t count, double lr, double momentum, double decay, bool first, void* param,
                       const void* grad, void* buffer) = 0;

  // One value of dtype dt written to out.
  virtual void reduce(DType dt, Reduction kind, int64_t count, const void* x, void* out) = 0;
  // out[c] = Σ_r x[r, c] + β out[c]  (bias gradients over all T·B rows).
  virtual void columnSum(DType dt, int64_t rows, int64_t cols, const void* x, double beta, void* out) = 0;
  // out[g] = ‖x[g, :]‖₂  (per-step hidden gradient norms over a T × (B·n) view).
  virtual void groupNorms(DType dt, int64_t groups, int64_t groupSize, const void* x, void* out) = 0;

  // The Elman recurrence (docs/math.md (M1)–(M2), (M12)–(M15)), all T steps in one call so that a backend can keep
  // W hot and its threads busy across steps. Row-major, B × n blocks per step.
  // Forward: for t = 0..T−1: A[t] += H[t] · Wt; H[t+1] = φ(A[t] + bias). H[0] is the initial
  // state; Wt is Wᵀ. A[t] starts as the input projection: X[t] · W_inᵀ with input = {X (T·B ×
  // d), W_in (n × d), d} (a backend may compute it step by step), or, with input.x null, A's
  // contents on entry. `logits` names the output logits to compute as well (if any).
  virtual void elmanForwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* Wt,
                                      const void* bias, const Projection& input, const Logits& logits, void* A,
                                      void* H);
  // For backends that do not compute them inside the steps: the input projection into A
  // before a forward recurrence, and the logits after it, each as one product.
  void inputProjection(DType dt, int64_t T, int64_t B, int64_t n, const Projection& input, void* A);
  void forwardLogits(DType dt, int64_t T, int64_t B, int64_t n, const void* H, const Logits& logits);
  // Backward: for t = T−1..0: dH[t] += dA[t+1] · W (t + 1 < T); dA[t] = dH[t] ⊙ φ'(H[t+1]).
  // dH[t] starts as the output contribution: for t ≥ givenFrom, dY[t − givenFrom] · W_out with
  // output = {dY ((T − givenFrom)·B × k), W_out (k × n), k}, or, with output.x null, dH[t]'s
  // contents on entry; for t < givenFrom, zero (only the last step scored: T − 1 spares
  // filling T − 1 blocks with zeros; 0 when every block is given). dH holds the total
  // ∂L/∂h_t on return. `sums` names what else to compute; `input` is the forward's (for
  // dW_in). clip > 0 clips every dA[t] element-wise to [−clip, clip] before it propagates
  // (the authors' clipping of the recurrent pre-activation gradient); clip ≤ 0 does nothing.
  virtual void elmanBackwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* W,
                                       const void* H, const Projection& input, const Projection& output, void* dH,
                                       void* dA, const BackwardSums& sums, int64_t givenFrom, double clip);
  // For backends that do not compute them inside the steps: dH's starting blocks before a
  // backward recurrence (zero before givenFrom, dY W_out from it), and its BackwardSums after
  // it (from its dH and dA), op by op.
  void outputContribution(DType dt, int64_t T, int64_t B, int64_t n, const Projection& output, void* dH,
                          int64_t givenFrom);
  void backwardSums(DType dt, int64_t T, int64_t B, int64_t n, const void* H, const Projection& input,
                    const Projection& output, const void* dH, const void* dA, const BackwardSums& sums,
                    int64_t givenFrom);
  // x = clipGradient(x, c) element-wise, in place.
  virtual void clipElements(DType dt, int64_t count, double c, void* x);

  // The LSTM recurrence (PyTorch gate order), all T steps in one call like the Elman one.
  // Forward: for t = 0..T−1: Z[t] += H[t] · W_hhᵀ (Z: T × B × 4n holds X W_ihᵀ on entry);
  // then lstmCellForward on Z[t] with the biases and C[t], writing C[t+1] and H[t+1].
  virtual void lstmForwardRecurrence(DType dt, int64_t T, int64_t B, int64_t n, const void* Whh, const void* biasIh,
                                     const void* biasHh, void* Z, void* H, void* C);
  // Backward: dC (B × n) is zero on entry (nothing reaches the last cell state from later);
  // for t = T−1..0: dH[t] += dZ[t+1] · W_hh (t + 1 < T), then lstmCellBackward turns Z[t]
  // (activated gates) into dZ[t] and carries dC one step back. On return dC is ∂L/∂C[0], and
  // the sums asked for are written (lstmBackwardSums; a backend may fold them into the steps).
  struct LstmSums {
    const void* H = nullptr;  // the states entering each step, T × B × n (with dWhh)
    void* dWhh = nullptr;     // Σ_t dZ[t]ᵀ H[t], 4n × n
    void* db = nullptr;       // Σ_t Σ_b dZ[t][b], 4n
  };
  virtual void lstmBackwardRecurrence(DType dt, int64_t T, int64_t B, int64_t n, const void* Whh, const void* C,
                                      void* Z, void* dH, void* dC, const LstmSums& sums);
  // The sums after the steps, as one GEMM over all T·B rows and one column sum.
  void lstmBackwardSums(DType dt, int64_t T, int64_t B, int64_t n, const void* dZ, const LstmSums& sums);

  // loss = Σ_r w_r · (−log softmax(logits_r)[target_r]); dlogits_r = w_r (softmax(logits_r) − e_target).
  // weights null means w ≡ 1; dlogits null skips the gradient. Targets outside [0, classes)
  // raise ErrorCode::Range.
  virtual void softmaxCrossEntropy(DType dt, int64_t rows, int64_t classes, const void* logits,
                                   const int32_t* targets, const void* weights, void* loss, void* dlogits) = 0;
  // loss = Σ_r w_r Σ_c (y − t)²; dy = 2 w_r (y − t).
  virtual void meanSquaredError(DType dt, int64_t rows, int64_t cols, const void* y, const void* target,
                                const void* weights, void* loss, void* dy) = 0;
 private:
  std::atomic<int> forced_[kFusedCount] = {-1, -1, -1, -1, -1, -1};
  std::atomic<int> last_[kFusedCount] = {-1, -1, -1, -1, -1, -1};
};

struct BackendInfo {
  std::string name;
  bool compiled = false;
  bool available = false;
  std::string device;  // "cpu", a GPU's name, or "" when unavailable
  std::string reason;  // why unavailable ("" when available)
  int deviceCount = 0;
};

std::vector<BackendInfo> listBackends();
// Throws ErrorCode::Device when the backend is not compiled or not available.
std::shared_ptr<Backend> createBackend(const std::string& name, int deviceIndex);

// Implemented in native/cpu and native/cuda.
std::shared_ptr<Backend> createCpuBackend();
BackendInfo cpuBackendInfo();
#ifdef ORTHORNN_WITH_CUDA
std::shared_ptr<Backend> createCudaBackend(int deviceIndex);
BackendInfo cudaBackendInfo();
#endif

}  // namespace orthornn
