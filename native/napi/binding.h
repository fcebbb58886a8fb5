// The only headers that know about Node. Shared by the files of native/napi.
#pragma once
#include <napi.h>

#include <map>
#include <memory>
#include <new>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "../core/backend.h"
#include "../core/context.h"
#include "../core/elman.h"  // Loss
#include "../core/error.h"
#include "../core/ops.gen.h"
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
// A JS error of the class registered for `code` (TypeError, RangeError, or the class handed
// to setErrorClasses), with `code` set. Never throws: a registered class whose constructor
// throws, or whose instances refuse the code, gives way to a plain Error carrying both.
Napi::Error makeError(Napi::Env env, ErrorCode code, const std::string& message) noexcept;

// What throwError throws: a JS error that already carries an ERR_ORTHORNN_ code, so guard()
// lets it through unchanged.
class CodedError : public Napi::Error {
 public:
  explicit CodedError(const Napi::Error& e) : Napi::Error(e) {}
};
[[noreturn]] void throwError(Napi::Env env, ErrorCode code, const std::string& message);

// Objects are recognised by N-API type tags, never by their prototype chain (which JS can
// rewrite): a tag check comes before every unwrap.
extern const napi_type_tag kContextTag;
extern const napi_type_tag kTensorTag;
extern const napi_type_tag kWorkspaceTag;
bool hasTag(const Napi::Value& v, const napi_type_tag* tag);
// A short description of a JS value for error messages ("undefined", "NaN", "a string", ...).
std::string describe(const Napi::Value& v);

// Runs a binding body and turns whatever it throws into a coded JS error: orthornn::Error
// keeps its code, bad_alloc is OutOfMemory, other C++ exceptions Internal, and a JS exception
// the body ran into (a getter or proxy trap of an argument that threw) a TypeError saying so,
// with the original as `cause`. No C++ exception other than a CodedError leaves it.
Napi::Error foreignError(Napi::Env env, const Napi::Error& e) noexcept;
// Whether a caught JS exception already carries an ERR_ORTHORNN_ code (one of ours that went
// through JS, e.g. out of a constructor the binding called).
bool isCoded(Napi::Env env, const Napi::Error& e) noexcept;
// The message of a caught JS exception ("" when it has no readable string message).
std::string thrownMessage(Napi::Env env, const Napi::Error& e) noexcept;
template <typename F>
auto guard(Napi::Env env, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const CodedError&) {
    throw;
  } catch (const Napi::Error& e) {
    if (isCoded(env, e)) throw CodedError(e);
    throw CodedError(foreignError(env, e));
  } catch (const Error& e) {
    throw CodedError(makeError(env, e.code(), e.what()));
  } catch (const std::bad_alloc&) {
    throw CodedError(makeError(env, ErrorCode::OutOfMemory, "out of memory"));
  } catch (const std::exception& e) {
    throw CodedError(makeError(env, ErrorCode::Internal, std::string("internal error: ") + e.what()));
  } catch (...) {
    throw CodedError(makeError(env, ErrorCode::Internal, "internal error: an unknown native exception"));
  }
}
// A module function whose body runs under guard().
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] { return F(info); });
}

// The ops a context is given between beginSequence() and endSequence() (Context.sequence),
// queued at the end as one task. The key names each op and every argument it was given (a
// tensor's address, size, dtype and shape; numbers, flags; a workspace's address): a backend may
// replay the task as one graph while the key and the workspaces' buffers stay the same
// (Backend::runCall, Fused::OpSequence). An op whose arguments the key cannot name (an object
// of tensors) makes the sequence run op by op.
struct Recording {
  std::vector<std::pair<std::string, Context::Work>> steps;
  std::vector<uint64_t> key;
  std::vector<std::shared_ptr<Workspace>> workspaces;
  bool replayable = true;
};

