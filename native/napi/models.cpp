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
  if (!activationNamed(act, c.activation))
    throwError(env, ErrorCode::Range, "config.activation must be 'tanh', 'relu' or 'identity', got '" + act + "'");
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
  tensorFields(env, ctx, o, nullptr,
               {{"W_in", &p.W_in}, {"b", &p.b}, {"U", &p.U}, {"V", &p.V}, {"p", &p.p}, {"W", &p.W}, {"W_out", &p.W_out},
                {"c", &p.c}, {"h0", &p.h0}});
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
  ElmanBatch batch;
  Tensor init;
  tensorFields(env, ctx, c.object("batch"), nullptr,
               {{"x", &batch.x}, {"targets", &batch.targets}, {"weights", &batch.weights}, {"initialState", &init}});
  batch.initialState = present(init);
  ElmanGradients grads;
  tensorFields(env, ctx, c.object("grads"), nullptr,
               {{"loss", &grads.loss}, {"W_in", &grads.W_in}, {"b", &grads.b}, {"U", &grads.U}, {"V", &grads.V},
                {"p", &grads.p}, {"W", &grads.W}, {"W_out", &grads.W_out}, {"c", &grads.c}, {"h0", &grads.h0},
                {"initialState", &grads.initialState}, {"hiddenGradientNorms", &grads.hiddenGradientNorms},
                {"frameU", &grads.frameU}, {"frameV", &grads.frameV}});
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
