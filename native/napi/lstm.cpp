// Bindings of the LSTM baseline (native/core/lstm): module functions taking the
// NativeContext first, like models.cpp. Objects of tensors are read into plain C++ structs
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

// lstmLossAndGradients(context, workspace, config, params, batch, grads)
//   batch: { x, targets, weights, h0?, c0? }
//   grads: { loss, weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0, W_out, c, h0?, c0?, hiddenGradientNorms? }
Napi::Value LstmLossAndGradients(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto ctx = contextArg(info, 0);
  WorkspaceRef ws = workspaceArg(info, 1, ctx);
  LstmConfig cfg = parseLstmConfig(env, objectArg(info, 2, "config"));
  LstmParameters params = parseLstmParameters(env, *ctx, objectArg(info, 3, "params"));
  Napi::Object b = objectArg(info, 4, "batch");
  LstmBatch batch;
  batch.x = tensorField(env, *ctx, b, "x", "batch");
  batch.targets = tensorField(env, *ctx, b, "targets", "batch");
  batch.weights = tensorField(env, *ctx, b, "weights", "batch");
  batch.h0 = present(tensorField(env, *ctx, b, "h0", "batch"));
  batch.c0 = present(tensorField(env, *ctx, b, "c0", "batch"));
  Napi::Object go = objectArg(info, 5, "grads");
  LstmGradients grads;
  grads.loss = tensorField(env, *ctx, go, "loss", "grads");
  grads.weight_ih_l0 = tensorField(env, *ctx, go, "weight_ih_l0", "grads");
  grads.weight_hh_l0 = tensorField(env, *ctx, go, "weight_hh_l0", "grads");
  grads.bias_ih_l0 = tensorField(env, *ctx, go, "bias_ih_l0", "grads");
  grads.bias_hh_l0 = tensorField(env, *ctx, go, "bias_hh_l0", "grads");
  grads.W_out = tensorField(env, *ctx, go, "W_out", "grads");
  grads.c = tensorField(env, *ctx, go, "c", "grads");
  grads.h0 = tensorField(env, *ctx, go, "h0", "grads");
  grads.c0 = tensorField(env, *ctx, go, "c0", "grads");
  grads.hiddenGradientNorms = tensorField(env, *ctx, go, "hiddenGradientNorms", "grads");
  checkNow(env, [&] { validateLstm(cfg, params, batch, &grads); });
  enqueueOn(env, *ctx, "lstmLossAndGradients", [=](Backend& be) mutable {
    lstmLossAndGradients(be, cfg, params, batch, grads, *ws);
  });
  return env.Undefined();
}

// lstmForward(context, workspace, config, params, x, h0 | null, c0 | null, outputs, hFinal, cFinal)
Napi::Value LstmForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto ctx = contextArg(info, 0);
  WorkspaceRef ws = workspaceArg(info, 1, ctx);
  LstmConfig cfg = parseLstmConfig(env, objectArg(info, 2, "config"));
  LstmParameters params = parseLstmParameters(env, *ctx, objectArg(info, 3, "params"));
  Tensor x = tensorArg(info, *ctx, 4, "x");
  std::optional<Tensor> h0 = optionalTensorArg(info, *ctx, 5, "h0");
  std::optional<Tensor> c0 = optionalTensorArg(info, *ctx, 6, "c0");
  Tensor outputs = tensorArg(info, *ctx, 7, "outputs");
  Tensor hFinal = tensorArg(info, *ctx, 8, "hFinal");
  Tensor cFinal = tensorArg(info, *ctx, 9, "cFinal");
  checkNow(env, [&] { validateLstmForward(cfg, params, x, h0, c0, outputs, hFinal, cFinal); });
  enqueueOn(env, *ctx, "lstmForward", [=](Backend& be) mutable {
    lstmForward(be, cfg, params, x, h0, c0, outputs, hFinal, cFinal, *ws);
  });
  return env.Undefined();
}

}  // namespace

void registerLstmBindings(Napi::Env env, Napi::Object exports) {
  exports.Set("lstmLossAndGradients", Napi::Function::New<guarded<LstmLossAndGradients>>(env, "lstmLossAndGradients"));
  exports.Set("lstmForward", Napi::Function::New<guarded<LstmForward>>(env, "lstmForward"));
}

}  // namespace orthornn::napi
