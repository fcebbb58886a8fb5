// Module entry: error classes handed over by lib/native.ts, backend listing, memory
// accounting, and the environment cleanup that stops every context's worker.
#include "binding.h"

namespace orthornn::napi {

AddonData& addonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

Napi::Error makeError(Napi::Env env, ErrorCode code, const std::string& message) {
  Napi::Error err;
  if (code == ErrorCode::Type) {
    err = Napi::TypeError::New(env, message);
  } else if (code == ErrorCode::Range) {
    err = Napi::RangeError::New(env, message);
  } else {
    AddonData& data = addonData(env);
    auto it = data.errorClasses.find(code);
    if (it == data.errorClasses.end()) {
      err = Napi::Error::New(env, message);
    } else {
      Napi::Object obj = it->second.New({Napi::String::New(env, message)});
      err = Napi::Error(env, obj);
    }
  }
  err.Set("code", Napi::String::New(env, errorCodeName(code)));
  return err;
}

void throwError(Napi::Env env, ErrorCode code, const std::string& message) {
  throw makeError(env, code, message);
}

namespace {

// setErrorClasses({ ERR_ORTHORNN_DISPOSED: DisposedError, ... })
void SetErrorClasses(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throwError(env, ErrorCode::Type, "setErrorClasses(classes: object)");
  Napi::Object classes = info[0].As<Napi::Object>();
  AddonData& data = addonData(env);
  for (int c = int(ErrorCode::Type); c <= int(ErrorCode::Internal); ++c) {
    ErrorCode code = static_cast<ErrorCode>(c);
    Napi::Value v = classes.Get(errorCodeName(code));
    if (v.IsFunction()) data.errorClasses[code] = Napi::Persistent(v.As<Napi::Function>());
  }
}

Napi::Value Backends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<BackendInfo> list = listBackends();
  Napi::Array out = Napi::Array::New(env, list.size());
  for (size_t i = 0; i < list.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", list[i].name);
    o.Set("compiled", list[i].compiled);
    o.Set("available", list[i].available);
    o.Set("device", list[i].device);
    o.Set("deviceCount", list[i].deviceCount);
    if (!list[i].reason.empty()) o.Set("reason", list[i].reason);
    out.Set(uint32_t(i), o);
  }
  return out;
}

Napi::Value Memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::vector<MemoryStats> stats = memoryStats();
  Napi::Array out = Napi::Array::New(env, stats.size());
  for (size_t i = 0; i < stats.size(); ++i) {
    Napi::Object o = Napi::Object::New(env);
    o.Set("device", stats[i].device);
    o.Set("tensors", double(stats[i].tensors));
    o.Set("bytes", double(stats[i].bytes));
    out.Set(uint32_t(i), o);
  }
  return out;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);  // deleted by Node when the environment ends
  Napi::Function tensor = TensorWrap::Define(env);
  data->tensorClass = Napi::Persistent(tensor);
  exports.Set("NativeTensor", tensor);
  Napi::Function context = DefineContext(env);
  data->contextClass = Napi::Persistent(context);
  exports.Set("NativeContext", context);
  registerModelBindings(env, exports);
  registerLstmBindings(env, exports);
  exports.Set("setErrorClasses", Napi::Function::New<SetErrorClasses>(env, "setErrorClasses"));
  exports.Set("backends", Napi::Function::New<Backends>(env, "backends"));
  exports.Set("memory", Napi::Function::New<Memory>(env, "memory"));
#ifdef ORTHORNN_WITH_CUDA
  exports.Set("cudaCompiled", true);
#else
  exports.Set("cudaCompiled", false);
#endif
  // A worker thread or process exit: stop every context's worker before the env is gone.
  env.AddCleanupHook([env] { shutdownContexts(env); });
  return exports;
}

}  // namespace orthornn::napi

static Napi::Object InitOrthornn(Napi::Env env, Napi::Object exports) { return orthornn::napi::Init(env, exports); }

NODE_API_MODULE(orthornn, InitOrthornn)
