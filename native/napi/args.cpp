// Argument readers shared by the module-function bindings (models.cpp, lstm.cpp).
#include <cmath>

#include "binding.h"

namespace orthornn::napi {

WorkspaceRef workspaceArg(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsExternal()) throwError(info.Env(), ErrorCode::Type, "argument 'workspace' must come from createWorkspace()");
  return *info[i].As<Napi::External<WorkspaceRef>>().Data();
}

Napi::Object objectArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsObject()) throwError(info.Env(), ErrorCode::Type, std::string("argument '") + name + "' must be an object");
  return info[i].As<Napi::Object>();
}

double numberField(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throwError(env, ErrorCode::Type, std::string("config.") + key + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

int64_t sizeField(Napi::Env env, const Napi::Object& o, const char* key) {
  const double x = numberField(env, o, key);
  if (!(x >= 1 && x <= 9.0e15 && std::floor(x) == x))
    throwError(env, ErrorCode::Range, std::string("config.") + key + " must be a positive integer, got " + std::to_string(x));
  return int64_t(x);
}

std::string stringField(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsString()) throwError(env, ErrorCode::Type, std::string("config.") + key + " must be a string");
  return v.As<Napi::String>();
}

bool booleanField(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsBoolean()) throwError(env, ErrorCode::Type, std::string("config.") + key + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

Loss lossField(Napi::Env env, const Napi::Object& o) {
  const std::string loss = stringField(env, o, "loss");
  if (loss == "crossEntropy") return Loss::CrossEntropy;
  if (loss == "mse") return Loss::MeanSquaredError;
  throwError(env, ErrorCode::Range, "config.loss must be 'crossEntropy' or 'mse', got '" + loss + "'");
}

Tensor tensorField(Napi::Env env, const ContextState& ctx, const Napi::Object& o, const char* key, const char* what) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return Tensor{};
  const std::string name = what ? std::string(what) + "." + key : std::string(key);
  if (!TensorWrap::Is(env, v)) throwError(env, ErrorCode::Type, "'" + name + "' must be a tensor");
  return TensorWrap::Unwrap(v.As<Napi::Object>())->tensor(env, &ctx, name.c_str());
}

}  // namespace orthornn::napi
