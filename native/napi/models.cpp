// The bodies of the model ops of native/ops.json (native/core/elman, orthogonal), and the
// workspaces they keep. Objects of tensors are read into plain C++ structs here, on the JS
// thread; the queued work sees only those.
#include <cmath>
#include <algorithm>

#include "../core/elman.h"
#include "../core/orthogonal.h"
#include "binding.h"

namespace orthornn::napi {
namespace {

ElmanConfig parseElmanConfig(Napi::Env env, const Napi::Object& o) {
  ElmanConfig c;
  c.inputSize = sizeField(env, o, "inputSize");
  c.hiddenSize = sizeField(env, o, "hiddenSize");
  c.outputSize = sizeField(env, o, "outputSize");
  const std::string act = stringField(env, o, "activation");
  if (act == "tanh") c.activation = Activation::Tanh;
  else if (act == "relu") c.activation = Activation::Relu;
  else if (act == "identity") c.activation = Activation::Identity;
  else throwError(env, ErrorCode::Range, "config.activation must be 'tanh', 'relu' or 'identity', got '" + act + "'");
  const std::string rec = stringField(env, o, "recurrent");
  if (rec == "svd") c.recurrent = Recurrent::Svd;
  else if (rec == "plain") c.recurrent = Recurrent::Plain;
  else if (rec == "penalty") c.recurrent = Recurrent::Penalty;
  else throwError(env, ErrorCode::Range, "config.recurrent must be 'svd', 'plain' or 'penalty', got '" + rec + "'");
  c.margin = numberField(env, o, "margin");
  c.penalty = numberField(env, o, "penalty");
  c.spectrumPrior = numberField(env, o, "spectrumPrior");
  c.loss = lossField(env, o);
  c.lastStepOnly = booleanField(env, o, "lastStepOnly");
  if (!o.Get("clipPreactivation").IsUndefined()) {
    c.clipPreactivation = numberField(env, o, "clipPreactivation");
    if (!(c.clipPreactivation >= 0 && std::isfinite(c.clipPreactivation)))
      throwError(env, ErrorCode::Range, "config.clipPreactivation must be a finite number ≥ 0 (0: no clipping)");
  }
  return c;
}

ElmanParameters parseElmanParameters(Napi::Env env, const ContextState& ctx, const Napi::Object& o) {
  ElmanParameters p;
  p.W_in = tensorField(env, ctx, o, "W_in");
  p.b = tensorField(env, ctx, o, "b");
  p.U = tensorField(env, ctx, o, "U");
  p.V = tensorField(env, ctx, o, "V");
  p.p = tensorField(env, ctx, o, "p");
  p.W = tensorField(env, ctx, o, "W");
  p.W_out = tensorField(env, ctx, o, "W_out");
  p.c = tensorField(env, ctx, o, "c");
  p.h0 = tensorField(env, ctx, o, "h0");
  return p;
}

}  // namespace

namespace bodies {

void elmanLossAndGradients(Call& c) {
  Napi::Env env = c.env();
  const auto& ctx = *c.context();
  WorkspaceRef ws = c.workspace("workspace");
  ElmanConfig cfg = parseElmanConfig(env, c.object("config"));
  ElmanParameters params = parseElmanParameters(env, ctx, c.object("params"));
  Napi::Object b = c.object("batch");
  ElmanBatch batch;
  batch.x = tensorField(env, ctx, b, "x");
  batch.targets = tensorField(env, ctx, b, "targets");
  batch.weights = tensorField(env, ctx, b, "weights");
  Tensor init = tensorField(env, ctx, b, "initialState");
  if (init.storage) batch.initialState = init;
  Napi::Object go = c.object("grads");
  ElmanGradients grads;
  grads.loss = tensorField(env, ctx, go, "loss");
  grads.W_in = tensorField(env, ctx, go, "W_in");
  grads.b = tensorField(env, ctx, go, "b");
  grads.U = tensorField(env, ctx, go, "U");
  grads.V = tensorField(env, ctx, go, "V");
  grads.p = tensorField(env, ctx, go, "p");
  grads.W = tensorField(env, ctx, go, "W");
  grads.W_out = tensorField(env, ctx, go, "W_out");
  grads.c = tensorField(env, ctx, go, "c");
  grads.h0 = tensorField(env, ctx, go, "h0");
  grads.initialState = tensorField(env, ctx, go, "initialState");
  grads.hiddenGradientNorms = tensorField(env, ctx, go, "hiddenGradientNorms");
  grads.frameU = tensorField(env, ctx, go, "frameU");
  grads.frameV = tensorField(env, ctx, go, "frameV");
  checkNow(env, [&] { validateElman(cfg, params, batch); });
  c.enqueue([=](Backend& be) mutable { elmanLossAndGradients(be, cfg, params, batch, grads, *ws); });
}

void elmanForward(Call& c) {
  Napi::Env env = c.env();
  WorkspaceRef ws = c.workspace("workspace");
  ElmanConfig cfg = parseElmanConfig(env, c.object("config"));
  ElmanParameters params = parseElmanParameters(env, *c.context(), c.object("params"));
  Tensor x = c.tensor("x"), outputs = c.tensor("outputs"), finalState = c.tensor("finalState");
  std::optional<Tensor> init = c.optionalTensor("initialState");
  checkNow(env, [&] {
    ElmanBatch b;
    b.x = x;
    b.initialState = init;
    validateElman(cfg, params, b);
  });
  c.enqueue([=](Backend& be) mutable { elmanForward(be, cfg, params, x, init, outputs, finalState, *ws); });
}

// M updated in place; the slots make M and G (F) square, float and alike.
void cayleyStep(Call& c) {
  WorkspaceRef ws = c.workspace("workspace");
  const Tensor M = c.tensor("M"), G = c.tensor("G");
  const double lr = c.number("lr");
  c.enqueue([=](Backend& be) { orthornn::cayleyStep(be, M.dtype, M.shape[0], M.data(), G.data(), lr, *ws); });
}

void cayleyStepInFrame(Call& c) {
  WorkspaceRef ws = c.workspace("workspace");
  const Tensor M = c.tensor("M"), F = c.tensor("F");
  const double lr = c.number("lr");
  c.enqueue([=](Backend& be) { orthornn::cayleyStepInFrame(be, M.dtype, M.shape[0], M.data(), F.data(), lr, *ws); });
}

void orthogonalityError(Call& c) {
  WorkspaceRef ws = c.workspace("workspace");
  const Tensor M = c.tensor("M"), out = c.tensor("out");
  c.requireNumel("out", 1);
  c.enqueue([=](Backend& be) { orthornn::orthogonalityError(be, M.dtype, M.shape[0], M.data(), out.data(), *ws); });
}

void reorthonormalize(Call& c) {
  WorkspaceRef ws = c.workspace("workspace");
  const Tensor M = c.tensor("M");
  c.enqueue([=](Backend& be) { orthornn::reorthonormalize(be, M.dtype, M.shape[0], M.data(), *ws); });
}

}  // namespace bodies
}  // namespace orthornn::napi
