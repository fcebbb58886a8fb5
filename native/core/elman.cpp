#include "elman.h"

#include "output_layer.h"
#include "replay_key.h"

#include <string>

namespace orthornn {
namespace {

// Workspace slots.
enum Slot : size_t {
  kW = 10, kS, kUS, kH, kA, kDH, kY, kDY, kG, kGV, kDS, kTmp, kP, kOnes, kWt,
  kStageX, kStageTargets, kStageWeights, kStageInitial,  // a replayed call's inputs (elmanLossAndGradients)
};

void requireTensor(const Tensor& t, const char* name, DType dt, int64_t numel) {
  if (!t.storage) fail(ErrorCode::Range, std::string("missing tensor '") + name + "'");
  if (t.dtype != dt)
    fail(ErrorCode::Type, std::string("'") + name + "' must be " + dtypeName(dt) + ", got " + dtypeName(t.dtype));
  if (t.numel() != numel)
    fail(ErrorCode::Range, std::string("'") + name + "' must have " + std::to_string(numel) + " elements, got shape " +
                               shapeString(t.shape));
}

void optionalTensor(const Tensor& t, const char* name, DType dt, int64_t numel) {
  if (t.storage) requireTensor(t, name, dt, numel);
}

char* at(void* base, int64_t elements, DType dt) { return static_cast<char*>(base) + elements * int64_t(dtypeSize(dt)); }

// H[0] ← the initial state: given (B × n), learned h0 broadcast, or zeros.
void initialHidden(Backend& be, DType dt, int64_t B, int64_t n, const ElmanParameters& params,
                   const std::optional<Tensor>& initial, void* H0) {
  if (initial) {
    be.copy(H0, initial->data(), size_t(B * n) * dtypeSize(dt));
  } else if (params.h0.storage) {
    be.fill(dt, B * n, 0.0, H0);
    be.biasActivation(dt, Activation::Identity, B, n, H0, params.h0.data(), H0);
  } else {
    be.fill(dt, B * n, 0.0, H0);
  }
}

// The recurrence A_t = X_t W_inᵀ + H_{t−1} Wᵀ, H_t = φ(A_t + b), and the logits H_t W_outᵀ of
// the steps from `scoredFrom` on into Y (the backend computes the input projection and the
// logits at once or step by step), with Wᵀ transposed once up front (a plain NN product per
// step runs faster than an NT one).
void forwardRecurrence(Backend& be, const ElmanConfig& cfg, const ElmanParameters& params, DType dt, int64_t T, int64_t B,
                       const void* X, const void* W, void* A, void* H, int64_t scoredFrom, void* Y, Workspace& ws) {
  const int64_t n = cfg.hiddenSize, d = cfg.inputSize;
  void* Wt = ws.get(kWt, size_t(n * n), dt);
  be.transpose(dt, n, n, W, Wt);
  Logits logits;
  logits.W_out = params.W_out.data();
  logits.k = cfg.outputSize;
  logits.from = scoredFrom;
  logits.Y = Y;
  be.elmanForwardRecurrence(dt, cfg.activation, T, B, n, Wt, params.b.data(), Projection{X, params.W_in.data(), d},
                            logits, A, H);
}

}  // namespace

ElmanShape validateElman(const ElmanConfig& cfg, const ElmanParameters& P, const ElmanBatch& batch) {
  const int64_t d = cfg.inputSize, n = cfg.hiddenSize, k = cfg.outputSize;
  require(d > 0 && n > 0 && k > 0, ErrorCode::Range, "inputSize, hiddenSize and outputSize must be positive");
  const DType dt = P.W_in.dtype;
  require(isFloat(dt), ErrorCode::Type, "parameters must be float32 or float64");
  requireTensor(P.W_in, "W_in", dt, n * d);
  requireTensor(P.b, "b", dt, n);
  requireTensor(P.W_out, "W_out", dt, k * n);
  requireTensor(P.c, "c", dt, k);
  optionalTensor(P.h0, "h0", dt, n);
  if (cfg.recurrent == Recurrent::Svd) {
    requireTensor(P.U, "U", dt, n * n);
    requireTensor(P.V, "V", dt, n * n);
    requireTensor(P.p, "p", dt, n);
  } else {
    requireTensor(P.W, "W", dt, n * n);
  }
  const Tensor& x = batch.x;
  require(x.storage != nullptr, ErrorCode::Range, "missing the input 'x'");
  require(x.dtype == dt, ErrorCode::Type, std::string("'x' must be ") + dtypeName(dt) + " like the parameters, got " + dtypeName(x.dtype));
  require(x.shape.size() == 3 && x.shape[2] == d, ErrorCode::Range,
          "'x' must be T × B × " + std::to_string(d) + ", got shape " + shapeString(x.shape));
  ElmanShape s{x.shape[0], x.shape[1]};
  require(s.T > 0 && s.B > 0, ErrorCode::Range, "'x' must have at least one step and one sequence, got shape " + shapeString(x.shape));
  if (batch.initialState) requireTensor(*batch.initialState, "initialState", dt, s.B * n);
  return s;
}

void materializeRecurrent(Backend& be, const ElmanConfig& cfg, const ElmanParameters& P, void* W, void* s, Workspace& ws,
                          size_t scratchSlot) {
  const int64_t n = cfg.hiddenSize;
  const DType dt = P.W_in.dtype;
  if (cfg.recurrent != Recurrent::Svd) {
    be.copy(W, P.W.data(), size_t(n * n) * dtypeSize(dt));
    return;
  }
  be.marginSigmoid(dt, n, cfg.margin, P.p.data(), s);
  void* US = ws.get(scratchSlot, size_t(n * n), dt);
  be.scaleColumns(dt, n, n, P.U.data(), s, US);
  be.gemm(dt, false, true, n, n, n, 1.0, US, n, P.V.data(), n, 0.0, W, n);
}

namespace {

// The whole call's work, queued op by op (Fused::ElmanStep's reference).
void lossAndGradientsBody(Backend& be, const ElmanConfig& cfg, const ElmanParameters& P, const ElmanBatch& batch,
                          ElmanGradients& g, Workspace& ws) {
  const ElmanShape shape = validateElman(cfg, P, batch);
  const int64_t T = shape.T, B = shape.B, n = cfg.hiddenSize, d = cfg.inputSize, k = cfg.outputSize;
  const DType dt = P.W_in.dtype;
  const size_t es = dtypeSize(dt);
  const int64_t scoredRows = cfg.lastStepOnly ? B : T * B;
  if (cfg.loss == Loss::CrossEntropy) requireTensor(batch.targets, "targets", DType::I32, scoredRows);
  else requireTensor(batch.targets, "targets", dt, scoredRows * k);
  requireTensor(batch.weights, "weights", dt, scoredRows);
  requireTensor(g.loss, "loss", dt, 1);

  // --- forward ---------------------------------------------------------------------------
  void* W = ws.get(kW, size_t(n * n), dt);
  void* s = ws.get(kS, size_t(n), dt);
  materializeRecurrent(be, cfg, P, W, s, ws, kUS);
  void* H = ws.get(kH, size_t((T + 1) * B * n), dt);  // H[0] = initial state, H[t] = h_t
  void* A = ws.get(kA, size_t(T * B * n), dt);        // pre-activations, then reused for da_t
  initialHidden(be, dt, B, n, P, batch.initialState, H);
  void* Y = ws.get(kY, size_t(scoredRows * k), dt);  // the scored steps' logits
  forwardRecurrence(be, cfg, P, dt, T, B, batch.x.data(), W, A, H, cfg.lastStepOnly ? T - 1 : 0, Y, ws);

  const OutputLayer out{T, B, n, k, cfg.lastStepOnly, cfg.loss, &P.W_out, &P.c};
  // --- backward --------------------------------------------------------------------------
  void* dH = ws.get(kDH, size_t(T * B * n), dt);
  // The recurrence starts each dH block as dY W_out itself, and with only the last step
  // scored it clears the other steps' blocks.
  const int64_t givenFrom = cfg.lastStepOnly ? T - 1 : 0;
  const void* dY =
      outputLayerForwardBackward(be, dt, out, H, batch.targets, batch.weights, g.loss, nullptr, ws, kY, kDY, true);
  void* dA = A;  // the pre-activations are not needed any more
  requireTensor(g.b, "db", dt, n);
  if (g.hiddenGradientNorms.storage) requireTensor(g.hiddenGradientNorms, "hiddenGradientNorms", dt, T);
  // The recurrence also sums ‖dh_t‖, db, dW_in = dAᵀ X and dW_out = dYᵀ H over all T·B rows.
  requireTensor(g.W_in, "dW_in", dt, n * d);
  requireTensor(g.W_out, "dW_out", dt, k * n);
  requireTensor(g.c, "dc", dt, k);
  BackwardSums sums;
  sums.hiddenNorms = g.hiddenGradientNorms.data();
  sums.db = g.b.data();
  sums.dW_in = g.W_in.data();
  sums.dW_out = g.W_out.data();
  be.elmanBackwardRecurrence(dt, cfg.activation, T, B, n, W, H, Projection{batch.x.data(), P.W_in.data(), d},
                             Projection{dY, P.W_out.data(), k}, dH, dA, sums, givenFrom, cfg.clipPreactivation);
  // dL/d(initial state) = dA_1 W; for a learned h0, summed over the batch.
  if (g.initialState.storage || g.h0.storage) {
    void* dh0 = ws.get(kTmp, size_t(B * n), dt);
    be.gemm(dt, false, false, B, n, n, 1.0, dA, n, W, n, 0.0, dh0, n);
    if (g.initialState.storage) {
      requireTensor(g.initialState, "dInitialState", dt, B * n);
      be.copy(g.initialState.data(), dh0, size_t(B * n) * es);
    }
    if (g.h0.storage) {
      requireTensor(g.h0, "dh0", dt, n);
      be.columnSum(dt, B, n, dh0, 0.0, g.h0.data());
    }
  }
  outputLayerGradients(be, dt, out, H, dY, nullptr, g.c.data());

  // G = ∂L/∂W = Σ_t da_t h_{t−1}ᵀ  (dAᵀ H[0..T−1])
  void* G = cfg.recurrent == Recurrent::Svd ? ws.get(kG, size_t(n * n), dt) : g.W.data();
  if (cfg.recurrent != Recurrent::Svd) requireTensor(g.W, "dW", dt, n * n);
  be.gemm(dt, true, false, n, n, T * B, 1.0, dA, n, H, n, 0.0, G, n);

  if (cfg.recurrent == Recurrent::Penalty && cfg.penalty != 0) {
    // λ‖WᵀW − I‖²_F: loss += λ Σ P², G += 4λ W P with P = WᵀW − I.
    void* Pm = ws.get(kP, size_t(n * n), dt);
    be.gemm(dt, true, false, n, n, n, 1.0, W, n, W, n, 0.0, Pm, n);
    be.addDiagonal(dt, n, -1.0, Pm);
    void* term = ws.get(kTmp, 1, dt);
    be.reduce(dt, Reduction::SumSquares, n * n, Pm, term);
    be.axpby(dt, 1, 1.0, g.loss.data(), cfg.penalty, term, g.loss.data());
    be.gemm(dt, false, false, n, n, n, 4.0 * cfg.penalty, W, n, Pm, n, 1.0, G, n);
  }

  if (cfg.recurrent == Recurrent::Svd) {
    optionalTensor(g.U, "dU", dt, n * n);
    optionalTensor(g.V, "dV", dt, n * n);
    optionalTensor(g.frameU, "frameU", dt, n * n);
    optionalTensor(g.frameV, "frameV", dt, n * n);
    require(bool(g.frameU.storage) == bool(g.frameV.storage), ErrorCode::Range, "frameU and frameV go together");
    requireTensor(g.p, "dp", dt, n);
    // ∂L/∂U = G V S, ∂L/∂V = Gᵀ U S, ∂L/∂s = diag(Uᵀ G V). U S is still in its slot from
    // materializeRecurrent.
    void* GV = ws.get(kGV, size_t(n * n), dt);
    be.gemm(dt, false, false, n, n, n, 1.0, G, n, P.V.data(), n, 0.0, GV, n);
    void* ds = ws.get(kDS, size_t(n), dt);
    be.columnDots(dt, n, n, P.U.data(), GV, ds);
    if (g.U.storage) be.scaleColumns(dt, n, n, GV, s, g.U.data());
    if (g.V.storage) be.gemm(dt, true, false, n, n, n, 1.0, G, n, ws.get(kUS, size_t(n * n), dt), n, 0.0, g.V.data(), n);
    if (g.frameU.storage) {
      // Uᵀ ∂L/∂U = Ĝ S and Vᵀ ∂L/∂V = Ĝᵀ S with Ĝ = Uᵀ G V.
      void* F = g.frameU.data();
      be.gemm(dt, true, false, n, n, n, 1.0, P.U.data(), n, GV, n, 0.0, F, n);
      be.transpose(dt, n, n, F, g.frameV.data());
      be.scaleColumns(dt, n, n, F, s, F);
      be.scaleColumns(dt, n, n, g.frameV.data(), s, g.frameV.data());
    }
    if (cfg.spectrumPrior != 0) {
      // γ Σ (s − 1)²: loss += γ Σ (s − 1)², ds += 2γ (s − 1).
      void* sm1 = ws.get(kTmp, size_t(n) + 1, dt);
      void* ones = ws.get(kOnes, size_t(n), dt);
      be.fill(dt, n, 1.0, ones);
      be.axpby(dt, n, 1.0, s, -1.0, ones, sm1);
      void* term = at(sm1, n, dt);
      be.reduce(dt, Reduction::SumSquares, n, sm1, term);
      be.axpby(dt, 1, 1.0, g.loss.data(), cfg.spectrumPrior, term, g.loss.data());
      be.axpby(dt, n, 2.0 * cfg.spectrumPrior, sm1, 1.0, ds, ds);
    }
    be.marginSigmoidBackward(dt, n, cfg.margin, P.p.data(), ds, g.p.data());
  }
}

// A copy of a per-call input in the workspace's `slot`: the same shape and dtype, at an address
// that stays put from call to call.
Tensor staged(Backend& be, Workspace& ws, size_t slot, const Tensor& t) {
  Tensor copy{ws.storage(slot, t.bytes()), t.shape, t.dtype};
  be.copy(copy.data(), t.data(), t.bytes());
  return copy;
}

// Everything lossAndGradientsBody's launches depend on (Backend::runCall's key): the config's
// fields, the batch's shape, and the address, dtype and size of every tensor it reads or writes.
std::vector<uint64_t> callKey(const ElmanConfig& cfg, const ElmanParameters& P, const ElmanBatch& batch,
                              const ElmanGradients& g) {
  std::vector<uint64_t> key;
  for (int64_t v : {cfg.inputSize, cfg.hiddenSize, cfg.outputSize}) key.push_back(uint64_t(v));
  for (int v : {int(cfg.activation), int(cfg.recurrent), int(cfg.loss), int(cfg.lastStepOnly)}) key.push_back(uint64_t(v));
  for (double v : {cfg.margin, cfg.penalty, cfg.spectrumPrior, cfg.clipPreactivation}) appendKey(key, v);
  for (const Tensor* t : {&P.W_in, &P.b, &P.U, &P.V, &P.p, &P.W, &P.W_out, &P.c, &P.h0}) appendKey(key, *t);
  for (const Tensor* t : {&batch.x, &batch.targets, &batch.weights}) appendKey(key, *t);
  appendKey(key, batch.initialState ? *batch.initialState : Tensor{});
  for (const Tensor* t : {&g.loss, &g.W_in, &g.b, &g.U, &g.V, &g.p, &g.W, &g.W_out, &g.c, &g.h0, &g.initialState,
                          &g.hiddenGradientNorms, &g.frameU, &g.frameV})
    appendKey(key, *t);
  return key;
}

}  // namespace

void elmanLossAndGradients(Backend& be, const ElmanConfig& cfg, const ElmanParameters& P, const ElmanBatch& batch,
                           ElmanGradients& g, Workspace& ws) {
  if (!be.replaysCalls(Fused::ElmanStep)) {
    be.runCall(Fused::ElmanStep, {}, [&] { return ws.generation(); }, [&] { lossAndGradientsBody(be, cfg, P, batch, g, ws); });
    return;
  }
  // A replayed call reads its inputs where the first call found them: copy this call's there.
  validateElman(cfg, P, batch);
  ElmanBatch in;
  in.x = staged(be, ws, kStageX, batch.x);
  if (batch.targets.storage) in.targets = staged(be, ws, kStageTargets, batch.targets);
  if (batch.weights.storage) in.weights = staged(be, ws, kStageWeights, batch.weights);
  if (batch.initialState) in.initialState = staged(be, ws, kStageInitial, *batch.initialState);
  be.runCall(Fused::ElmanStep, callKey(cfg, P, in, g), [&] { return ws.generation(); },
             [&] { lossAndGradientsBody(be, cfg, P, in, g, ws); });
}

void elmanForward(Backend& be, const ElmanConfig& cfg, const ElmanParameters& P, const Tensor& x,
                  const std::optional<Tensor>& initialState, Tensor& outputs, Tensor& finalState, Workspace& ws) {
  ElmanBatch batch;
  batch.x = x;
  batch.initialState = initialState;
  const ElmanShape shape = validateElman(cfg, P, batch);
  const int64_t T = shape.T, B = shape.B, n = cfg.hiddenSize, k = cfg.outputSize;
  const DType dt = P.W_in.dtype;
  requireTensor(outputs, "outputs", dt, T * B * k);
  requireTensor(finalState, "finalState", dt, B * n);
  void* W = ws.get(kW, size_t(n * n), dt);
  void* s = ws.get(kS, size_t(n), dt);
  materializeRecurrent(be, cfg, P, W, s, ws, kUS);
  void* H = ws.get(kH, size_t((T + 1) * B * n), dt);
  void* A = ws.get(kA, size_t(T * B * n), dt);
  initialHidden(be, dt, B, n, P, initialState, H);
  forwardRecurrence(be, cfg, P, dt, T, B, x.data(), W, A, H, 0, outputs.data(), ws);
  be.biasActivation(dt, Activation::Identity, T * B, k, outputs.data(), P.c.data(), outputs.data());
  be.copy(finalState.data(), at(H, T * B * n, dt), size_t(B * n) * dtypeSize(dt));
}

}  // namespace orthornn
