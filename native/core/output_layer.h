// The linear output layer and the loss shared by the recurrent models (docs/math.md (M3), (M8)–(M11)):
// y_t = W_out h_t + c on the scored rows, the loss, and the gradients it sends back.
#pragma once
#include "backend.h"
#include "elman.h"  // Loss
#include "tensor.h"
#include "workspace.h"

namespace orthornn {

struct OutputLayer {
  int64_t T = 0, B = 0, n = 0, k = 0;
  bool lastStepOnly = false;  // only the last step is scored: its B rows alone are computed
  Loss loss = Loss::CrossEntropy;
  const Tensor* W_out = nullptr;  // k × n
  const Tensor* c = nullptr;      // k

  int64_t scoredRows() const { return lastStepOnly ? B : T * B; }
};

// From H ((T + 1) × B × n, H[0] the initial state): the loss of the scored rows into `loss`,
// dY (scored rows × k) into the workspace, and dH (T × B × n, for h_1..h_T) set to the
// output contribution dY W_out (zero on steps not scored). Returns dY. With dH null, only
// dY: for a recurrence that computes dY W_out itself (Backend::elmanBackwardRecurrence).
// With logitsGiven, the workspace's ySlot already holds H_scored W_outᵀ (computed by the
// forward recurrence, Backend::elmanForwardRecurrence's `logits`).
void* outputLayerForwardBackward(Backend& be, DType dt, const OutputLayer& out, const void* H, const Tensor& targets,
                                 const Tensor& weights, const Tensor& loss, void* dH, Workspace& ws, size_t ySlot,
                                 size_t dySlot, bool logitsGiven = false);

// dW_out = dYᵀ H_scored (unless dW_out is null: a recurrence computed it) and dc = Σ dY.
void outputLayerGradients(Backend& be, DType dt, const OutputLayer& out, const void* H, const void* dY, void* dW_out,
                          void* dc);

}  // namespace orthornn
