// Module entry: error classes handed over by lib/native.ts, backend listing, memory
// accounting, and the environment cleanup that stops every context's worker.
#include <algorithm>

#include "binding.h"

namespace orthornn::napi {

AddonData& addonData(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

// Random 128-bit values: one per kind of object the addon hands to JS.
const napi_type_tag kContextTag = {0x6f7274686f726e6eULL, 0x2d636f6e74657874ULL};
const napi_type_tag kTensorTag = {0x6f7274686f726e6eULL, 0x2d74656e736f7231ULL};
const napi_type_tag kWorkspaceTag = {0x6f7274686f726e6eULL, 0x2d776f726b737063ULL};

bool hasTag(const Napi::Value& v, const napi_type_tag* tag) {
  if (v.IsEmpty() || !(v.IsObject() || v.IsExternal())) return false;
  bool result = false;
  if (napi_check_object_type_tag(v.Env(), v, tag, &result) != napi_ok) return false;
  return result;
}

namespace {

// A plain Error with the code, for when the registered class cannot make one.
Napi::Error plainError(Napi::Env env, ErrorCode code, const std::string& message, napi_value cause = nullptr) noexcept {
  napi_value msg = nullptr, err = nullptr, codeValue = nullptr;
  napi_create_string_utf8(env, message.c_str(), message.size(), &msg);
  if (code == ErrorCode::Type) napi_create_type_error(env, nullptr, msg, &err);
  else if (code == ErrorCode::Range) napi_create_range_error(env, nullptr, msg, &err);
  else napi_create_error(env, nullptr, msg, &err);
  const char* name = errorCodeName(code);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &codeValue);
  if (err) {
    // A fresh Error has no accessors that could throw; set_named_property cannot fail here.
    napi_set_named_property(env, err, "code", codeValue);
    if (cause) napi_set_named_property(env, err, "cause", cause);
  }
  return Napi::Error(env, err);
}

// Clears an exception left pending by a failed N-API call, returning it (or nullptr).
napi_value takePendingException(napi_env env) {
  bool pending = false;
  napi_value e = nullptr;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) napi_get_and_clear_last_exception(env, &e);
  return e;
}

}  // namespace

Napi::Error makeError(Napi::Env env, ErrorCode code, const std::string& message) noexcept {
  if (code == ErrorCode::Type || code == ErrorCode::Range) return plainError(env, code, message);
  AddonData& data = addonData(env);
  auto it = data.errorClasses.find(code);
  if (it == data.errorClasses.end() || it->second.IsEmpty()) return plainError(env, code, message);
  // The registered class is user code: its constructor may throw, return something odd, or
  // make objects whose `code` cannot be set. Raw N-API calls, so nothing here throws.
  napi_value cls = it->second.Value(), msg = nullptr, obj = nullptr, codeValue = nullptr;
  napi_create_string_utf8(env, message.c_str(), message.size(), &msg);
  if (napi_new_instance(env, cls, 1, &msg, &obj) != napi_ok || obj == nullptr) {
    napi_value thrown = takePendingException(env);
    return plainError(env, code, message, thrown);
  }
  bool isError = false;
  if (napi_is_error(env, obj, &isError) != napi_ok || !isError) return plainError(env, code, message);
  const char* name = errorCodeName(code);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &codeValue);
  napi_value readBack = nullptr;
  bool same = false;
  if (napi_set_named_property(env, obj, "code", codeValue) != napi_ok ||
      napi_get_named_property(env, obj, "code", &readBack) != napi_ok ||
      napi_strict_equals(env, readBack, codeValue, &same) != napi_ok || !same) {
    napi_value thrown = takePendingException(env);
    return plainError(env, code, message, thrown);
  }
  return Napi::Error(env, obj);
}

void throwError(Napi::Env env, ErrorCode code, const std::string& message) {
  throw CodedError(makeError(env, code, message));
}

std::string thrownMessage(Napi::Env env, const Napi::Error& e) noexcept {
  // The exception was already taken from the engine when the Napi::Error was made. Its
  // message, if it has a readable string one, is quoted; reading it may run a getter.
  std::string what;
  try {
    Napi::Value v = e.Value();
    if (v.IsObject()) {
      napi_value m = nullptr;
      napi_valuetype t = napi_undefined;
      if (napi_get_named_property(env, v, "message", &m) == napi_ok && napi_typeof(env, m, &t) == napi_ok &&
          t == napi_string) {
        size_t len = 0;
        if (napi_get_value_string_utf8(env, m, nullptr, 0, &len) == napi_ok) {
          std::string buf(std::min<size_t>(len, 200) + 1, '\0');
          napi_get_value_string_utf8(env, m, buf.data(), buf.size(), &len);
          what = buf.c_str();
        }
      }
    }
  } catch (...) {
  }
  takePendingException(env);
  return what;
}

