#include "output_layer.h"

namespace orthornn {
namespace {
const void* scoredHidden(DType dt, const OutputLayer& o, const void* H) {
  const int64_t first = o.lastStepOnly ? o.T : 1;  // H[1..T], or H[T] alone
  return static_cast<const char*>(H) + first * o.B * o.n * int64_t(dtypeSize(dt));
}
}  // namespace

void* outputLayerForwardBackward(Backend& be, DType dt, const OutputLayer& o, const void* H, const Tensor& targets,
                                 const Tensor& weights, const Tensor& loss, void* dH, Workspace& ws, size_t ySlot,
                                 size_t dySlot, bool logitsGiven) {
  const int64_t rows = o.scoredRows(), n = o.n, k = o.k;
  const void* Hs = scoredHidden(dt, o, H);
  void* Y = ws.get(ySlot, size_t(rows * k), dt);
  void* dY = ws.get(dySlot, size_t(rows * k), dt);
  if (!logitsGiven) be.gemm(dt, false, true, rows, k, n, 1.0, Hs, n, o.W_out->data(), n, 0.0, Y, k);
  be.biasActivation(dt, Activation::Identity, rows, k, Y, o.c->data(), Y);
  if (o.loss == Loss::CrossEntropy)
    be.softmaxCrossEntropy(dt, rows, k, Y, static_cast<const int32_t*>(targets.data()), weights.data(), loss.data(), dY);
  else
    be.meanSquaredError(dt, rows, k, Y, targets.data(), weights.data(), loss.data(), dY);
  if (!dH) return dY;
  if (o.lastStepOnly) {
    const int64_t before = (o.T - 1) * o.B * n;
    be.fill(dt, before, 0.0, dH);
    be.gemm(dt, false, false, o.B, n, k, 1.0, dY, k, o.W_out->data(), n, 0.0,
            static_cast<char*>(dH) + before * int64_t(dtypeSize(dt)), n);
  } else {
    be.gemm(dt, false, false, rows, n, k, 1.0, dY, k, o.W_out->data(), n, 0.0, dH, n);
  }
  return dY;
}

void outputLayerGradients(Backend& be, DType dt, const OutputLayer& o, const void* H, const void* dY, void* dW_out,
                          void* dc) {
  const int64_t rows = o.scoredRows();
  if (dW_out) be.gemm(dt, true, false, o.k, o.n, rows, 1.0, dY, o.k, scoredHidden(dt, o, H), o.n, 0.0, dW_out, o.n);
  be.columnSum(dt, rows, o.k, dY, 0.0, dc);
}

}  // namespace orthornn
