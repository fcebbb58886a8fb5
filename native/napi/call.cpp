// Reading and checking a bound op's arguments against its slots in native/ops.json (through
// native/core/ops.gen.h), once, on the JS thread, before the op's body runs.
#include <cmath>
#include <cstring>

#include "../core/replay_key.h"
#include "binding.h"

namespace orthornn::napi {
namespace {

std::string elements(const Tensor& t) {
  return std::to_string(t.numel()) + " elements (shape " + shapeString(t.shape) + ")";
}

}  // namespace

Call::Call(const Napi::CallbackInfo& info, Op op, std::shared_ptr<ContextState> ctx)
    : env_(info.Env()), spec_(opSpec(op)), ctx_(std::move(ctx)) {
  if (ctx_->disposed) throwError(env_, ErrorCode::Disposed, std::string(spec_.name) + ": the context has been disposed");
  slots_.resize(size_t(spec_.argCount));
  for (int i = 0; i < spec_.argCount; ++i) read(info, i);
}

void Call::fail(ErrorCode code, const char* name, const std::string& expected, const std::string& got) const {
  throwError(env_, code, std::string(spec_.name) + ": argument '" + name + "' must be " + expected + ", got " + got);
}

void Call::failCount(const char* name, const std::string& count, const Tensor& t) const {
  throwError(env_, ErrorCode::Range, std::string(spec_.name) + ": argument '" + name + "' must have " + count + ", got " + elements(t));
}

void Call::read(const Napi::CallbackInfo& info, int i) {
  const ArgSpec& a = spec_.args[i];
  const Napi::Value v = info[size_t(i)];
  Slot& s = slots_[size_t(i)];
  switch (a.kind) {
    case ArgKind::Tensor:
    case ArgKind::OptionalTensor: {
      if (a.kind == ArgKind::OptionalTensor && (v.IsNull() || v.IsUndefined())) return;
      if (!TensorWrap::Is(env_, v))
        fail(ErrorCode::Type, a.name, a.kind == ArgKind::OptionalTensor ? "a tensor or null" : "a tensor", describe(v));
      const Tensor& t = TensorWrap::From(env_, v, a.name)->tensor(env_, ctx_.get(), a.name);
      switch (a.dtype) {
        case DTypeRule::Float:
          if (!isFloat(t.dtype)) fail(ErrorCode::Type, a.name, "float32 or float64", dtypeName(t.dtype));
          break;
        case DTypeRule::Int32:
          if (t.dtype != DType::I32) fail(ErrorCode::Type, a.name, "int32", dtypeName(t.dtype));
          break;
        case DTypeRule::Same: {
          const Tensor& ref = *slots_[size_t(a.ref)].tensor;
          if (t.dtype != ref.dtype)
            fail(ErrorCode::Type, a.name, std::string(dtypeName(ref.dtype)) + " like '" + spec_.args[a.ref].name + "'",
                 dtypeName(t.dtype));
          break;
        }
        case DTypeRule::Any:
        case DTypeRule::None: break;
      }
      if (a.like >= 0) {
        const Tensor& ref = *slots_[size_t(a.like)].tensor;
        if (t.numel() != ref.numel())
          failCount(a.name, std::to_string(ref.numel()) + " elements like '" + spec_.args[a.like].name + "' (shape " +
                                shapeString(ref.shape) + ")", t);
      }
      if (a.square && (t.shape.size() != 2 || t.shape[0] != t.shape[1]))
        fail(ErrorCode::Range, a.name, "a square matrix", "shape " + shapeString(t.shape));
      s.tensor = t;
      return;
    }
    case ArgKind::Number:
    case ArgKind::Integer:
    case ArgKind::Seed: {
      if (!v.IsNumber()) fail(ErrorCode::Type, a.name, a.kind == ArgKind::Number ? "a number" : "an integer", describe(v));
      const double x = v.As<Napi::Number>().DoubleValue();
      if (a.kind == ArgKind::Integer && !(x >= a.min && x <= a.max && x == std::floor(x)))
        fail(ErrorCode::Range, a.name, "an integer from " + describe(Napi::Number::New(env_, a.min)) + " to " +
                                           describe(Napi::Number::New(env_, a.max)), describe(v));
      // A seed is converted to uint64: only the safe integers lib/ hands over are defined.
      if (a.kind == ArgKind::Seed && !(x >= 0 && x <= 9007199254740992.0 && x == std::floor(x)))
        fail(ErrorCode::Range, a.name, "a non-negative safe integer", describe(v));
      s.number = x;
      return;
    }
    case ArgKind::Boolean:
      if (!v.IsBoolean()) fail(ErrorCode::Type, a.name, "a boolean", describe(v));
      s.flag = v.As<Napi::Boolean>().Value();
      return;
    case ArgKind::Activation: {
      if (!v.IsString()) fail(ErrorCode::Type, a.name, "'tanh', 'relu' or 'identity'", describe(v));
      const std::string name = v.As<Napi::String>();
      if (!activationNamed(name, s.activation)) fail(ErrorCode::Range, a.name, "'tanh', 'relu' or 'identity'", "'" + name + "'");
      return;
    }
    case ArgKind::Workspace:
      if (!hasTag(v, &kWorkspaceTag)) fail(ErrorCode::Type, a.name, "a workspace from createWorkspace()", describe(v));
      s.workspace = workspaceArg(env_, v, ctx_);
      return;
    case ArgKind::Object:
      if (!v.IsObject() || v.IsFunction()) fail(ErrorCode::Type, a.name, "an object", describe(v));
      s.object = v.As<Napi::Object>();
      return;
  }
}

int Call::index(const char* name, ArgKind kind) const {
  for (int i = 0; i < spec_.argCount; ++i) {
    const ArgSpec& a = spec_.args[i];
    if (std::strcmp(a.name, name) != 0) continue;
    const bool tensorKinds = (kind == ArgKind::Tensor || kind == ArgKind::OptionalTensor) &&
                             (a.kind == ArgKind::Tensor || a.kind == ArgKind::OptionalTensor);
    const bool numberKinds = kind == ArgKind::Integer && (a.kind == ArgKind::Integer || a.kind == ArgKind::Seed);
    if (a.kind == kind || tensorKinds || numberKinds) return i;
  }
  // A body asking for a slot its op does not declare: a defect of this file set, never of the caller.
  throw Error(ErrorCode::Internal, std::string(spec_.name) + ": no argument '" + name + "' of that kind in native/ops.json");
}

const Tensor& Call::tensor(const char* name) const {
  const auto& t = slots_[size_t(index(name, ArgKind::Tensor))].tensor;
  if (!t) throw Error(ErrorCode::Internal, std::string(spec_.name) + ": argument '" + name + "' is optional");
  return *t;
}
std::optional<Tensor> Call::optionalTensor(const char* name) const { return slots_[size_t(index(name, ArgKind::OptionalTensor))].tensor; }
double Call::number(const char* name) const { return slots_[size_t(index(name, ArgKind::Number))].number; }
int64_t Call::integer(const char* name) const { return int64_t(slots_[size_t(index(name, ArgKind::Integer))].number); }
bool Call::boolean(const char* name) const { return slots_[size_t(index(name, ArgKind::Boolean))].flag; }
Activation Call::activation(const char* name) const { return slots_[size_t(index(name, ArgKind::Activation))].activation; }
Napi::Object Call::object(const char* name) const { return slots_[size_t(index(name, ArgKind::Object))].object; }
const WorkspaceRef& Call::workspace(const char* name) const { return slots_[size_t(index(name, ArgKind::Workspace))].workspace; }

void Call::requireNumel(const char* name, int64_t n) const {
  const Tensor& t = *slots_[size_t(index(name, ArgKind::Tensor))].tensor;
  if (t.numel() != n) failCount(name, std::to_string(n) + " elements", t);
}

void Call::enqueue(Context::Work work) const {
  auto& recording = ctx_->recording;
  if (!recording) return enqueueOn(env_, *ctx_, spec_.name, std::move(work));
  // The op (its name is a static string of ops.gen.h) and every argument (a tensor's address,
  // size, dtype and shape), as the key of a replayable sequence.
  std::vector<uint64_t>& key = recording->key;
  key.push_back(reinterpret_cast<uintptr_t>(spec_.name));
  for (int i = 0; i < spec_.argCount; ++i) {
    const Slot& s = slots_[size_t(i)];
    switch (spec_.args[i].kind) {
      case ArgKind::Tensor:
      case ArgKind::OptionalTensor: appendKey(key, s.tensor ? *s.tensor : Tensor{}); break;  // shape too: gemm reads it
      case ArgKind::Number:
      case ArgKind::Integer:
      case ArgKind::Seed: appendKey(key, s.number); break;
      case ArgKind::Boolean: key.push_back(s.flag); break;
      case ArgKind::Activation: key.push_back(uint64_t(s.activation)); break;
      case ArgKind::Workspace:
        key.push_back(reinterpret_cast<uintptr_t>(s.workspace.get()));
        recording->workspaces.push_back(s.workspace);
        break;
      case ArgKind::Object: recording->replayable = false; break;
    }
  }
  recording->steps.emplace_back(spec_.name, std::move(work));
}

}  // namespace orthornn::napi
