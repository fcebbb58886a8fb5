// CUDA backend, part 4: the Elman and LSTM recurrences. (The Elman one runs as one persistent
// kernel per pass where it can, persistent.cu; this is its fallback, and the LSTM's way.)
// Per step the forward pass is one cuBLAS product
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
constexpr size_t kMaxGraphs = 8;
// Whole-call graphs: one per model trained on the context (a group's members may share one),
// each a few dozen nodes and no memory of its own.
constexpr size_t kMaxCallGraphs = 64;
}  // namespace

void CudaBackend::releaseGraphs() noexcept {
  for (Graph& g : graphs_)
    if (g.exec) cudaGraphExecDestroy(g.exec);
  graphs_.clear();
  for (CallGraph& g : callGraphs_)
    if (g.exec) cudaGraphExecDestroy(g.exec);
  callGraphs_.clear();
}

// --- whole calls as graphs (Backend::runCall) ---------------------------------------------
// A training step's elmanLossAndGradients queues about 30 launches (W, the projections, the
// persistent recurrences, the loss, the gradient products), and its updates, one recorded
// sequence of ops (Context.sequence), a dozen more (the optimisers, the Cayley solves);
// replayed as one graph each they cost the host one launch. A call's first run with a key is direct, so that every buffer it takes
// exists; the next run with the same key and the same buffers is captured and launched, and
// later runs launch the graph. Buffers that moved in between (the caller's workspace grew for
// a larger batch, or a scratch buffer here did) make the next run direct again, and the one
// after that captures anew.

bool CudaBackend::replaysCalls(Fused op) const {
  return (op == Fused::ElmanStep || op == Fused::OpSequence) && graphsEnabled_ && (forcedTo(op, kGraph) || (callGraphsByDefault_ && mayUse(op, kGraph)));
}

bool CudaBackend::capture(const std::function<void()>& work, cudaGraph_t& graph) {
  graph = nullptr;
  CaptureGuard guard;  // frees anywhere in the process wait until the capture has ended
  if (cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  capturing_ = true;
  try {
    work();
  } catch (...) {
    capturing_ = false;
    cudaGraph_t broken = nullptr;
    const cudaError_t ended = cudaStreamEndCapture(stream_, &broken);
    if (broken) cudaGraphDestroy(broken);
    cudaGetLastError();
    // Something in `work` cannot be captured (a library call that synchronises, say): nothing
    // of it ran. Any other error would repeat when it runs directly: raise it.
    if (ended != cudaErrorStreamCaptureInvalidated && ended != cudaErrorStreamCaptureUnsupported) throw;
    return false;
  }
  capturing_ = false;
  if (cudaStreamEndCapture(stream_, &graph) != cudaSuccess) {
    cudaGetLastError();
    if (graph) cudaGraphDestroy(graph);
    graph = nullptr;
    return false;
  }
  return true;
}

bool CudaBackend::captureCall(CallGraph& g, const std::function<uint64_t()>& generation, const std::function<void()>& body) {
  cudaGraph_t graph = nullptr;
  if (!capture(body, graph)) {
    g.uncapturable = true;
    return false;
  }
  // A buffer that moved during the capture (nothing should, after a direct run with this key)
  // leaves the graph with addresses of two ages: drop it, and capture again another time.
  if (generation() != g.generation || scratchGeneration_ != g.scratchGeneration) {
    cudaGraphDestroy(graph);
    g.generation = generation();
    g.scratchGeneration = scratchGeneration_;
    return false;
  }
  cudaGraphExec_t exec = nullptr;
  size_t nodes = 0;
  const bool made = cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess &&
                    cudaGraphInstantiateWithFlags(&exec, graph, 0) == cudaSuccess;
  cudaGraphDestroy(graph);
  cudaGetLastError();
  if (!made) {
    g.uncapturable = true;
    return false;
  }
  g.exec = exec;
  g.nodes = nodes;
  counters_.graphsBuilt.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void CudaBackend::runCall(Fused op, const std::vector<uint64_t>& key, const std::function<uint64_t()>& generation,
                          const std::function<void()>& body) {
  auto direct = [&] {
    body();
    ran(op, kReference);
  };
  if (!replaysCalls(op)) return direct();
  bind();
  auto found = std::find_if(callGraphs_.begin(), callGraphs_.end(),
                            [&](const CallGraph& g) { return g.op == op && g.key == key; });
  if (found == callGraphs_.end()) {
    if (callGraphs_.size() >= kMaxCallGraphs) {
      auto oldest = std::min_element(callGraphs_.begin(), callGraphs_.end(),
                                     [](const CallGraph& a, const CallGraph& b) { return a.lastUse < b.lastUse; });
      if (oldest->exec) cudaGraphExecDestroy(oldest->exec);
      callGraphs_.erase(oldest);
    }
    direct();
    CallGraph g;
    g.op = op;
    g.key = key;
    g.generation = generation();  // after the run: the buffers it allocated are in place
    g.scratchGeneration = scratchGeneration_;
    g.lastUse = ++graphClock_;
    callGraphs_.push_back(std::move(g));
    return;
  }
  CallGraph& g = *found;
  g.lastUse = ++graphClock_;
  if (g.uncapturable) return direct();
  if (g.generation != generation() || g.scratchGeneration != scratchGeneration_) {
    if (g.exec) cudaGraphExecDestroy(g.exec);
    g.exec = nullptr;
    direct();
    g.generation = generation();
    g.scratchGeneration = scratchGeneration_;
    return;
  }
  if (!g.exec && !captureCall(g, generation, body)) return direct();
  ORTHORNN_CUDA(cudaGraphLaunch(g.exec, stream_));
  counters_.graphs.fetch_add(1, std::memory_order_relaxed);
  counters_.graphNodes.fetch_add(int64_t(g.nodes), std::memory_order_relaxed);
  ran(op, kGraph);
}

template <typename Steps>
bool CudaBackend::runAsGraph(const Graph& key, Steps&& steps) {
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
    if (!capture([&] { steps(); }, graph)) {
      // Capture unsupported here: nothing of the steps ran. Run them directly, and step by
      // step from now on.
      graphsEnabled_ = false;
      steps();
      return false;
    }
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
    (updated ? counters_.graphsUpdated : counters_.graphsBuilt).fetch_add(1, std::memory_order_relaxed);
  }
  hit->lastUse = ++graphClock_;
  ORTHORNN_CUDA(cudaGraphLaunch(hit->exec, stream_));
  counters_.graphs.fetch_add(1, std::memory_order_relaxed);
  counters_.graphNodes.fetch_add(int64_t(hit->nodes), std::memory_order_relaxed);
  return true;
}

bool CudaBackend::startRecurrence(const char* op, DType dt, int64_t T, int64_t B, int64_t n) {
  require(isFloat(dt), ErrorCode::Type, std::string(op) + ": expected float32 or float64, got " + dtypeName(dt));
  if (T <= 0 || B <= 0 || n <= 0) return false;
  bind();
  return true;
}

template <typename Steps>
void CudaBackend::replay(GraphKind kind, DType dt, Activation act, int64_t T, int64_t B, int64_t n, double clip,
                         std::initializer_list<const void*> pointers, Steps&& steps) {
  const Fused op = kind == kLstmForward || kind == kLstmBackward ? Fused::LstmRecurrence : Fused::ElmanRecurrence;
  if (!graphsEnabled_ || !mayUse(op, kGraph)) {
    steps();
    ran(op, kReference);
    return;
  }
  if (capturing_) {  // a whole call is being captured (runCall): the steps go into its graph
    steps();
    ran(op, kGraph);
    return;
  }
  Graph key;
  key.kind = kind;
  key.dt = dt;
  key.act = act;
  key.T = T;
  key.B = B;
  key.n = n;
  key.clip = clip;
  std::copy(pointers.begin(), pointers.end(), std::begin(key.p));
  ran(op, runAsGraph(key, steps) ? kGraph : kReference);
}

// The projections and the logits are one product each, before or after the step loop,
// outside the graph.
void CudaBackend::elmanForwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* Wt,
                                         const void* bias, const Projection& input, const Logits& logits, void* A,
                                         void* H) {
  if (!startRecurrence("elmanForwardRecurrence", dt, T, B, n)) return;
  inputProjection(dt, T, B, n, input, A);
  if (elmanForwardPersistent(dt, act, T, B, n, Wt, bias, A, H))
    ran(Fused::ElmanRecurrence, kPersistent);
  else
    replay(kElmanForward, dt, act, T, B, n, 0, {Wt, bias, A, H},
           [&] { Backend::elmanForwardRecurrence(dt, act, T, B, n, Wt, bias, Projection{}, Logits{}, A, H); });
  forwardLogits(dt, T, B, n, H, logits);
}

