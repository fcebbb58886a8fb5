// Bindings of the model math (native/core/elman, orthogonal): module functions taking the
// NativeContext first. Objects of tensors are read into plain C++ structs here, on the JS
// thread; the queued work sees only those.
#include <cmath>
#include <algorithm>

#include "../core/elman.h"
#include "../core/orthogonal.h"
#include "binding.h"

namespace orthornn::napi {
namespace {

// createWorkspace(context): scratch memory a model keeps across steps.
// The External is type-tagged and records its context: workspaceArg() refuses it anywhere
// else, since its buffers belong to that context's device and worker.
Napi::Value CreateWorkspace(const Napi::CallbackInfo& info) {
  auto ctx = contextArg(info, 0);
  auto handle = std::make_unique<WorkspaceHandle>();
  handle->ws = std::make_shared<Workspace>(ctx->core->backend());
  handle->owner = ctx;
  auto& list = ctx->workspaces;
  list.erase(std::remove_if(list.begin(), list.end(), [](const std::weak_ptr<Workspace>& w) { return w.expired(); }), list.end());
  list.push_back(handle->ws);
  auto ext = Napi::External<WorkspaceHandle>::New(info.Env(), handle.get(), [](Napi::BasicEnv, WorkspaceHandle* p) { delete p; });
  handle.release();
  ext.TypeTag(&kWorkspaceTag);
  return ext;
}

// releaseWorkspace(context, workspace): frees its buffers once the work queued before is done.
Napi::Value ReleaseWorkspace(const Napi::CallbackInfo& info) {
  auto ctx = contextArg(info, 0);
  WorkspaceRef ws = workspaceArg(info, 1, ctx);
  enqueueOn(info.Env(), *ctx, "releaseWorkspace", [ws](Backend&) { ws->release(); });
  return info.Env().Undefined();
}

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

// elmanLossAndGradients(context, workspace, config, params, batch, grads)
Napi::Value ElmanLossAndGradients(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto ctx = contextArg(info, 0);
  WorkspaceRef ws = workspaceArg(info, 1, ctx);
  ElmanConfig cfg = parseElmanConfig(env, objectArg(info, 2, "config"));
  ElmanParameters params = parseElmanParameters(env, *ctx, objectArg(info, 3, "params"));
  Napi::Object b = objectArg(info, 4, "batch");
  ElmanBatch batch;
  batch.x = tensorField(env, *ctx, b, "x");
  batch.targets = tensorField(env, *ctx, b, "targets");
  batch.weights = tensorField(env, *ctx, b, "weights");
  Tensor init = tensorField(env, *ctx, b, "initialState");
  if (init.storage) batch.initialState = init;
  Napi::Object go = objectArg(info, 5, "grads");
  ElmanGradients grads;
  grads.loss = tensorField(env, *ctx, go, "loss");
  grads.W_in = tensorField(env, *ctx, go, "W_in");
  grads.b = tensorField(env, *ctx, go, "b");
  grads.U = tensorField(env, *ctx, go, "U");
  grads.V = tensorField(env, *ctx, go, "V");
  grads.p = tensorField(env, *ctx, go, "p");
  grads.W = tensorField(env, *ctx, go, "W");
  grads.W_out = tensorField(env, *ctx, go, "W_out");
  grads.c = tensorField(env, *ctx, go, "c");
  grads.h0 = tensorField(env, *ctx, go, "h0");
  grads.initialState = tensorField(env, *ctx, go, "initialState");
  grads.hiddenGradientNorms = tensorField(env, *ctx, go, "hiddenGradientNorms");
  grads.frameU = tensorField(env, *ctx, go, "frameU");
  grads.frameV = tensorField(env, *ctx, go, "frameV");
  checkNow(env, [&] { validateElman(cfg, params, batch); });
  enqueueOn(env, *ctx, "elmanLossAndGradients", [=](Backend& be) mutable {
    elmanLossAndGradients(be, cfg, params, batch, grads, *ws);
  });
  return env.Undefined();
}

// elmanForward(context, workspace, config, params, x, initialState | null, outputs, finalState)
Napi::Value ElmanForward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto ctx = contextArg(info, 0);
  WorkspaceRef ws = workspaceArg(info, 1, ctx);
  ElmanConfig cfg = parseElmanConfig(env, objectArg(info, 2, "config"));
  ElmanParameters params = parseElmanParameters(env, *ctx, objectArg(info, 3, "params"));
  Tensor x = tensorArg(info, *ctx, 4, "x");
  std::optional<Tensor> init = optionalTensorArg(info, *ctx, 5, "initialState");
  Tensor outputs = tensorArg(info, *ctx, 6, "outputs"), finalState = tensorArg(info, *ctx, 7, "finalState");
  checkNow(env, [&] {
    ElmanBatch b;
    b.x = x;
    b.initialState = init;
    validateElman(cfg, params, b);
  });
  enqueueOn(env, *ctx, "elmanForward", [=](Backend& be) mutable {
    elmanForward(be, cfg, params, x, init, outputs, finalState, *ws);
  });
  return env.Undefined();
}

Tensor squareArg(const Napi::CallbackInfo& info, const ContextState& ctx, size_t i, const char* name) {
  Tensor t = tensorArg(info, ctx, i, name);
  if (!isFloat(t.dtype) || t.shape.size() != 2 || t.shape[0] != t.shape[1])
    throwError(info.Env(), !isFloat(t.dtype) ? ErrorCode::Type : ErrorCode::Range,
               std::string("argument '") + name + "' must be a square float32/float64 matrix, got " + dtypeName(t.dtype) +
                   " " + shapeString(t.shape));
  return t;
}

// cayleyStep(context, workspace, M, G, lr) and cayleyStepInFrame(context, workspace, M, F,
// lr): M updated in place.
template <bool kInFrame>
Napi::Value CayleyStep(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto ctx = contextArg(info, 0);
  WorkspaceRef ws = workspaceArg(info, 1, ctx);
  const char* gName = kInFrame ? "F" : "G";
  Tensor M = squareArg(info, *ctx, 2, "M"), G = squareArg(info, *ctx, 3, gName);
  if (G.dtype != M.dtype || G.shape != M.shape)
    throwError(env, ErrorCode::Range, std::string("argument '") + gName + "' must match 'M' (" + dtypeName(M.dtype) + " " + shapeString(M.shape) + ")");
  if (!info[4].IsNumber()) throwError(env, ErrorCode::Type, "argument 'lr' must be a number, got " + describe(info[4]));
  const double lr = info[4].As<Napi::Number>().DoubleValue();
  enqueueOn(env, *ctx, kInFrame ? "cayleyStepInFrame" : "cayleyStep", [=](Backend& be) {
    if (kInFrame) cayleyStepInFrame(be, M.dtype, M.shape[0], M.data(), G.data(), lr, *ws);
    else cayleyStep(be, M.dtype, M.shape[0], M.data(), G.data(), lr, *ws);
  });
  return env.Undefined();
}

// orthogonalityError(context, workspace, M, out)
Napi::Value OrthogonalityError(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto ctx = contextArg(info, 0);
  WorkspaceRef ws = workspaceArg(info, 1, ctx);
  Tensor M = squareArg(info, *ctx, 2, "M"), out = tensorArg(info, *ctx, 3, "out");
  if (out.dtype != M.dtype || out.numel() != 1) throwError(env, ErrorCode::Range, "argument 'out' must be one element of M's dtype");
  enqueueOn(env, *ctx, "orthogonalityError", [=](Backend& be) { orthogonalityError(be, M.dtype, M.shape[0], M.data(), out.data(), *ws); });
  return env.Undefined();
}

// reorthonormalize(context, workspace, M)
Napi::Value Reorthonormalize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto ctx = contextArg(info, 0);
  WorkspaceRef ws = workspaceArg(info, 1, ctx);
  Tensor M = squareArg(info, *ctx, 2, "M");
  enqueueOn(env, *ctx, "reorthonormalize", [=](Backend& be) { reorthonormalize(be, M.dtype, M.shape[0], M.data(), *ws); });
  return env.Undefined();
}

}  // namespace

void registerModelBindings(Napi::Env env, Napi::Object exports) {
  exports.Set("createWorkspace", Napi::Function::New<guarded<CreateWorkspace>>(env, "createWorkspace"));
  exports.Set("releaseWorkspace", Napi::Function::New<guarded<ReleaseWorkspace>>(env, "releaseWorkspace"));
  exports.Set("elmanLossAndGradients", Napi::Function::New<guarded<ElmanLossAndGradients>>(env, "elmanLossAndGradients"));
  exports.Set("elmanForward", Napi::Function::New<guarded<ElmanForward>>(env, "elmanForward"));
  exports.Set("cayleyStep", Napi::Function::New<guarded<CayleyStep<false>>>(env, "cayleyStep"));
  exports.Set("cayleyStepInFrame", Napi::Function::New<guarded<CayleyStep<true>>>(env, "cayleyStepInFrame"));
  exports.Set("orthogonalityError", Napi::Function::New<guarded<OrthogonalityError>>(env, "orthogonalityError"));
  exports.Set("reorthonormalize", Napi::Function::New<guarded<Reorthonormalize>>(env, "reorthonormalize"));
}

}  // namespace orthornn::napi
