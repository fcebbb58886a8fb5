// The only headers that know about Node. Shared by the files of native/napi.
#pragma once
#include <napi.h>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "../core/backend.h"
#include "../core/context.h"
#include "../core/elman.h"  // Loss
#include "../core/error.h"
#include "../core/tensor.h"
#include "../core/workspace.h"

namespace orthornn::napi {

class ContextWrap;
class TensorWrap;

// Per-environment state (worker threads each get their own).
struct AddonData {
  std::map<ErrorCode, Napi::FunctionReference> errorClasses;
  Napi::FunctionReference tensorClass;
  Napi::FunctionReference contextClass;
  std::set<ContextWrap*> contexts;
};

AddonData& addonData(Napi::Env env);
Napi::Error makeError(Napi::Env env, ErrorCode code, const std::string& message);
[[noreturn]] void throwError(Napi::Env env, ErrorCode code, const std::string& message);

// What a context and its tensors share; outlives the JS Context object while tensors live.
struct ContextState {
  std::unique_ptr<Context> core;
  std::set<TensorWrap*> tensors;  // JS-thread only; to invalidate children on dispose
  std::vector<std::weak_ptr<Workspace>> workspaces;  // freed with the context too
  bool disposed = false;
  Napi::ThreadSafeFunction tsfn;
  size_t pending = 0;  // awaits not yet settled
};

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Create(Napi::Env env, std::shared_ptr<ContextState> ctx, Tensor tensor);
  static bool Is(Napi::Env env, const Napi::Value& v);
  explicit TensorWrap(const Napi::CallbackInfo& info);
  ~TensorWrap() override;
  void Finalize(Napi::BasicEnv env) override;

  // Throws a clear JS error when disposed or owned by another context.
  const Tensor& tensor(Napi::Env env, const ContextState* ctx, const char* argName) const;
  void release(Napi::BasicEnv env);

 private:
  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value DType(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value Bytes(const Napi::CallbackInfo& info);
  void Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<ContextState> ctx_;
  std::optional<Tensor> tensor_;
  std::vector<int64_t> shape_;  // kept after dispose for error messages
  orthornn::DType dtype_ = orthornn::DType::F32;
  std::string device_;
  int64_t externalBytes_ = 0;
};

Napi::Function DefineContext(Napi::Env env);
void shutdownContexts(Napi::Env env);

// For op bindings that live outside context_wrap.cpp (the models): functions exported on
// the module take the NativeContext as their first argument.
std::shared_ptr<ContextState> contextArg(const Napi::CallbackInfo& info, size_t i);
Tensor tensorArg(const Napi::CallbackInfo& info, const ContextState& ctx, size_t i, const char* name);
std::optional<Tensor> optionalTensorArg(const Napi::CallbackInfo& info, const ContextState& ctx, size_t i, const char* name);
void enqueueOn(Napi::Env env, ContextState& ctx, const char* op, Context::Work work);
// Creates a tensor of the context (uninitialised), returned to JS as a NativeTensor.
Napi::Object newTensor(Napi::Env env, const std::shared_ptr<ContextState>& ctx, std::vector<int64_t> shape, DType dtype,
                       Tensor* out);

// Reading the plain-object arguments of the model bindings (native/napi/args.cpp).
using WorkspaceRef = std::shared_ptr<Workspace>;  // what createWorkspace() wraps in an External
WorkspaceRef workspaceArg(const Napi::CallbackInfo& info, size_t i);
Napi::Object objectArg(const Napi::CallbackInfo& info, size_t i, const char* name);
double numberField(Napi::Env env, const Napi::Object& o, const char* key);
int64_t sizeField(Napi::Env env, const Napi::Object& o, const char* key);  // a positive integer
std::string stringField(Napi::Env env, const Napi::Object& o, const char* key);
bool booleanField(Napi::Env env, const Napi::Object& o, const char* key);
// config.loss: 'crossEntropy' or 'mse'.
Loss lossField(Napi::Env env, const Napi::Object& o);
// The tensor at o[key] (empty when absent); errors name it `what.key`.
Tensor tensorField(Napi::Env env, const ContextState& ctx, const Napi::Object& o, const char* key,
                   const char* what = nullptr);

// Runs a native validation on the JS thread, so its Range/Type errors throw synchronously.
template <typename F>
void checkNow(Napi::Env env, F&& f) {
  try {
    f();
  } catch (const Error& e) {
    throwError(env, e.code(), e.what());
  }
}

// Registered by Init (native/napi/models.cpp).
void registerModelBindings(Napi::Env env, Napi::Object exports);
void registerLstmBindings(Napi::Env env, Napi::Object exports);  // native/napi/lstm.cpp

}  // namespace orthornn::napi
