// CUDA backend, part 4: the Elman and LSTM recurrences. Per step the forward pass is one cuBLAS product
// (A[t] += H[t] Wᵀ) and one fused bias+activation kernel; the backward pass one product
// (dH[t] += dA[t+1] W) and one activation-backward kernel. Small per-step products are
// launch-bound, so the T steps are captured once into a CUDA graph and replayed with a single
// launch while the shapes and buffers stay the same (a training loop re-uses its workspace,
// so they do). A new buffer address with the same shapes updates the instantiated graph in
// place; anything else captures a new one. ORTHORNN_CUDA_GRAPHS=0 launches step by step.
#include <algorithm>

#include "cuda_backend.cuh"

namespace orthornn {
namespace cuda {
namespace {
char* at(void* base, int64_t elements, DType dt) { return static_cast<char*>(base) + elements * int64_t(dtypeSize(dt)); }
const char* at(const void* base, int64_t elements, DType dt) {
  return static_cast<const char*>(base) + elements * int64_t(dtypeSize(dt));
}
constexpr size_t kMaxGraphs = 8;
}  // namespace

void CudaBackend::forwardSteps(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* Wt,
                               const void* bias, void* A, void* H) {
  for (int64_t t = 0; t < T; ++t) {
    char* At = at(A, t * B * n, dt);
    gemm(dt, false, false, B, n, n, 1.0, at(H, t * B * n, dt), n, Wt, n, 1.0, At, n);
    biasActivation(dt, act, B, n, At, bias, at(H, (t + 1) * B * n, dt));
  }
}

void CudaBackend::backwardSteps(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* W, const void* H,
                                void* dH, void* dA, double clip) {
  for (int64_t t = T - 1; t >= 0; --t) {
    char* dHt = at(dH, t * B * n, dt);
    if (t + 1 < T) gemm(dt, false, false, B, n, n, 1.0, at(dA, (t + 1) * B * n, dt), n, W, n, 1.0, dHt, n);
    activationBackward(dt, act, B * n, dHt, at(H, (t + 1) * B * n, dt), at(dA, t * B * n, dt));
    if (clip > 0) clipElements(dt, B * n, clip, at(dA, t * B * n, dt));
  }
}

void CudaBackend::releaseGraphs() noexcept {
  for (Graph& g : graphs_)
    if (g.exec) cudaGraphExecDestroy(g.exec);
  graphs_.clear();
}

template <typename Steps>
void CudaBackend::runAsGraph(const Graph& key, Steps&& steps) {
  auto sameShape = [&](const Graph& g) {
    return g.kind == key.kind && g.dt == key.dt && g.act == key.act && g.T == key.T && g.B == key.B && g.n == key.n &&
           g.clip == key.clip;
  };
  auto samePointers = [&](const Graph& g) { return std::equal(std::begin(g.p), std::end(g.p), std::begin(key.p)); };
  Graph* hit = nullptr;
  Graph* similar = nullptr;
  for (Graph& g : graphs_) {
    if (!sameShape(g)) continue;
    if (samePointers(g)) {
      hit = &g;
      break;
    }
    similar = &g;
  }
  if (!hit) {
    // Capture this thread's launches on the stream; nothing may allocate meanwhile (cuBLAS
    // has its own workspace, and the steps use no internal scratch).
    cudaGraph_t graph = nullptr;
    if (cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
      cudaGetLastError();
      graphsEnabled_ = false;  // capture unsupported here: launch step by step from now on
      steps();
      return;
    }
    capturing_ = true;
    try {
      steps();
    } catch (...) {
      capturing_ = false;
      cudaGraph_t broken = nullptr;
      cudaStreamEndCapture(stream_, &broken);
      if (broken) cudaGraphDestroy(broken);
      cudaGetLastError();
      throw;
    }
    capturing_ = false;
    ORTHORNN_CUDA(cudaStreamEndCapture(stream_, &graph));
    size_t nodes = 0;
    cudaError_t status = cudaGraphGetNodes(graph, nullptr, &nodes);
    bool updated = false;
    if (status == cudaSuccess && similar) {
      // Same topology, other addresses: patch the parameters of the instantiated graph.
#if CUDART_VERSION >= 12000
      cudaGraphExecUpdateResultInfo result;
      updated = cudaGraphExecUpdate(similar->exec, graph, &result) == cudaSuccess;
#else
      cudaGraphNode_t errorNode = nullptr;
      cudaGraphExecUpdateResult result;
      updated = cudaGraphExecUpdate(similar->exec, graph, &errorNode, &result) == cudaSuccess;
#endif
      cudaGetLastError();
      if (updated) {
        hit = similar;
        std::copy(std::begin(key.p), std::end(key.p), std::begin(hit->p));
        hit->nodes = nodes;
      }
    }
    if (!updated && status == cudaSuccess) {
      cudaGraphExec_t exec = nullptr;
      status = cudaGraphInstantiateWithFlags(&exec, graph, 0);
      if (status == cudaSuccess) {
        if (graphs_.size() >= kMaxGraphs) {
          auto oldest = std::min_element(graphs_.begin(), graphs_.end(),
                                         [](const Graph& a, const Graph& b) { return a.lastUse < b.lastUse; });
          cudaGraphExecDestroy(oldest->exec);
          graphs_.erase(oldest);
        }
        graphs_.push_back(key);
        hit = &graphs_.back();
        hit->exec = exec;
        hit->nodes = nodes;
      }
    }
    cudaGraphDestroy(graph);
    if (status != cudaSuccess) cudaFail(status, "cudaGraphInstantiateWithFlags (recurrence)");
    counters_.graphsBuilt.fetch_add(1, std::memory_order_relaxed);
  }
  hit->lastUse = ++graphClock_;
  ORTHORNN_CUDA(cudaGraphLaunch(hit->exec, stream_));
  counters_.graphs.fetch_add(1, std::memory_order_relaxed);
  counters_.graphNodes.fetch_add(int64_t(hit->nodes), std::memory_order_relaxed);
}

void CudaBackend::elmanForwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* Wt,
                                         const void* bias, void* A, void* H) {
  require(isFloat(dt), ErrorCode::Type, std::string("elmanForwardRecurrence: expected float32 or float64, got ") +
                                            dtypeName(dt));
  if (T <= 0 || B <= 0 || n <= 0) return;
  bind();
  if (!graphsEnabled_) return forwardSteps(dt, act, T, B, n, Wt, bias, A, H);
  Graph key;
  key.kind = kElmanForward;
  key.dt = dt;
  key.act = act;
  key.T = T;
  key.B = B;
  key.n = n;
  const void* p[6] = {Wt, bias, A, H, nullptr, nullptr};
  std::copy(std::begin(p), std::end(p), std::begin(key.p));
  runAsGraph(key, [&] { forwardSteps(dt, act, T, B, n, Wt, bias, A, H); });
}

void CudaBackend::elmanBackwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* W,
                                          const void* H, void* dH, void* dA, void* hiddenNorms, void* db,
                                          int64_t givenFrom, double clip) {
  require(isFloat(dt), ErrorCode::Type, std::string("elmanBackwardRecurrence: expected float32 or float64, got ") +
                                            dtypeName(dt));
  if (T <= 0 || B <= 0 || n <= 0) return;
  bind();
  // Blocks not given (only the last step scored) are zero.
  if (givenFrom > 0) fill(dt, std::min(givenFrom, T) * B * n, 0.0, dH);
  if (!graphsEnabled_) {
    backwardSteps(dt, act, T, B, n, W, H, dH, dA, clip);
  } else {
    Graph key;
    key.kind = kElmanBackward;
    key.dt = dt;
    key.act = act;
    key.T = T;
    key.B = B;
    key.n = n;
    key.clip = clip > 0 ? clip : 0;
    const void* p[6] = {W, H, dH, dA, nullptr, nullptr};
    std::copy(std::begin(p), std::end(p), std::begin(key.p));
    runAsGraph(key, [&] { backwardSteps(dt, act, T, B, n, W, H, dH, dA, key.clip); });
  }
  // Outside the graph: these use the reductions' scratch, which may move between calls.
  if (hiddenNorms) groupNorms(dt, T, B * n, dH, hiddenNorms);
  if (db) columnSum(dt, T * B, n, dA, 0.0, db);
}

