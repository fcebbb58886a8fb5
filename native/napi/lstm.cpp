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
  tensorFields(env, ctx, o, "params",
               {{"weight_ih_l0", &p.weight_ih_l0}, {"weight_hh_l0", &p.weight_hh_l0}, {"bias_ih_l0", &p.bias_ih_l0},
                {"bias_hh_l0", &p.bias_hh_l0}, {"W_out", &p.W_out}, {"c", &p.c}});
  return p;
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
  LstmBatch batch;
  Tensor h0, c0;
  tensorFields(env, ctx, c.object("batch"), "batch",
               {{"x", &batch.x}, {"targets", &batch.targets}, {"weights", &batch.weights}, {"h0", &h0}, {"c0", &c0}});
  batch.h0 = present(h0);
  batch.c0 = present(c0);
  LstmGradients grads;
  tensorFields(env, ctx, c.object("grads"), "grads",
               {{"loss", &grads.loss}, {"weight_ih_l0", &grads.weight_ih_l0}, {"weight_hh_l0", &grads.weight_hh_l0},
                {"bias_ih_l0", &grads.bias_ih_l0}, {"bias_hh_l0", &grads.bias_hh_l0}, {"W_out", &grads.W_out},
                {"c", &grads.c}, {"h0", &grads.h0}, {"c0", &grads.c0}, {"hiddenGradientNorms", &grads.hiddenGradientNorms}});
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