bool isCoded(Napi::Env env, const Napi::Error& e) noexcept {
  bool coded = false;
  try {
    Napi::Value v = e.Value();
    napi_valuetype t = napi_undefined;
    napi_value code = nullptr;
    if (v.IsObject() && !v.IsEmpty() && napi_get_named_property(env, v, "code", &code) == napi_ok &&
        napi_typeof(env, code, &t) == napi_ok && t == napi_string) {
      char buf[16] = {0};
      size_t len = 0;
      if (napi_get_value_string_utf8(env, code, buf, sizeof buf, &len) == napi_ok)
        coded = std::string(buf).rfind("ERR_ORTHORNN_", 0) == 0;
    }
  } catch (...) {
  }
  takePendingException(env);
  return coded;
}

Napi::Error foreignError(Napi::Env env, const Napi::Error& e) noexcept {
  napi_value original = nullptr;
  try {
    original = e.Value();
  } catch (...) {
    takePendingException(env);
  }
  const std::string what = thrownMessage(env, e);
  return plainError(env, ErrorCode::Type,
                    "an argument could not be read (a getter, proxy trap or conversion threw" +
                        (what.empty() ? std::string(")") : ": " + what + ")"),
                    original);
}


namespace {

// The exported constructors are facades over the classes: calling one without `new` is a coded
// TypeError (node-addon-api's own check throws an uncoded one), and NativeTensor can never be
// constructed from JS. The facade's prototype is the class's, so instanceof still works.
Napi::Value ConstructContext(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.NewTarget().IsEmpty() || info.NewTarget().IsUndefined())
    throwError(env, ErrorCode::Type, "NativeContext must be called with `new`");
  std::vector<napi_value> args;
  for (size_t i = 0; i < info.Length(); ++i) args.push_back(info[i]);
  return addonData(env).contextClass.New(args);
}

Napi::Value ConstructTensor(const Napi::CallbackInfo& info) {
  throwError(info.Env(), ErrorCode::Type, "tensors are created through a Context, not with `new`");
}

Napi::Function facade(Napi::Env env, Napi::Function cls, const char* name,
                      Napi::Value (*construct)(const Napi::CallbackInfo&)) {
  Napi::Function f = construct == ConstructContext ? Napi::Function::New<guarded<ConstructContext>>(env, name)
                                                   : Napi::Function::New<guarded<ConstructTensor>>(env, name);
  f.Set("prototype", cls.Get("prototype"));
  return f;
}

// setErrorClasses({ ERR_ORTHORNN_DISPOSED: DisposedError, ... })
void SetErrorClasses(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throwError(env, ErrorCode::Type, "argument 'classes' must be an object of error classes by code");
  Napi::Object classes = info[0].As<Napi::Object>();
  AddonData& data = addonData(env);
  for (int c = int(ErrorCode::Type); c <= int(ErrorCode::Internal); ++c) {
    ErrorCode code = static_cast<ErrorCode>(c);
    Napi::Value v = fieldOf(env, classes, errorCodeName(code), "classes");
    if (v.IsFunction()) data.errorClasses[code] = Napi::Persistent(v.As<Napi::Function>());
  }
}

Napi::Value SetErrorClassesValue(const Napi::CallbackInfo& info) {
  SetErrorClasses(info);
  return info.Env().Undefined();
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
  exports.Set("NativeTensor", facade(env, tensor, "NativeTensor", ConstructTensor));
  Napi::Function context = DefineContext(env);
  data->contextClass = Napi::Persistent(context);
  exports.Set("NativeContext", facade(env, context, "NativeContext", ConstructContext));
  exports.Set("setErrorClasses", Napi::Function::New<guarded<SetErrorClassesValue>>(env, "setErrorClasses"));
  exports.Set("backends", Napi::Function::New<guarded<Backends>>(env, "backends"));
  exports.Set("memory", Napi::Function::New<guarded<Memory>>(env, "memory"));
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