// The LSTM recurrence: the same two launches per step (a product and the fused cell), so
// the same graph treatment.
void CudaBackend::lstmForwardRecurrence(DType dt, int64_t T, int64_t B, int64_t n, const void* Whh,
                                        const void* biasIh, const void* biasHh, void* Z, void* H, void* C) {
  require(isFloat(dt), ErrorCode::Type, std::string("lstmForwardRecurrence: expected float32 or float64, got ") +
                                            dtypeName(dt));
  if (T <= 0 || B <= 0 || n <= 0) return;
  bind();
  auto steps = [&] { Backend::lstmForwardRecurrence(dt, T, B, n, Whh, biasIh, biasHh, Z, H, C); };
  if (!graphsEnabled_) return steps();
  Graph key;
  key.kind = kLstmForward;
  key.dt = dt;
  key.T = T;
  key.B = B;
  key.n = n;
  const void* p[6] = {Whh, biasIh, biasHh, Z, H, C};
  std::copy(std::begin(p), std::end(p), std::begin(key.p));
  runAsGraph(key, steps);
}

void CudaBackend::lstmBackwardRecurrence(DType dt, int64_t T, int64_t B, int64_t n, const void* Whh, const void* C,
                                         void* Z, void* dH, void* dC) {
  require(isFloat(dt), ErrorCode::Type, std::string("lstmBackwardRecurrence: expected float32 or float64, got ") +
                                            dtypeName(dt));
  if (T <= 0 || B <= 0 || n <= 0) return;
  bind();
  auto steps = [&] { Backend::lstmBackwardRecurrence(dt, T, B, n, Whh, C, Z, dH, dC); };
  if (!graphsEnabled_) return steps();
  Graph key;
  key.kind = kLstmBackward;
  key.dt = dt;
  key.T = T;
  key.B = B;
  key.n = n;
  const void* p[6] = {Whh, C, Z, dH, dC, nullptr};
  std::copy(std::begin(p), std::end(p), std::begin(key.p));
  runAsGraph(key, steps);
}

}  // namespace cuda
}  // namespace orthornn
