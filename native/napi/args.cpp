// Argument readers shared by the op bodies: describe(), workspaces and the fields of the model ops' plain objects.
#include <cmath>
#include <cstdio>

#include "binding.h"

namespace orthornn::napi {

std::string describe(const Napi::Value& v) {
  if (v.IsUndefined()) return "undefined";
  if (v.IsNull()) return "null";
  if (v.IsNumber()) {
    const double x = v.As<Napi::Number>().DoubleValue();
    if (std::isnan(x)) return "NaN";
    if (std::isinf(x)) return x > 0 ? "Infinity" : "-Infinity";
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.17g", x);
    return buf;
  }
  if (v.IsString()) return "a string";
  if (v.IsBoolean()) return "a boolean";
  if (v.IsExternal()) return "an external";
  if (v.IsFunction()) return "a function";
  if (v.IsArray()) return "an array";
  if (v.IsObject()) return "an object";
  return "a " + std::string(v.IsSymbol() ? "symbol" : v.IsBigInt() ? "bigint" : "value");
}

WorkspaceRef workspaceArg(Napi::Env env, const Napi::Value& v, const std::shared_ptr<ContextState>& ctx) {
  if (!hasTag(v, &kWorkspaceTag))
    throwError(env, ErrorCode::Type, "argument 'workspace' must be a workspace from createWorkspace(), got " + describe(v));
  const auto* handle = v.As<Napi::External<WorkspaceHandle>>().Data();
  std::shared_ptr<ContextState> owner = handle ? handle->owner.lock() : nullptr;
  if (!handle || !handle->ws || !owner || owner->disposed)
    throwError(env, ErrorCode::Disposed, "argument 'workspace': its context has been disposed");
  if (owner != ctx)
    throwError(env, ErrorCode::Range,
               "argument 'workspace' must belong to the context it is used with, got a workspace of another context (" +
                   owner->core->backend()->device() + ")");
  return handle->ws;
}

Napi::Value fieldOf(Napi::Env env, const Napi::Object& o, const char* key, const char* what) {
  try {
    return o.Get(key);
  } catch (const Napi::Error& e) {
    const std::string thrown = thrownMessage(env, e);
    throwError(env, ErrorCode::Type, std::string("argument '") + what + "." + key + "' could not be read: its getter threw" +
                                         (thrown.empty() ? std::string() : ": " + thrown));
  }
}

double numberField(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = fieldOf(env, o, key);
  if (!v.IsNumber()) throwError(env, ErrorCode::Type, std::string("config.") + key + " must be a number, got " + describe(v));
  return v.As<Napi::Number>().DoubleValue();
}

int64_t sizeField(Napi::Env env, const Napi::Object& o, const char* key) {
  const double x = numberField(env, o, key);
  // BLAS and LAPACK take int dimensions; products of two sizes stay far inside int64.
  if (!(x >= 1 && x <= 2147483647.0 && std::floor(x) == x))
    throwError(env, ErrorCode::Range, std::string("config.") + key + " must be a positive integer below 2^31, got " +
                                          describe(Napi::Number::New(env, x)));
  return int64_t(x);
}

std::string stringField(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = fieldOf(env, o, key);
  if (!v.IsString()) throwError(env, ErrorCode::Type, std::string("config.") + key + " must be a string");
  return v.As<Napi::String>();
}

bool booleanField(Napi::Env env, const Napi::Object& o, const char* key) {
  Napi::Value v = fieldOf(env, o, key);
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
  Napi::Value v = fieldOf(env, o, key, what ? what : "object");
  if (v.IsUndefined() || v.IsNull()) return Tensor{};
  const std::string name = what ? std::string(what) + "." + key : std::string(key);
  return TensorWrap::From(env, v, name)->tensor(env, &ctx, name.c_str());
}

void tensorFields(Napi::Env env, const ContextState& ctx, const Napi::Object& o, const char* what, TensorFields fields) {
  for (const auto& [key, place] : fields) *place = tensorField(env, ctx, o, key, what);
}

bool activationNamed(const std::string& name, Activation& out) {
  if (name == "tanh") out = Activation::Tanh;
  else if (name == "relu") out = Activation::Relu;
  else if (name == "identity") out = Activation::Identity;
  else return false;
  return true;
}

std::optional<Tensor> present(const Tensor& t) {
  if (!t.storage) return std::nullopt;
  return t;
}

}  // namespace orthornn::napi