// What a context and its tensors share; outlives the JS Context object while tensors live.
struct ContextState {
  std::unique_ptr<Context> core;
  std::set<TensorWrap*> tensors;  // JS-thread only; to invalidate children on dispose
  std::vector<std::weak_ptr<Workspace>> workspaces;  // freed with the context too
  bool disposed = false;
  Napi::ThreadSafeFunction tsfn;
  size_t pending = 0;  // awaits not yet settled
  std::optional<Recording> recording;  // between beginSequence() and endSequence()
};

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  static Napi::Object Create(Napi::Env env, std::shared_ptr<ContextState> ctx, Tensor tensor);
  static bool Is(Napi::Env env, const Napi::Value& v);
  // The TensorWrap behind v, or a coded TypeError naming `argName`.
  static TensorWrap* From(Napi::Env env, const Napi::Value& v, const std::string& argName);
  explicit TensorWrap(const Napi::CallbackInfo& info);
  ~TensorWrap() override;
  void Finalize(Napi::BasicEnv env) override;

  // Throws a clear JS error when disposed or owned by another context.
  const Tensor& tensor(Napi::Env env, const ContextState* ctx, const char* argName) const;
  void release(Napi::BasicEnv env);

  // Public for the type-checked dispatch in tensor_wrap.cpp.
  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value DType(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value Bytes(const Napi::CallbackInfo& info);
  Napi::Value DisposeValue(const Napi::CallbackInfo& info);

 private:
  std::shared_ptr<ContextState> ctx_;
  std::optional<Tensor> tensor_;
  std::vector<int64_t> shape_;  // kept after dispose for error messages
  orthornn::DType dtype_ = orthornn::DType::F32;
  std::string device_;
  int64_t externalBytes_ = 0;
};

Napi::Function DefineContext(Napi::Env env);
void shutdownContexts(Napi::Env env);

Tensor tensorArg(const Napi::CallbackInfo& info, const ContextState& ctx, size_t i, const char* name);
// Queues `work` on the context, or records it in the sequence being recorded (not replayable:
// Call::enqueue records the ops whose arguments it knows).
void enqueueOn(Napi::Env env, ContextState& ctx, const char* op, Context::Work work);
// Queues what the sequence being recorded holds so far (op by op), and goes on recording: what
// is queued next (an await) then runs after it.
void flushRecording(Napi::Env env, ContextState& ctx);
// Queues a recorded sequence as one task (nothing when it is empty).
void queueRecording(Napi::Env env, ContextState& ctx, Recording recording);
// Creates a tensor of the context (uninitialised), returned to JS as a NativeTensor.
Napi::Object newTensor(Napi::Env env, const std::shared_ptr<ContextState>& ctx, std::vector<int64_t> shape, DType dtype,
                       Tensor* out);

// Reading the plain-object arguments of the model ops (native/napi/args.cpp).
using WorkspaceRef = std::shared_ptr<Workspace>;
// What createWorkspace() wraps in an External (tagged kWorkspaceTag): the workspace and the
// context it belongs to. Its buffers are that context's device memory and only that
// context's worker may touch them.
struct WorkspaceHandle {
  WorkspaceRef ws;
  std::weak_ptr<ContextState> owner;
};
// The workspace at info[i], refused (a coded error naming 'workspace') unless it was made
// by createWorkspace() for `ctx`.
WorkspaceRef workspaceArg(Napi::Env env, const Napi::Value& v, const std::shared_ptr<ContextState>& ctx);
// o[key]; a getter or proxy trap that throws becomes a coded TypeError naming `what.key`.
Napi::Value fieldOf(Napi::Env env, const Napi::Object& o, const char* key, const char* what = "config");
double numberField(Napi::Env env, const Napi::Object& o, const char* key);
int64_t sizeField(Napi::Env env, const Napi::Object& o, const char* key);  // a positive integer
std::string stringField(Napi::Env env, const Napi::Object& o, const char* key);
bool booleanField(Napi::Env env, const Napi::Object& o, const char* key);
// config.loss: 'crossEntropy' or 'mse'.
Loss lossField(Napi::Env env, const Napi::Object& o);
// The activation called `name` ('tanh', 'relu', 'identity') into `out`; false for another name.
bool activationNamed(const std::string& name, Activation& out);
// The tensor read from an optional field: none when it was absent.
std::optional<Tensor> present(const Tensor& t);
// The tensor at o[key] (empty when absent); errors name it `what.key`.
Tensor tensorField(Napi::Env env, const ContextState& ctx, const Napi::Object& o, const char* key,
                   const char* what = nullptr);