void CudaBackend::elmanBackwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* W,
                                          const void* H, const Projection& input, const Projection& output,
                                          void* dH, void* dA, const BackwardSums& sums, int64_t givenFrom,
                                          double clip) {
  if (!startRecurrence("elmanBackwardRecurrence", dt, T, B, n)) return;
  // Blocks not given (only the last step scored) are zero; the others start as dY W_out.
  givenFrom = std::min(givenFrom, T);
  outputContribution(dt, T, B, n, output, dH, givenFrom);
  const double c = clip > 0 ? clip : 0;
  // Only the step loop goes into the graph: the sums below use the reductions' scratch,
  // which may move between calls.
  if (elmanBackwardPersistent(dt, act, T, B, n, W, H, dH, dA, c))
    ran(Fused::ElmanRecurrence, kPersistent);
  else
    replay(kElmanBackward, dt, act, T, B, n, c, {W, H, dH, dA}, [&] {
      Backend::elmanBackwardRecurrence(dt, act, T, B, n, W, H, Projection{}, Projection{}, dH, dA, BackwardSums{}, 0, c);
    });
  backwardSums(dt, T, B, n, H, input, output, dH, dA, sums, givenFrom);
}

// The LSTM recurrence: the same two launches per step (a product and the fused cell), so
// the same graph treatment.
void CudaBackend::lstmForwardRecurrence(DType dt, int64_t T, int64_t B, int64_t n, const void* Whh,
                                        const void* biasIh, const void* biasHh, void* Z, void* H, void* C) {
  if (!startRecurrence("lstmForwardRecurrence", dt, T, B, n)) return;
  replay(kLstmForward, dt, Activation::Tanh, T, B, n, 0, {Whh, biasIh, biasHh, Z, H, C},
         [&] { Backend::lstmForwardRecurrence(dt, T, B, n, Whh, biasIh, biasHh, Z, H, C); });
}

void CudaBackend::lstmBackwardRecurrence(DType dt, int64_t T, int64_t B, int64_t n, const void* Whh, const void* C,
                                         void* Z, void* dH, void* dC, const LstmSums& sums) {
  if (startRecurrence("lstmBackwardRecurrence", dt, T, B, n))
    replay(kLstmBackward, dt, Activation::Tanh, T, B, n, 0, {Whh, C, Z, dH, dC},
           [&] { Backend::lstmBackwardRecurrence(dt, T, B, n, Whh, C, Z, dH, dC, LstmSums{}); });
  // Outside the captured steps: a graph is keyed by the steps' pointers only.
  lstmBackwardSums(dt, T, B, n, Z, sums);
}

}  // namespace cuda
}  // namespace orthornn
