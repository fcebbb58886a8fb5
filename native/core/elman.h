// The Elman RNN of docs/math.md §1 ((M1)–(M20)), written against the Backend interface: one call does
// the whole forward pass, the loss and BPTT for a batch. Layouts are docs/math.md §3's.
#pragma once
#include <optional>
#include "backend.h"
#include "tensor.h"
#include "workspace.h"

namespace orthornn {

enum class Recurrent : int { Svd = 0, Plain = 1, Penalty = 2 };
enum class Loss : int { CrossEntropy = 0, MeanSquaredError = 1 };

struct ElmanConfig {
  int64_t inputSize = 0;   // d
  int64_t hiddenSize = 0;  // n
  int64_t outputSize = 0;  // k
  Activation activation = Activation::Tanh;
  Recurrent recurrent = Recurrent::Svd;
  double margin = 0;         // m (svd)
  double penalty = 0;        // λ of λ‖WᵀW − I‖²_F (penalty)
  double spectrumPrior = 0;  // γ of γ Σ (s_i − 1)² (svd)
  Loss loss = Loss::CrossEntropy;
  bool lastStepOnly = false;  // score the last step only (outputs computed for it alone)
  double clipPreactivation = 0;  // > 0: clip ∂L/∂a_t element-wise to [−c, c] in BPTT
};

// Parameters by their names (docs/math.md §3); those a parameterisation does not use are left empty.
struct ElmanParameters {
  Tensor W_in, b, U, V, p, W, W_out, c, h0;
};

struct ElmanBatch {
  Tensor x;             // T × B × d
  Tensor targets;       // CE: int32 (T × B, or B when lastStepOnly); MSE: (T × B × k, or B × k)
  Tensor weights;       // per scored row: T × B (or B); 0 leaves a row out, sums give the mean
  std::optional<Tensor> initialState;  // B × n; otherwise h0 (learned) or zeros
};

// Outputs; a tensor left empty is not computed.
struct ElmanGradients {
  Tensor loss;  // 1 element
  Tensor W_in, b, U, V, p, W, W_out, c, h0;
  Tensor initialState;         // B × n: dL/d(initial state), for truncated BPTT
  Tensor hiddenGradientNorms;  // T: ‖dL/dh_t‖ over the batch
  // svd: ∂L/∂U and ∂L/∂V in their own frames, Uᵀ ∂L/∂U and Vᵀ ∂L/∂V (n × n each, both or
  // neither), what cayleyStepInFrame takes. They cost one n×n product, as ∂L/∂V does.
  Tensor frameU, frameV;
};

struct ElmanShape {
  int64_t T = 0, B = 0;
};

// Checks every tensor's dtype and element count against the config and batch; throws
// ErrorCode::Range / Type naming the offending tensor.
ElmanShape validateElman(const ElmanConfig& cfg, const ElmanParameters& params, const ElmanBatch& batch);

void elmanLossAndGradients(Backend& be, const ElmanConfig& cfg, const ElmanParameters& params, const ElmanBatch& batch,
                           ElmanGradients& grads, Workspace& ws);

// Inference: outputs y (T × B × k) and the final state h_T (B × n).
void elmanForward(Backend& be, const ElmanConfig& cfg, const ElmanParameters& params, const Tensor& x,
                  const std::optional<Tensor>& initialState, Tensor& outputs, Tensor& finalState, Workspace& ws);

// W = U diag(s) Vᵀ with s = marginSigmoid(p), for svd; W itself otherwise. Writes W (n×n)
// and, for svd, s (n) into the given buffers.
void materializeRecurrent(Backend& be, const ElmanConfig& cfg, const ElmanParameters& params, void* W, void* s,
                          Workspace& ws, size_t scratchSlot);

}  // namespace orthornn