// Each named tensor field of o into its place (tensorField for each).
using TensorFields = std::initializer_list<std::pair<const char*, Tensor*>>;
void tensorFields(Napi::Env env, const ContextState& ctx, const Napi::Object& o, const char* what, TensorFields fields);

// Runs a native validation on the JS thread, so its Range/Type errors throw synchronously.
template <typename F>
void checkNow(Napi::Env env, F&& f) {
  try {
    f();
  } catch (const Error& e) {
    throwError(env, e.code(), e.what());
  } catch (const std::bad_alloc&) {
    throwError(env, ErrorCode::OutOfMemory, "out of memory");
  }
}

// One call of a bound op (native/ops.json): its arguments are read and checked against the
// op's slots when the Call is made (native/napi/call.cpp) — the kind of each, tensors of this
// context and live, the dtype and element-count rules, squareness — so an op's body starts
// from checked values and adds only the shape rules that are its own. Errors read
// "op: argument 'name' must be …, got …". Slots are named as in native/ops.json.
class Call {
 public:
  Call(const Napi::CallbackInfo& info, Op op, std::shared_ptr<ContextState> ctx);
  Napi::Env env() const { return env_; }
  const char* op() const { return spec_.name; }
  const std::shared_ptr<ContextState>& context() const { return ctx_; }

  const Tensor& tensor(const char* name) const;
  std::optional<Tensor> optionalTensor(const char* name) const;
  double number(const char* name) const;
  int64_t integer(const char* name) const;  // also seeds
  bool boolean(const char* name) const;
  Activation activation(const char* name) const;
  Napi::Object object(const char* name) const;
  const WorkspaceRef& workspace(const char* name) const;

  // "op: argument 'name' must be <expected>, got <got>" as a coded error.
  [[noreturn]] void fail(ErrorCode code, const char* name, const std::string& expected, const std::string& got) const;
  // Range error unless tensor `name` has n elements.
  void requireNumel(const char* name, int64_t n) const;
  // Queues the op's work on the context (an error later rejects the next await, naming the op).
  void enqueue(Context::Work work) const;

 private:
  struct Slot {
    std::optional<Tensor> tensor;
    double number = 0;
    bool flag = false;
    Activation activation = Activation::Tanh;
    Napi::Object object;
    WorkspaceRef workspace;
  };
  int index(const char* name, ArgKind kind) const;
  // "op: argument 'name' must have <count>, got N elements (shape …)".
  [[noreturn]] void failCount(const char* name, const std::string& count, const Tensor& t) const;
  void read(const Napi::CallbackInfo& info, int i);

  Napi::Env env_;
  const OpSpec& spec_;
  std::shared_ptr<ContextState> ctx_;
  std::vector<Slot> slots_;
};

// The bodies of the bound ops, one per entry of ORTHORNN_BOUND_OPS (native/napi/ops.cpp, the
// models' in models.cpp and lstm.cpp); NativeContext's methods call them with a checked Call.
namespace bodies {
#define ORTHORNN_DECLARE_BODY(E, name) void name(Call& c);
ORTHORNN_BOUND_OPS(ORTHORNN_DECLARE_BODY)
#undef ORTHORNN_DECLARE_BODY
}  // namespace bodies

}  // namespace orthornn::napi
