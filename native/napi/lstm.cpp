// The bodies of the LSTM baseline's ops of native/ops.json (native/core/lstm). Objects of tensors are read into plain C++ structs
// here, on the JS thread, and validated there (bad shapes and dtypes throw synchronously);
// the queued work sees only those structs.
#include "../core/lstm.h"
#include "binding.h"

namespace orthornn::napi {
namespace {

LstmConfig parseLstmConfig(Napi::Env env, const Napi::Object& o) {
  LstmConfig c;
  c.inputSize = sizeField(env, o, "inputSize");
  c.hiddenSize = sizeField(env, o, "hiddenSize");
  c.outputSize = sizeField(env, o, "outputSize");
  c.loss = lossField(env, o);
  c.lastStepOnly = booleanField(env, o, "lastStepOnly");
  return c;
}

LstmParameters parseLstmParameters(Napi::Env env, const ContextState& ctx, const Napi::Object& o) {
  LstmParameters p;
  p.weight_ih_l0 = tensorField(env, ctx, o, "weight_ih_l0", "params");
  p.weight_hh_l0 = tensorField(env, ctx, o, "weight_hh_l0", "params");
  p.bias_ih_l0 = tensorField(env, ctx, o, "bias_ih_l0", "params");
  p.bias_hh_l0 = tensorField(env, ctx, o, "bias_hh_l0", "params");
  p.W_out = tensorField(env, ctx, o, "W_out", "params");
  p.c = tensorField(env, ctx, o, "c", "params");
  return p;
}

std::optional<Tensor> present(Tensor t) {
  if (!t.storage) return std::nullopt;
  return t;
}

}  // namespace

namespace bodies {

//   batch: { x, targets, weights, h0?, c0? }
//   grads: { loss, weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, W_out, c, h0?, c0?, hiddenGradientNorms? }
void lstmLossAndGradients(Call& c) {
  Napi::Env env = c.env();
  const auto& ctx = *c.context();
  WorkspaceRef ws = c.workspace("workspace");
  LstmConfig cfg = parseLstmConfig(env, c.object("config"));
  LstmParameters params = parseLstmParameters(env, ctx, c.object("params"));
  Napi::Object b = c.object("batch");
  LstmBatch batch;
  batch.x = tensorField(env, ctx, b, "x", "batch");
  batch.targets = tensorField(env, ctx, b, "targets", "batch");
  batch.weights = tensorField(env, ctx, b, "weights", "batch");
  batch.h0 = present(tensorField(env, ctx, b, "h0", "batch"));
  batch.c0 = present(tensorField(env, ctx, b, "c0", "batch"));
  Napi::Object go = c.object("grads");
  LstmGradients grads;
  grads.loss = tensorField(env, ctx, go, "loss", "grads");
  grads.weight_ih_l0 = tensorField(env, ctx, go, "weight_ih_l0", "grads");
  grads.weight_hh_l0 = tensorField(env, ctx, go, "weight_hh_l0", "grads");
  grads.bias_ih_l0 = tensorField(env, ctx, go, "bias_ih_l0", "grads");
  grads.bias_hh_l0 = tensorField(env, ctx, go, "bias_hh_l0", "grads");
  grads.W_out = tensorField(env, ctx, go, "W_out", "grads");
  grads.c = tensorField(env, ctx, go, "c", "grads");
  grads.h0 = tensorField(env, ctx, go, "h0", "grads");
  grads.c0 = tensorField(env, ctx, go, "c0", "grads");
  grads.hiddenGradientNorms = tensorField(env, ctx, go, "hiddenGradientNorms", "grads");
  checkNow(env, [&] { validateLstm(cfg, params, batch, &grads); });
  c.enqueue([=](Backend& be) mutable { lstmLossAndGradients(be, cfg, params, batch, grads, *ws); });
}

void lstmForward(Call& c) {
  Napi::Env env = c.env();
  WorkspaceRef ws = c.workspace("workspace");
  LstmConfig cfg = parseLstmConfig(env, c.object("config"));
  LstmParameters params = parseLstmParameters(env, *c.context(), c.object("params"));
  Tensor x = c.tensor("x"), outputs = c.tensor("outputs"), hFinal = c.tensor("hFinal"), cFinal = c.tensor("cFinal");
  std::optional<Tensor> h0 = c.optionalTensor("h0"), c0 = c.optionalTensor("c0");
  checkNow(env, [&] { validateLstmForward(cfg, params, x, h0, c0, outputs, hFinal, cFinal); });
  c.enqueue([=](Backend& be) mutable { lstmForward(be, cfg, params, x, h0, c0, outputs, hFinal, cFinal, *ws); });
}

}  // namespace bodies
}  // namespace orthornn::napi
