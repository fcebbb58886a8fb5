#include "lstm.h"

#include "output_layer.h"

#include <initializer_list>
#include <string>
#include <vector>

namespace orthornn {
namespace {

// Workspace slots (apart from the Elman model's, so one workspace can serve both without
// reallocating).
enum Slot : size_t {
  kZ = 40,  // T × B × 4n: gate pre-activations, then activated gates, then their gradients
  kH,       // (T + 1) × B × n: H[0] = h_0, H[t] = h_t
  kC,       // (T + 1) × B × n: C[0] = c_0, C[t] = c_t
  kY,       // scored rows × k: outputs
  kDY,      // scored rows × k: ∂L/∂y
  kDH,      // T × B × n: dH[t] = ∂L/∂h_{t+1}
  kDC,      // B × n: the cell-gradient carry
};

std::string dimsString(std::initializer_list<int64_t> dims) {
  std::vector<int64_t> v(dims);
  return shapeString(v);
}

void requireShape(const Tensor& t, const std::string& name, DType dt, std::initializer_list<int64_t> dims) {
  if (!t.storage) fail(ErrorCode::Range, "missing tensor '" + name + "'");
  if (t.dtype != dt) fail(ErrorCode::Type, "'" + name + "' must be " + dtypeName(dt) + ", got " + dtypeName(t.dtype));
  if (t.shape != std::vector<int64_t>(dims))
    fail(ErrorCode::Range, "'" + name + "' must be of shape " + dimsString(dims) + ", got " + shapeString(t.shape));
}

void requireCount(const Tensor& t, const std::string& name, DType dt, int64_t numel, const std::string& what) {
  if (!t.storage) fail(ErrorCode::Range, "missing tensor '" + name + "'");
  if (t.dtype != dt) fail(ErrorCode::Type, "'" + name + "' must be " + dtypeName(dt) + ", got " + dtypeName(t.dtype));
  if (t.numel() != numel)
    fail(ErrorCode::Range, "'" + name + "' must have " + std::to_string(numel) + " elements (" + what + "), got shape " +
                               shapeString(t.shape));
}

char* at(void* base, int64_t elements, DType dt) { return static_cast<char*>(base) + elements * int64_t(dtypeSize(dt)); }

// H[0], C[0] ← the given states or zeros.
void initialState(Backend& be, DType dt, int64_t B, int64_t n, const std::optional<Tensor>& h0,
                  const std::optional<Tensor>& c0, void* H0, void* C0) {
  if (h0) be.copy(H0, h0->data(), size_t(B * n) * dtypeSize(dt));
  else be.fill(dt, B * n, 0.0, H0);
  if (c0) be.copy(C0, c0->data(), size_t(B * n) * dtypeSize(dt));
  else be.fill(dt, B * n, 0.0, C0);
}

// Z = X W_ihᵀ for all T·B rows at once; then per step Z_t += H_{t−1} W_hhᵀ and one fused
// cell op (biases, activations, c_t, h_t).
void forwardRecurrence(Backend& be, const LstmConfig& cfg, const LstmParameters& P, DType dt, int64_t T, int64_t B,
                       const void* X, void* Z, void* H, void* C) {
  const int64_t n = cfg.hiddenSize, d = cfg.inputSize, n4 = 4 * n;
  be.gemm(dt, false, true, T * B, n4, d, 1.0, X, d, P.weight_ih_l0.data(), d, 0.0, Z, n4);
  be.lstmForwardRecurrence(dt, T, B, n, P.weight_hh_l0.data(), P.bias_ih_l0.data(), P.bias_hh_l0.data(), Z, H, C);
}

}  // namespace

LstmShape validateLstm(const LstmConfig& cfg, const LstmParameters& P, const LstmBatch& batch, const LstmGradients* g) {
  const int64_t d = cfg.inputSize, n = cfg.hiddenSize, k = cfg.outputSize;
  require(d > 0 && n > 0 && k > 0, ErrorCode::Range,
          "inputSize, hiddenSize and outputSize must be positive, got " + std::to_string(d) + ", " + std::to_string(n) +
              ", " + std::to_string(k));
  if (!P.weight_ih_l0.storage) fail(ErrorCode::Range, "missing tensor 'weight_ih_l0'");
  const DType dt = P.weight_ih_l0.dtype;
  require(isFloat(dt), ErrorCode::Type,
          std::string("parameters must be float32 or float64, 'weight_ih_l0' is ") + dtypeName(dt));
  requireShape(P.weight_ih_l0, "weight_ih_l0", dt, {4 * n, d});
  requireShape(P.weight_hh_l0, "weight_hh_l0", dt, {4 * n, n});
  requireShape(P.bias_ih_l0, "bias_ih_l0", dt, {4 * n});
  requireShape(P.bias_hh_l0, "bias_hh_l0", dt, {4 * n});
  requireShape(P.W_out, "W_out", dt, {k, n});
  requireShape(P.c, "c", dt, {k});

  const Tensor& x = batch.x;
  require(x.storage != nullptr, ErrorCode::Range, "missing the input 'x'");
  require(x.dtype == dt, ErrorCode::Type,
          std::string("'x' must be ") + dtypeName(dt) + " like the parameters, got " + dtypeName(x.dtype));
  require(x.shape.size() == 3 && x.shape[2] == d, ErrorCode::Range,
          "'x' must be T × B × " + std::to_string(d) + ", got shape " + shapeString(x.shape));
  LstmShape s{x.shape[0], x.shape[1]};
  require(s.T > 0 && s.B > 0, ErrorCode::Range,
          "'x' must have at least one step and one sequence, got shape " + shapeString(x.shape));
  if (batch.h0) requireShape(*batch.h0, "h0", dt, {s.B, n});
  if (batch.c0) requireShape(*batch.c0, "c0", dt, {s.B, n});
  if (!g) return s;

  const int64_t rows = cfg.lastStepOnly ? s.B : s.T * s.B;
  const std::string rowsText = cfg.lastStepOnly ? "B = " + std::to_string(s.B) + " scored rows"
                                                : "T·B = " + std::to_string(rows) + " scored rows";
  if (cfg.loss == Loss::CrossEntropy) requireCount(batch.targets, "targets", DType::I32, rows, "one class id per " + rowsText);
  else requireCount(batch.targets, "targets", dt, rows * k, std::to_string(k) + " values for each of " + rowsText);
  requireCount(batch.weights, "weights", dt, rows, "one per " + rowsText);
  requireCount(g->loss, "grads.loss", dt, 1, "the loss");
  requireShape(g->weight_ih_l0, "grads.weight_ih_l0", dt, {4 * n, d});
  requireShape(g->weight_hh_l0, "grads.weight_hh_l0", dt, {4 * n, n});
  requireShape(g->bias_ih_l0, "grads.bias_ih_l0", dt, {4 * n});
  requireShape(g->bias_hh_l0, "grads.bias_hh_l0", dt, {4 * n});
  requireShape(g->W_out, "grads.W_out", dt, {k, n});
  requireShape(g->c, "grads.c", dt, {k});
  if (g->h0.storage) requireShape(g->h0, "grads.h0", dt, {s.B, n});
  if (g->c0.storage) requireShape(g->c0, "grads.c0", dt, {s.B, n});
  if (g->hiddenGradientNorms.storage) requireCount(g->hiddenGradientNorms, "grads.hiddenGradientNorms", dt, s.T, "one per step");
  return s;
}

LstmShape validateLstmForward(const LstmConfig& cfg, const LstmParameters& P, const Tensor& x,
                              const std::optional<Tensor>& h0, const std::optional<Tensor>& c0, const Tensor& outputs,
                              const Tensor& hFinal, const Tensor& cFinal) {
  LstmBatch batch;
  batch.x = x;
  batch.h0 = h0;
  batch.c0 = c0;
  const LstmShape s = validateLstm(cfg, P, batch);
  const DType dt = P.weight_ih_l0.dtype;
  const int64_t n = cfg.hiddenSize, k = cfg.outputSize;
  requireCount(outputs, "outputs", dt, s.T * s.B * k, "T × B × k = " + dimsString({s.T, s.B, k}));
  requireShape(hFinal, "hFinal", dt, {s.B, n});
  requireShape(cFinal, "cFinal", dt, {s.B, n});
  return s;
}

void lstmLossAndGradients(Backend& be, const LstmConfig& cfg, const LstmParameters& P, const LstmBatch& batch,
                          LstmGradients& g, Workspace& ws) {
  const LstmShape shape = validateLstm(cfg, P, batch, &g);
  const int64_t T = shape.T, B = shape.B, n = cfg.hiddenSize, d = cfg.inputSize, k = cfg.outputSize, n4 = 4 * n;
  const DType dt = P.weight_ih_l0.dtype;
  const size_t es = dtypeSize(dt);

  // --- forward ---------------------------------------------------------------------------
  void* Z = ws.get(kZ, size_t(T * B * n4), dt);
  void* H = ws.get(kH, size_t((T + 1) * B * n), dt);
  void* C = ws.get(kC, size_t((T + 1) * B * n), dt);
  initialState(be, dt, B, n, batch.h0, batch.c0, H, C);
  forwardRecurrence(be, cfg, P, dt, T, B, batch.x.data(), Z, H, C);

  const OutputLayer out{T, B, n, k, cfg.lastStepOnly, cfg.loss, &P.W_out, &P.c};
  // --- backward --------------------------------------------------------------------------
  void* dH = ws.get(kDH, size_t(T * B * n), dt);
  const void* dY = outputLayerForwardBackward(be, dt, out, H, batch.targets, batch.weights, g.loss, dH, ws, kY, kDY);
  void* dC = ws.get(kDC, size_t(B * n), dt);
  be.fill(dt, B * n, 0.0, dC);
  void* dZ = Z;  // the cell op turns each step's activated gates into their gradients
  // With dL/dW_hh = Σ_t dZ_tᵀ H_t and the bias sum, which the CPU folds into its steps.
  Backend::LstmSums sums;
  sums.H = H;
  sums.dWhh = g.weight_hh_l0.data();
  sums.db = g.bias_ih_l0.data();
  be.lstmBackwardRecurrence(dt, T, B, n, P.weight_hh_l0.data(), C, dZ, dH, dC, sums);
  if (g.hiddenGradientNorms.storage) be.groupNorms(dt, T, B * n, dH, g.hiddenGradientNorms.data());
  // dL/dh_0 = dZ_1 W_hh; dL/dc_0 is the carry left after the first step.
  if (g.h0.storage) be.gemm(dt, false, false, B, n, n4, 1.0, dZ, n4, P.weight_hh_l0.data(), n, 0.0, g.h0.data(), n);
  if (g.c0.storage) be.copy(g.c0.data(), dC, size_t(B * n) * es);

  // Weight gradients: one GEMM each over all T·B rows.
  be.gemm(dt, true, false, n4, d, T * B, 1.0, dZ, n4, batch.x.data(), d, 0.0, g.weight_ih_l0.data(), d);
  be.copy(g.bias_hh_l0.data(), g.bias_ih_l0.data(), size_t(n4) * es);
  outputLayerGradients(be, dt, out, H, dY, g.W_out.data(), g.c.data());
}

void lstmForward(Backend& be, const LstmConfig& cfg, const LstmParameters& P, const Tensor& x,
                 const std::optional<Tensor>& h0, const std::optional<Tensor>& c0, Tensor& outputs, Tensor& hFinal,
                 Tensor& cFinal, Workspace& ws) {
  const LstmShape shape = validateLstmForward(cfg, P, x, h0, c0, outputs, hFinal, cFinal);
  const int64_t T = shape.T, B = shape.B, n = cfg.hiddenSize, k = cfg.outputSize;
  const DType dt = P.weight_ih_l0.dtype;
  void* Z = ws.get(kZ, size_t(T * B * 4 * n), dt);
  void* H = ws.get(kH, size_t((T + 1) * B * n), dt);
  void* C = ws.get(kC, size_t((T + 1) * B * n), dt);
  initialState(be, dt, B, n, h0, c0, H, C);
  forwardRecurrence(be, cfg, P, dt, T, B, x.data(), Z, H, C);
  be.gemm(dt, false, true, T * B, k, n, 1.0, at(H, B * n, dt), n, P.W_out.data(), n, 0.0, outputs.data(), k);
  be.biasActivation(dt, Activation::Identity, T * B, k, outputs.data(), P.c.data(), outputs.data());
  be.copy(hFinal.data(), at(H, T * B * n, dt), size_t(B * n) * dtypeSize(dt));
  be.copy(cFinal.data(), at(C, T * B * n, dt), size_t(B * n) * dtypeSize(dt));
}

}  // namespace orthornn
