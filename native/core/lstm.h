// The LSTM baseline of docs/math.md §4 ((M27)–(M33): the paper's comparison), written against the Backend
// interface: one call does the whole forward pass, the loss and BPTT for a batch. Parameters
// follow PyTorch's nn.LSTM (one layer, gate order i, f, g, o):
//   z_t = W_ih x_t + b_ih + W_hh h_{t−1} + b_hh            (4n: the i, f, g, o blocks)
//   i = σ(z_i)  f = σ(z_f)  g = tanh(z_g)  o = σ(z_o)
//   c_t = f ⊙ c_{t−1} + i ⊙ g      h_t = o ⊙ tanh(c_t)      y_t = W_out h_t + c
// Losses, scoring and the targets/weights conventions are the Elman model's (elman.h).
#pragma once
#include <optional>
#include "backend.h"
#include "elman.h"  // Loss
#include "tensor.h"
#include "workspace.h"

namespace orthornn {

struct LstmConfig {
  int64_t inputSize = 0;   // d
  int64_t hiddenSize = 0;  // n
  int64_t outputSize = 0;  // k
  Loss loss = Loss::CrossEntropy;
  bool lastStepOnly = false;  // score the last step only (outputs computed for it alone)
};

// PyTorch's names and shapes; all required.
struct LstmParameters {
  Tensor weight_ih_l0;  // 4n × d
  Tensor weight_hh_l0;  // 4n × n
  Tensor bias_ih_l0;    // 4n
  Tensor bias_hh_l0;    // 4n
  Tensor W_out;         // k × n
  Tensor c;             // k
};

struct LstmBatch {
  Tensor x;        // T × B × d
  Tensor targets;  // CE: int32 (T × B, or B when lastStepOnly); MSE: (T × B × k, or B × k)
  Tensor weights;  // per scored row: T × B (or B); 0 leaves a row out, sums give the mean
  std::optional<Tensor> h0, c0;  // B × n each; zeros when absent
};

// Outputs. The loss and the parameter gradients are required; h0, c0 (dL/dh_0, dL/dc_0,
// B × n, for truncated BPTT) and hiddenGradientNorms (T: ‖dL/dh_t‖ over the batch, t = 1..T)
// are computed when given.
struct LstmGradients {
  Tensor loss;  // 1 element
  Tensor weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, W_out, c;
  Tensor h0, c0;
  Tensor hiddenGradientNorms;
};

struct LstmShape {
  int64_t T = 0, B = 0;
};

// Checks dtypes and shapes of the parameters, x, h0 and c0; with `grads`, also the targets,
// the weights and every gradient tensor (a training call). Throws ErrorCode::Range / Type
// naming the offending tensor.
LstmShape validateLstm(const LstmConfig& cfg, const LstmParameters& params, const LstmBatch& batch,
                       const LstmGradients* grads = nullptr);

// validateLstm for an inference call, plus its outputs.
LstmShape validateLstmForward(const LstmConfig& cfg, const LstmParameters& params, const Tensor& x,
                              const std::optional<Tensor>& h0, const std::optional<Tensor>& c0, const Tensor& outputs,
                              const Tensor& hFinal, const Tensor& cFinal);

void lstmLossAndGradients(Backend& be, const LstmConfig& cfg, const LstmParameters& params, const LstmBatch& batch,
                          LstmGradients& grads, Workspace& ws);

// Inference: outputs y (T × B × k) and the final state h_T, c_T (B × n each).
void lstmForward(Backend& be, const LstmConfig& cfg, const LstmParameters& params, const Tensor& x,
                 const std::optional<Tensor>& h0, const std::optional<Tensor>& c0, Tensor& outputs, Tensor& hFinal,
                 Tensor& cFinal, Workspace& ws);

}  // namespace orthornn
