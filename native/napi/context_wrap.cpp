// The JS Context: tensor creation, op queueing and awaited results. Arguments are checked
// here on the JS thread and copied into plain C++ values before work is queued, so worker
// threads never touch JS values (the shape messages users see come from lib/, these
// checks keep the native side memory-safe on their own).
#include <cmath>
#include <cstring>

#include "binding.h"

namespace orthornn::napi {
namespace {

// Delivered to the JS thread when a completion runs on the worker.
struct Completion {
  Napi::Promise::Deferred deferred;
  Napi::Reference<Napi::ArrayBuffer> buffer;  // read(): the destination, filled by the worker
  orthornn::DType dtype = orthornn::DType::F32;
  size_t count = 0;
  bool isRead = false;
  bool settling = false;  // Resolve or Reject has been called
  std::optional<Failure> failure;
  std::shared_ptr<ContextState> ctx;  // to balance the pending count that keeps Node alive
  Completion(Napi::Env env, std::shared_ptr<ContextState> ctx)
      : deferred(Napi::Promise::Deferred::New(env)), ctx(std::move(ctx)) {}
};

DType parseDType(Napi::Env env, const Napi::Value& v, const char* arg) {
  if (!v.IsString()) throwError(env, ErrorCode::Type, std::string("argument '") + arg + "' must be a dtype string, got " + describe(v));
  std::string s = v.As<Napi::String>();
  if (s == "float32") return DType::F32;
  if (s == "float64") return DType::F64;
  if (s == "int32") return DType::I32;
  throwError(env, ErrorCode::Range, std::string("argument '") + arg + "' must be 'float32', 'float64' or 'int32', got '" + s + "'");
}

std::vector<int64_t> parseShape(Napi::Env env, const Napi::Value& v) {
  if (!v.IsArray()) throwError(env, ErrorCode::Type, "argument 'shape' must be an array of non-negative integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> shape;
  int64_t total = 1;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    Napi::Value d = a.Get(i);
    if (!d.IsNumber()) throwError(env, ErrorCode::Type, "argument 'shape' must be an array of non-negative integers");
    double x = d.As<Napi::Number>().DoubleValue();
    if (!(x >= 0) || x != std::floor(x) || x > 9.0e15)
      throwError(env, ErrorCode::Range, "argument 'shape' must hold non-negative integers, got " + std::to_string(x));
    shape.push_back(int64_t(x));
    if (shape.back() && total > (int64_t(1) << 50) / shape.back())
      throwError(env, ErrorCode::Range, "argument 'shape' describes more elements than can be allocated");
    total *= shape.back();
  }
  return shape;
}

double number(Napi::Env env, const Napi::Value& v, const char* arg) {
  if (!v.IsNumber()) throwError(env, ErrorCode::Type, std::string("argument '") + arg + "' must be a number, got " + describe(v));
  return v.As<Napi::Number>().DoubleValue();
}

// A seed: an integer in [0, 2^53] (the safe integers lib/ hands over), so that its
// conversion to uint64 is defined.
uint64_t seedArg(Napi::Env env, const Napi::Value& v) {
  const double x = number(env, v, "seed");
  if (!(x >= 0 && x <= 9007199254740992.0 && x == std::floor(x)))
    throwError(env, ErrorCode::Range, "argument 'seed' must be a non-negative safe integer, got " + describe(v));
  return uint64_t(x);
}

bool boolean(Napi::Env env, const Napi::Value& v, const char* arg) {
  if (!v.IsBoolean()) throwError(env, ErrorCode::Type, std::string("argument '") + arg + "' must be a boolean, got " + describe(v));
  return v.As<Napi::Boolean>().Value();
}

Activation activation(Napi::Env env, const Napi::Value& v) {
  if (!v.IsString()) throwError(env, ErrorCode::Type, "argument 'activation' must be a string, got " + describe(v));
  std::string s = v.As<Napi::String>();
  if (s == "tanh") return Activation::Tanh;
  if (s == "relu") return Activation::Relu;
  if (s == "identity") return Activation::Identity;
  throwError(env, ErrorCode::Range, "argument 'activation' must be 'tanh', 'relu' or 'identity', got '" + s + "'");
}

}  // namespace

class ContextWrap : public Napi::ObjectWrap<ContextWrap> {
 public:
  // Methods and accessors are plain functions that check the receiver's type tag before
  // unwrapping it (see self()), so a NativeContext method called on another object is a
  // TypeError rather than a reinterpretation of that object's memory.
  template <Napi::Value (ContextWrap::*M)(const Napi::CallbackInfo&)>
  static Napi::Value dispatch(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] { return (self(info)->*M)(info); });
  }
  template <Napi::Value (ContextWrap::*M)(const Napi::CallbackInfo&)>
  static Napi::PropertyDescriptor method(Napi::Env env, const char* name) {
    return Napi::PropertyDescriptor::Value(name, Napi::Function::New<dispatch<M>>(env, name), napi_default);
  }

  static ContextWrap* self(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    void* p = nullptr;
    if (!hasTag(info.This(), &kContextTag) || napi_unwrap(env, info.This(), &p) != napi_ok || !p ||
        !static_cast<ContextWrap*>(p)->state_)
      throwError(env, ErrorCode::Type, "NativeContext methods must be called on a NativeContext, got " + describe(info.This()));
    return static_cast<ContextWrap*>(p);
  }

  static Napi::Function Define(Napi::Env env) {
    Napi::Function cls = DefineClass(env, "NativeContext", {});
    Napi::Object proto = cls.Get("prototype").As<Napi::Object>();
    proto.DefineProperties({
        method<&ContextWrap::Supports>(env, "supports"),
        method<&ContextWrap::LaunchCounters>(env, "launchCounters"),
        method<&ContextWrap::ForceVariant>(env, "forceVariant"),
        method<&ContextWrap::LimitThreads>(env, "limitThreads"),
        method<&ContextWrap::Variants>(env, "variants"),
        method<&ContextWrap::FromArray>(env, "fromArray"),
        method<&ContextWrap::Empty>(env, "empty"),
        method<&ContextWrap::Read>(env, "read"),
        method<&ContextWrap::Sync>(env, "sync"),
        method<&ContextWrap::DisposeValue>(env, "dispose"),
        method<&ContextWrap::Fill>(env, "fill"),
        method<&ContextWrap::RandomNormal>(env, "randomNormal"),
        method<&ContextWrap::RandomUniform>(env, "randomUniform"),
        method<&ContextWrap::Copy>(env, "copy"),
        method<&ContextWrap::Gemm>(env, "gemm"),
        method<&ContextWrap::LuFactor>(env, "luFactor"),
        method<&ContextWrap::LuSolve>(env, "luSolve"),
        method<&ContextWrap::Qr>(env, "qr"),
        method<&ContextWrap::Svd>(env, "svd"),
        method<&ContextWrap::Axpby>(env, "axpby"),
        method<&ContextWrap::Mul>(env, "mul"),
        method<&ContextWrap::ScaleColumns>(env, "scaleColumns"),
        method<&ContextWrap::RmspropStep>(env, "rmspropStep"),
        method<&ContextWrap::AdamStep>(env, "adamStep"),
        method<&ContextWrap::SgdStep>(env, "sgdStep"),
        method<&ContextWrap::BiasActivation>(env, "biasActivation"),
        method<&ContextWrap::ActivationBackward>(env, "activationBackward"),
        method<&ContextWrap::MarginSigmoid>(env, "marginSigmoid"),
        method<&ContextWrap::MarginSigmoidBackward>(env, "marginSigmoidBackward"),
        method<&ContextWrap::Reduce>(env, "reduce"),
        method<&ContextWrap::ColumnSum>(env, "columnSum"),
        method<&ContextWrap::GroupNorms>(env, "groupNorms"),
        method<&ContextWrap::SoftmaxCrossEntropy>(env, "softmaxCrossEntropy"),
        method<&ContextWrap::MeanSquaredError>(env, "meanSquaredError"),
        Napi::PropertyDescriptor::Accessor<dispatch<&ContextWrap::Backend>>("backend"),
        Napi::PropertyDescriptor::Accessor<dispatch<&ContextWrap::Device>>("device"),
        Napi::PropertyDescriptor::Accessor<dispatch<&ContextWrap::Disposed>>("disposed"),
    });
    return cls;
  }

  explicit ContextWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ContextWrap>(info) {
    Napi::Env env = info.Env();
    guard(env, [&] {
      if (!info[0].IsString())
        throwError(env, ErrorCode::Type, "argument 'backend' must be a string ('cpu' or 'cuda'), got " + describe(info[0]));
      if (!info[1].IsNumber())
        throwError(env, ErrorCode::Type, "argument 'deviceIndex' must be a number, got " + describe(info[1]));
      std::string name = info[0].As<Napi::String>();
      const double index = info[1].As<Napi::Number>().DoubleValue();
      if (!(index >= 0 && index <= 65535 && index == std::floor(index)))
        throwError(env, ErrorCode::Range,
                   "argument 'deviceIndex' must be a non-negative integer, got " + describe(info[1]));
      // Assigned only once complete: a half-made context (its backend failed) has no state,
      // and its destructor then has nothing to shut down.
      auto state = std::make_shared<ContextState>();
      state->core = std::make_unique<Context>(createBackend(name, int(index)));
      // Completions reach the JS thread through this; it keeps Node alive only while a
      // promise is pending.
      state->tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}),
                                                  "orthornn-completion", 0, 1);
      state->tsfn.Unref(env);
      info.This().As<Napi::Object>().TypeTag(&kContextTag);
      state_ = std::move(state);
      addonData(env).contexts.insert(this);
    });
  }

  ~ContextWrap() override { shutdown(); }

  const std::shared_ptr<ContextState>& state() const { return state_; }

  // Cancels queued work, invalidates every tensor of this context and stops its worker.
  void shutdown() {
    if (!state_ || state_->disposed) return;  // never completed, or already shut down
    state_->disposed = true;
    state_->core->close();
    for (TensorWrap* t : state_->tensors) t->release(Env());
    state_->tensors.clear();
    for (auto& w : state_->workspaces)
      if (auto ws = w.lock()) ws->release();
    state_->workspaces.clear();
    state_->tsfn.Release();
    addonData(Env()).contexts.erase(this);
  }

 private:
  Context& core(Napi::Env env) {
    if (state_->disposed) throwError(env, ErrorCode::Disposed, "the context has been disposed");
    return *state_->core;
  }

  Tensor tensorArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
    return napi::tensorArg(info, *state_, i, name);
  }
  std::optional<Tensor> optionalTensorArg(const Napi::CallbackInfo& info, size_t i, const char* name) {
    return napi::optionalTensorArg(info, *state_, i, name);
  }
  void requireFloat(Napi::Env env, const Tensor& t, const char* name) {
    if (!isFloat(t.dtype))
      throwError(env, ErrorCode::Type, std::string("argument '") + name + "' must be float32 or float64, got " + dtypeName(t.dtype));
  }
  void requireSame(Napi::Env env, const Tensor& a, const char* an, const Tensor& b, const char* bn, bool shape = true) {
    if (a.dtype != b.dtype)
      throwError(env, ErrorCode::Type, std::string("argument '") + bn + "' must have dtype " + dtypeName(a.dtype) +
                                           " like '" + an + "', got " + dtypeName(b.dtype));
    if (shape && a.numel() != b.numel())
      throwError(env, ErrorCode::Range, std::string("argument '") + bn + "' must have " + std::to_string(a.numel()) +
                                            " elements like '" + an + "', got " + std::to_string(b.numel()));
  }
  void requireNumel(Napi::Env env, const Tensor& t, int64_t n, const char* name) {
    if (t.numel() != n)
      throwError(env, ErrorCode::Range, std::string("argument '") + name + "' must have " + std::to_string(n) +
                                            " elements, got " + std::to_string(t.numel()) + " (shape " + shapeString(t.shape) + ")");
  }
  // Rows × cols view of a tensor: the last dimension is cols.
  static int64_t lastDim(const Tensor& t) { return t.shape.empty() ? 1 : t.shape.back(); }

  void enqueue(Napi::Env env, const char* op, Context::Work work) { enqueueOn(env, *state_, op, std::move(work)); }

  Napi::Value Backend(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), state_->core->backend()->name()); }
  Napi::Value Device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), state_->core->backend()->device()); }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), state_->disposed); }

  // forceVariant(op, variant): restricts a fused op to one of its variants ('' for the
  // automatic choice); work already queued may run under either choice.
  Napi::Value ForceVariant(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    core(env);
    if (!info[0].IsString()) throwError(env, ErrorCode::Type, "argument 'op' must be a string, got " + describe(info[0]));
    if (!info[1].IsString()) throwError(env, ErrorCode::Type, "argument 'variant' must be a string, got " + describe(info[1]));
    const std::string op = info[0].As<Napi::String>(), variant = info[1].As<Napi::String>();
    std::string names;
    for (int i = 0; i < orthornn::kFusedCount; ++i) {
      const auto f = orthornn::Fused(i);
      if (op == orthornn::fusedName(f)) {
        state_->core->backend()->forceVariant(f, variant);
        return env.Undefined();
      }
      names += std::string(names.empty() ? "'" : ", '") + orthornn::fusedName(f) + "'";
    }
    throwError(env, ErrorCode::Range, "argument 'op' must be one of " + names + ", got '" + op + "'");
    return env.Undefined();
  }

  // limitThreads(n): at most n threads for this context's loops and recurrences, from the next
  // queued op on (it runs on the context's worker thread, whose setting it is).
  Napi::Value LimitThreads(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const double n = number(env, info[0], "threads");
    if (!(n >= 1 && n <= 4096 && n == std::floor(n)))
      throwError(env, ErrorCode::Range, "argument 'threads' must be an integer from 1 to 4096, got " + describe(info[0]));
    const int threads = int(n);
    enqueue(env, "limitThreads", [threads](orthornn::Backend& b) { b.limitThreads(threads); });
    return env.Undefined();
  }

  // variants(): per fused op, the variants this backend has (the reference first), the forced
  // one and the one that ran last (null before the first run); read without waiting.
  Napi::Value Variants(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const auto& backend = state_->core->backend();
    Napi::Object out = Napi::Object::New(env);
    for (int i = 0; i < orthornn::kFusedCount; ++i) {
      const auto f = orthornn::Fused(i);
      Napi::Object o = Napi::Object::New(env);
      const std::vector<std::string> names = backend->variants(f);
      Napi::Array available = Napi::Array::New(env, names.size());
      for (size_t k = 0; k < names.size(); ++k) available.Set(uint32_t(k), names[k]);
      o.Set("available", available);
      const std::string forced = backend->forcedVariant(f), last = backend->lastVariant(f);
      o.Set("forced", forced.empty() ? env.Null() : Napi::String::New(env, forced));
      o.Set("last", last.empty() ? env.Null() : Napi::String::New(env, last));
      out.Set(orthornn::fusedName(f), o);
    }
    return out;
  }

  // Counts of the work submitted to the device so far (all zero on the CPU); read without
  // waiting, so a caller that wants a step's exact count awaits the step first.
  Napi::Value LaunchCounters(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const orthornn::LaunchCounters c = state_->core->backend()->launchCounters();
    Napi::Object o = Napi::Object::New(env);
    o.Set("kernels", Napi::Number::New(env, double(c.kernels)));
    o.Set("libraryCalls", Napi::Number::New(env, double(c.libraryCalls)));
    o.Set("graphs", Napi::Number::New(env, double(c.graphs)));
    o.Set("graphNodes", Napi::Number::New(env, double(c.graphNodes)));
    o.Set("graphsBuilt", Napi::Number::New(env, double(c.graphsBuilt)));
    return o;
  }

  Napi::Value Supports(const Napi::CallbackInfo& info) {
    static const std::map<std::string, Op> ops = {
        {"gemm", Op::Gemm}, {"luFactor", Op::LuFactor}, {"luSolve", Op::LuSolve}, {"qr", Op::Qr}, {"svd", Op::Svd},
        {"fill", Op::Fill}, {"randomNormal", Op::RandomNormal}, {"randomUniform", Op::RandomUniform},
        {"copy", Op::Copy}, {"axpby", Op::Axpby}, {"mul", Op::Mul}, {"biasActivation", Op::BiasActivation},
        {"activationBackward", Op::ActivationBackward}, {"marginSigmoid", Op::MarginSigmoid},
        {"marginSigmoidBackward", Op::MarginSigmoidBackward}, {"reduce", Op::Reduce}, {"columnSum", Op::ColumnSum},
        {"groupNorms", Op::GroupNorms}, {"softmaxCrossEntropy", Op::SoftmaxCrossEntropy},
        {"meanSquaredError", Op::MeanSquaredError}, {"scaleColumns", Op::ScaleColumns},
        {"optimizerUpdate", Op::OptimizerUpdate}};
    Napi::Env env = info.Env();
    if (info.Length() < 2 || !info[0].IsString()) throwError(env, ErrorCode::Type, "supports(op: string, dtype: string)");
    auto it = ops.find(info[0].As<Napi::String>());
    if (it == ops.end()) throwError(env, ErrorCode::Range, "unknown op '" + std::string(info[0].As<Napi::String>()) + "'");
    return Napi::Boolean::New(env, state_->core->backend()->supports(it->second, parseDType(env, info[1], "dtype")));
  }

  Napi::Value makeTensor(Napi::Env env, std::vector<int64_t> shape, DType dtype) {
    return newTensor(env, state_, std::move(shape), dtype, nullptr);
  }

  // fromArray(typedArray, shape)
  Napi::Value FromArray(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsTypedArray())
      throwError(env, ErrorCode::Type, "argument 'data' must be a Float32Array, Float64Array or Int32Array");
    Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
    DType dt;
    switch (ta.TypedArrayType()) {
      case napi_float32_array: dt = DType::F32; break;
      case napi_float64_array: dt = DType::F64; break;
      case napi_int32_array: dt = DType::I32; break;
      default: throwError(env, ErrorCode::Type, "argument 'data' must be a Float32Array, Float64Array or Int32Array");
    }
    std::vector<int64_t> shape = parseShape(env, info[1]);
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    if (n != int64_t(ta.ElementLength()))
      throwError(env, ErrorCode::Range, "argument 'data' has " + std::to_string(ta.ElementLength()) +
                                            " elements but shape " + shapeString(shape) + " needs " + std::to_string(n));
    Napi::Value obj = makeTensor(env, shape, dt);
    const Tensor& t = TensorWrap::Unwrap(obj.As<Napi::Object>())->tensor(env, state_.get(), "data");
    const uint8_t* src = static_cast<const uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    if (std::string(state_->core->backend()->name()) == "cpu") {
      // A fresh allocation no queued op can reference yet: fill it here, on the JS thread.
      if (t.bytes() > 0) std::memcpy(t.data(), src, t.bytes());
    } else {
      auto staging = std::make_shared<std::vector<uint8_t>>(src, src + t.bytes());
      Tensor dst = t;
      enqueue(env, "upload", [dst, staging](orthornn::Backend& b) { b.upload(dst.data(), staging->data(), staging->size()); });
    }
    return obj;
  }

  // empty(shape, dtype): uninitialised; callers fill it or use it as an op's output.
  Napi::Value Empty(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return makeTensor(env, parseShape(env, info[0]), parseDType(env, info[1], "dtype"));
  }

  Napi::Value await(Napi::Env env, std::optional<Tensor> source) {
    core(env);  // a disposed context: refused before anything is made
    auto* c = new Completion(env, state_);
    Napi::Promise promise = c->deferred.Promise();
    if (source) {
      c->isRead = true;
      c->dtype = source->dtype;
      c->count = size_t(source->numel());
      Napi::ArrayBuffer buf;
      try {
        buf = Napi::ArrayBuffer::New(env, source->bytes());
      } catch (const Napi::Error&) {
        delete c;
        throwError(env, ErrorCode::OutOfMemory,
                   "read: cannot allocate " + std::to_string(source->bytes()) + " bytes for the result");
      }
      c->buffer = Napi::Persistent(buf);
    }
    void* dst = source ? c->buffer.Value().Data() : nullptr;
    auto tsfn = state_->tsfn;
    try {
      core(env).enqueueCompletion([c, dst, source, tsfn](orthornn::Backend& b, const std::optional<Failure>& failure) mutable {
        c->failure = failure;
        const char* what = source ? "read" : "sync";
        if (!failure) {
          try {
            if (source) b.download(dst, source->data(), source->bytes());
            else b.synchronize();
          } catch (const Error& e) {
            c->failure = Failure{e.code(), std::string("op '") + what + "' failed: " + e.what()};
          } catch (const std::bad_alloc&) {
            c->failure = Failure{ErrorCode::OutOfMemory, std::string("op '") + what + "' failed: out of memory"};
          } catch (const std::exception& e) {
            c->failure = Failure{ErrorCode::Internal, std::string("op '") + what + "' failed: " + e.what()};
          }
        }
        // During environment teardown the call is refused; the completion is then leaked
        // on purpose (its JS handles may only be freed on the JS thread, which is gone).
        try {
          tsfn.NonBlockingCall(c, [](Napi::Env env, Napi::Function, Completion* c) { deliver(env, c); });
        } catch (...) {
        }
      });
    } catch (const Error& e) {
      delete c;
      throwError(env, e.code(), e.what());
    } catch (const std::bad_alloc&) {
      delete c;
      throwError(env, ErrorCode::OutOfMemory, "out of memory");
    }
    if (state_->pending++ == 0) state_->tsfn.Ref(env);
    return promise;
  }

  // Settles the promise on the JS thread. Nothing escapes: whatever goes wrong while making
  // the result (an error class whose constructor throws, an allocation that fails), the
  // promise is settled, with a plain coded Error at worst.
  static void deliver(Napi::Env env, Completion* c) noexcept {
    std::unique_ptr<Completion> owned(c);
    if (env == nullptr) return;
    try {
      if (--c->ctx->pending == 0 && !c->ctx->disposed) c->ctx->tsfn.Unref(env);
    } catch (...) {
    }
    try {
      settle(env, c);
      return;
    } catch (const Napi::Error& e) {
      rejectPlain(env, c, foreignError(env, e));
    } catch (const std::exception& e) {
      rejectPlain(env, c, makeError(env, ErrorCode::Internal, std::string("internal error: ") + e.what()));
    } catch (...) {
      rejectPlain(env, c, makeError(env, ErrorCode::Internal, "internal error while settling a promise"));
    }
  }

  static void rejectPlain(Napi::Env, Completion* c, const Napi::Error& err) noexcept {
    if (c->settling) return;  // Resolve or Reject was called: the deferred is spent
    c->settling = true;
    try {
      c->deferred.Reject(err.Value());
    } catch (...) {
    }
  }

  static void settle(Napi::Env env, Completion* c) {
    if (c->failure) {
      Napi::Value err = makeError(env, c->failure->code, c->failure->message).Value();
      c->settling = true;
      c->deferred.Reject(err);
      return;
    }
    if (!c->isRead) {
      c->settling = true;
      c->deferred.Resolve(env.Undefined());
      return;
    }
    Napi::ArrayBuffer buf = c->buffer.Value();
    Napi::Value arr;
    switch (c->dtype) {
      case DType::F32: arr = Napi::Float32Array::New(env, c->count, buf, 0); break;
      case DType::F64: arr = Napi::Float64Array::New(env, c->count, buf, 0); break;
      case DType::I32: arr = Napi::Int32Array::New(env, c->count, buf, 0); break;
    }
    c->settling = true;
    c->deferred.Resolve(arr);
  }

  Napi::Value Read(const Napi::CallbackInfo& info) {
    Tensor t = tensorArg(info, 0, "tensor");
    return await(info.Env(), t);
  }
  Napi::Value Sync(const Napi::CallbackInfo& info) { return await(info.Env(), std::nullopt); }

  Napi::Value DisposeValue(const Napi::CallbackInfo& info) {
    shutdown();
    return info.Env().Undefined();
  }

  Napi::Value Fill(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor t = tensorArg(info, 0, "tensor");
    double v = number(env, info[1], "value");
    if (t.dtype == DType::I32 && !(v >= -2147483648.0 && v <= 2147483647.0 && v == std::floor(v)))
      throwError(env, ErrorCode::Range, "argument 'value' must be an int32 for an int32 tensor, got " + describe(info[1]));
    enqueue(env, "fill", [t, v](orthornn::Backend& b) { b.fill(t.dtype, t.numel(), v, t.data()); });
    return env.Undefined();
  }

  Napi::Value RandomNormal(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor t = tensorArg(info, 0, "tensor");
    requireFloat(env, t, "tensor");
    uint64_t seed = seedArg(env, info[1]);
    double mean = number(env, info[2], "mean"), std = number(env, info[3], "std");
    enqueue(env, "randomNormal", [=](orthornn::Backend& b) { b.randomNormal(t.dtype, t.numel(), seed, mean, std, t.data()); });
    return env.Undefined();
  }

  Napi::Value RandomUniform(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor t = tensorArg(info, 0, "tensor");
    requireFloat(env, t, "tensor");
    uint64_t seed = seedArg(env, info[1]);
    double lo = number(env, info[2], "low"), hi = number(env, info[3], "high");
    enqueue(env, "randomUniform", [=](orthornn::Backend& b) { b.randomUniform(t.dtype, t.numel(), seed, lo, hi, t.data()); });
    return env.Undefined();
  }

  Napi::Value Copy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor src = tensorArg(info, 0, "source"), dst = tensorArg(info, 1, "out");
    requireSame(env, src, "source", dst, "out");
    enqueue(env, "copy", [src, dst](orthornn::Backend& b) { b.copy(dst.data(), src.data(), src.bytes()); });
    return env.Undefined();
  }

  // gemm(a, b, c, transA, transB, alpha, beta): 2-D, or batched when c is 3-D (a or b may
  // be 2-D and then shared by every batch entry).
  Napi::Value Gemm(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor a = tensorArg(info, 0, "a"), b = tensorArg(info, 1, "b"), c = tensorArg(info, 2, "out");
    bool ta = boolean(env, info[3], "transA"), tb = boolean(env, info[4], "transB");
    double alpha = number(env, info[5], "alpha"), beta = number(env, info[6], "beta");
    requireFloat(env, a, "a");
    requireSame(env, a, "a", b, "b", false);
    requireSame(env, a, "a", c, "out", false);
    // batch is -1 for a matrix (shared by every batch entry), the leading size for a 3-D tensor.
    auto mat = [&](const Tensor& t, const char* name, int64_t& batch, int64_t& rows, int64_t& cols) {
      if (t.shape.size() == 2) { batch = -1; rows = t.shape[0]; cols = t.shape[1]; return; }
      if (t.shape.size() == 3) { batch = t.shape[0]; rows = t.shape[1]; cols = t.shape[2]; return; }
      throwError(env, ErrorCode::Range, std::string("argument '") + name + "' must be 2-D or 3-D, got shape " + shapeString(t.shape));
    };
    int64_t ba, ra, ca, bb, rb, cb, bc, rc, cc;
    mat(a, "a", ba, ra, ca);
    mat(b, "b", bb, rb, cb);
    mat(c, "out", bc, rc, cc);
    const int64_t m = ta ? ca : ra, k = ta ? ra : ca, kb = tb ? cb : rb, n = tb ? rb : cb;
    if (k != kb)
      throwError(env, ErrorCode::Range, "gemm: inner dimensions differ: op(a) is " + std::to_string(m) + "×" +
                                            std::to_string(k) + ", op(b) is " + std::to_string(kb) + "×" + std::to_string(n));
    if (rc != m || cc != n)
      throwError(env, ErrorCode::Range, "argument 'out' must be " + std::to_string(m) + "×" + std::to_string(n) +
                                            ", got shape " + shapeString(c.shape));
    const int64_t batch = bc >= 0 ? bc : 1;
    // A 3-D operand must have out's batch size (a 3-D one of batch 0 is not a shared matrix).
    if ((ba >= 0 && (bc < 0 || ba != bc)) || (bb >= 0 && (bc < 0 || bb != bc)))
      throwError(env, ErrorCode::Range, "gemm: batch sizes differ: a " + shapeString(a.shape) + ", b " +
                                            shapeString(b.shape) + ", out " + shapeString(c.shape));
    const int64_t sA = ba >= 0 ? ra * ca : 0, sB = bb >= 0 ? rb * cb : 0, sC = rc * cc;
    enqueue(env, "gemm", [=](orthornn::Backend& be) {
      if (batch == 1 && c.shape.size() == 2)
        be.gemm(a.dtype, ta, tb, m, n, k, alpha, a.data(), ca, b.data(), cb, beta, c.data(), cc);
      else
        be.gemmStridedBatched(a.dtype, ta, tb, m, n, k, alpha, a.data(), ca, sA, b.data(), cb, sB, beta, c.data(), cc,
                              sC, batch);
    });
    return env.Undefined();
  }

  void requireSquare(Napi::Env env, const Tensor& t, const char* name) {
    if (t.shape.size() != 2 || t.shape[0] != t.shape[1])
      throwError(env, ErrorCode::Range, std::string("argument '") + name + "' must be a square matrix, got shape " + shapeString(t.shape));
  }

  // luFactor(a, lu, pivots): lu ← LU factors of a (a is left untouched unless lu is a).
  Napi::Value LuFactor(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor a = tensorArg(info, 0, "a"), lu = tensorArg(info, 1, "lu"), piv = tensorArg(info, 2, "pivots");
    requireFloat(env, a, "a");
    requireSquare(env, a, "a");
    requireSame(env, a, "a", lu, "lu");
    if (piv.dtype != DType::I32) throwError(env, ErrorCode::Type, "argument 'pivots' must be int32");
    const int64_t n = a.shape[0];
    requireNumel(env, piv, n, "pivots");
    enqueue(env, "luFactor", [=](orthornn::Backend& b) {
      b.copy(lu.data(), a.data(), a.bytes());
      b.luFactor(a.dtype, n, lu.data(), static_cast<int32_t*>(piv.data()));
    });
    return env.Undefined();
  }

  // luSolve(lu, pivots, b, x): x ← A⁻¹ b, b an n-vector or n×r matrix.
  Napi::Value LuSolve(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor lu = tensorArg(info, 0, "lu"), piv = tensorArg(info, 1, "pivots"), rhs = tensorArg(info, 2, "b"),
           x = tensorArg(info, 3, "out");
    requireFloat(env, lu, "lu");
    requireSquare(env, lu, "lu");
    if (piv.dtype != DType::I32) throwError(env, ErrorCode::Type, "argument 'pivots' must be int32");
    const int64_t n = lu.shape[0];
    requireNumel(env, piv, n, "pivots");
    requireSame(env, lu, "lu", rhs, "b", false);
    requireSame(env, rhs, "b", x, "out");
    if (rhs.shape.empty() || rhs.shape[0] != n || rhs.shape.size() > 2)
      throwError(env, ErrorCode::Range, "argument 'b' must be " + std::to_string(n) + " or " + std::to_string(n) +
                                            "×r, got shape " + shapeString(rhs.shape));
    const int64_t nrhs = rhs.shape.size() == 2 ? rhs.shape[1] : 1;
    enqueue(env, "luSolve", [=](orthornn::Backend& b) {
      b.copy(x.data(), rhs.data(), rhs.bytes());
      b.luSolve(lu.dtype, n, nrhs, lu.data(), static_cast<const int32_t*>(piv.data()), x.data());
    });
    return env.Undefined();
  }

  Napi::Value Qr(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor a = tensorArg(info, 0, "a"), q = tensorArg(info, 1, "q"), r = tensorArg(info, 2, "r");
    requireFloat(env, a, "a");
    if (a.shape.size() != 2) throwError(env, ErrorCode::Range, "argument 'a' must be a matrix, got shape " + shapeString(a.shape));
    const int64_t m = a.shape[0], n = a.shape[1], k = std::min(m, n);
    requireSame(env, a, "a", q, "q", false);
    requireSame(env, a, "a", r, "r", false);
    requireNumel(env, q, m * k, "q");
    requireNumel(env, r, k * n, "r");
    enqueue(env, "qr", [=](orthornn::Backend& b) { b.qr(a.dtype, m, n, a.data(), q.data(), r.data()); });
    return env.Undefined();
  }

  Napi::Value Svd(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor a = tensorArg(info, 0, "a"), u = tensorArg(info, 1, "u"), s = tensorArg(info, 2, "s"), vt = tensorArg(info, 3, "vt");
    requireFloat(env, a, "a");
    if (a.shape.size() != 2) throwError(env, ErrorCode::Range, "argument 'a' must be a matrix, got shape " + shapeString(a.shape));
    const int64_t m = a.shape[0], n = a.shape[1], k = std::min(m, n);
    requireSame(env, a, "a", u, "u", false);
    requireSame(env, a, "a", s, "s", false);
    requireSame(env, a, "a", vt, "vt", false);
    requireNumel(env, u, m * k, "u");
    requireNumel(env, s, k, "s");
    requireNumel(env, vt, k * n, "vt");
    enqueue(env, "svd", [=](orthornn::Backend& b) { b.svd(a.dtype, m, n, a.data(), u.data(), s.data(), vt.data()); });
    return env.Undefined();
  }

  // axpby(alpha, x, beta, y, out)
  Napi::Value Axpby(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    double alpha = number(env, info[0], "alpha");
    Tensor x = tensorArg(info, 1, "x");
    double beta = number(env, info[2], "beta");
    Tensor y = tensorArg(info, 3, "y"), out = tensorArg(info, 4, "out");
    requireFloat(env, x, "x");
    requireSame(env, x, "x", y, "y");
    requireSame(env, x, "x", out, "out");
    enqueue(env, "axpby", [=](orthornn::Backend& b) { b.axpby(x.dtype, x.numel(), alpha, x.data(), beta, y.data(), out.data()); });
    return env.Undefined();
  }

  Napi::Value Mul(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor x = tensorArg(info, 0, "x"), y = tensorArg(info, 1, "y"), out = tensorArg(info, 2, "out");
    requireFloat(env, x, "x");
    requireSame(env, x, "x", y, "y");
    requireSame(env, x, "x", out, "out");
    enqueue(env, "mul", [=](orthornn::Backend& b) { b.mul(x.dtype, x.numel(), x.data(), y.data(), out.data()); });
    return env.Undefined();
  }

  // scaleColumns(x, s, out): out[r, c] = x[r, c] · s[c].
  Napi::Value ScaleColumns(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor x = tensorArg(info, 0, "x"), sc = tensorArg(info, 1, "s"), out = tensorArg(info, 2, "out");
    requireFloat(env, x, "x");
    requireSame(env, x, "x", out, "out");
    requireSame(env, x, "x", sc, "s", false);
    const int64_t cols = lastDim(x), rows = cols ? x.numel() / cols : 0;
    requireNumel(env, sc, cols, "s");
    enqueue(env, "scaleColumns", [=](orthornn::Backend& b) { b.scaleColumns(x.dtype, rows, cols, x.data(), sc.data(), out.data()); });
    return env.Undefined();
  }

  // The parameter, its gradient and its optimiser state: one float dtype, one size.
  void requireOptimizerTensors(Napi::Env env, std::initializer_list<std::pair<const Tensor*, const char*>> ts) {
    const auto& [first, firstName] = *ts.begin();
    requireFloat(env, *first, firstName);
    for (const auto& [t, name] : ts) requireSame(env, *first, firstName, *t, name);
  }

  // rmspropStep(param, grad, meanSquare, lr, rho, eps, epsInside, decay)
  Napi::Value RmspropStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor p = tensorArg(info, 0, "param"), g = tensorArg(info, 1, "grad"), ms = tensorArg(info, 2, "meanSquare");
    requireOptimizerTensors(env, {{&p, "param"}, {&g, "grad"}, {&ms, "meanSquare"}});
    const double lr = number(env, info[3], "lr"), rho = number(env, info[4], "rho"), eps = number(env, info[5], "eps");
    const bool epsInside = boolean(env, info[6], "epsInside");
    const double decay = number(env, info[7], "weightDecay");
    enqueue(env, "rmspropStep", [=](orthornn::Backend& b) {
      b.rmspropStep(p.dtype, p.numel(), lr, rho, eps, epsInside, decay, p.data(), g.data(), ms.data());
    });
    return env.Undefined();
  }

  // adamStep(param, grad, m, v, lr, beta1, beta2, eps, decay, step)
  Napi::Value AdamStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor p = tensorArg(info, 0, "param"), g = tensorArg(info, 1, "grad"), m = tensorArg(info, 2, "m"), v = tensorArg(info, 3, "v");
    requireOptimizerTensors(env, {{&p, "param"}, {&g, "grad"}, {&m, "m"}, {&v, "v"}});
    const double lr = number(env, info[4], "lr"), b1 = number(env, info[5], "beta1"), b2 = number(env, info[6], "beta2"),
                 eps = number(env, info[7], "eps"), decay = number(env, info[8], "weightDecay"), step = number(env, info[9], "step");
    if (!(step >= 1 && step <= 9007199254740992.0) || step != std::floor(step))
      throwError(env, ErrorCode::Range, "argument 'step' must be a positive integer, got " + describe(info[9]));
    enqueue(env, "adamStep", [=](orthornn::Backend& b) {
      b.adamStep(p.dtype, p.numel(), lr, b1, b2, eps, decay, int64_t(step), p.data(), g.data(), m.data(), v.data());
    });
    return env.Undefined();
  }

  // sgdStep(param, grad, buffer, lr, momentum, decay, first)
  Napi::Value SgdStep(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor p = tensorArg(info, 0, "param"), g = tensorArg(info, 1, "grad"), buf = tensorArg(info, 2, "buffer");
    requireOptimizerTensors(env, {{&p, "param"}, {&g, "grad"}, {&buf, "buffer"}});
    const double lr = number(env, info[3], "lr"), mom = number(env, info[4], "momentum"), decay = number(env, info[5], "weightDecay");
    const bool first = boolean(env, info[6], "first");
    enqueue(env, "sgdStep", [=](orthornn::Backend& b) {
      b.sgdStep(p.dtype, p.numel(), lr, mom, decay, first, p.data(), g.data(), buf.data());
    });
    return env.Undefined();
  }

  // biasActivation(x, bias | null, activation, out)
  Napi::Value BiasActivation(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor x = tensorArg(info, 0, "x");
    std::optional<Tensor> bias = optionalTensorArg(info, 1, "bias");
    Activation act = activation(env, info[2]);
    Tensor out = tensorArg(info, 3, "out");
    requireFloat(env, x, "x");
    requireSame(env, x, "x", out, "out");
    const int64_t cols = lastDim(x), rows = cols ? x.numel() / cols : 0;
    if (bias) {
      requireSame(env, x, "x", *bias, "bias", false);
      requireNumel(env, *bias, cols, "bias");
    }
    enqueue(env, "biasActivation", [=](orthornn::Backend& b) {
      b.biasActivation(x.dtype, act, rows, cols, x.data(), bias ? bias->data() : nullptr, out.data());
    });
    return env.Undefined();
  }

  // activationBackward(dy, h, activation, out)
  Napi::Value ActivationBackward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor dy = tensorArg(info, 0, "dy"), h = tensorArg(info, 1, "h");
    Activation act = activation(env, info[2]);
    Tensor out = tensorArg(info, 3, "out");
    requireFloat(env, dy, "dy");
    requireSame(env, dy, "dy", h, "h");
    requireSame(env, dy, "dy", out, "out");
    enqueue(env, "activationBackward", [=](orthornn::Backend& b) {
      b.activationBackward(dy.dtype, act, dy.numel(), dy.data(), h.data(), out.data());
    });
    return env.Undefined();
  }

  Napi::Value MarginSigmoid(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor p = tensorArg(info, 0, "p");
    double m = number(env, info[1], "margin");
    Tensor out = tensorArg(info, 2, "out");
    requireFloat(env, p, "p");
    requireSame(env, p, "p", out, "out");
    enqueue(env, "marginSigmoid", [=](orthornn::Backend& b) { b.marginSigmoid(p.dtype, p.numel(), m, p.data(), out.data()); });
    return env.Undefined();
  }

  Napi::Value MarginSigmoidBackward(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor p = tensorArg(info, 0, "p");
    double m = number(env, info[1], "margin");
    Tensor ds = tensorArg(info, 2, "ds"), out = tensorArg(info, 3, "out");
    requireFloat(env, p, "p");
    requireSame(env, p, "p", ds, "ds");
    requireSame(env, p, "p", out, "out");
    enqueue(env, "marginSigmoidBackward",
            [=](orthornn::Backend& b) { b.marginSigmoidBackward(p.dtype, p.numel(), m, p.data(), ds.data(), out.data()); });
    return env.Undefined();
  }

  // reduce(x, kind, out): kind 0 sum, 1 sum of squares, 2 max |x|, 3 count of non-finite.
  Napi::Value Reduce(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor x = tensorArg(info, 0, "x");
    double kind = number(env, info[1], "kind");
    Tensor out = tensorArg(info, 2, "out");
    requireFloat(env, x, "x");
    if (!(kind >= 0 && kind <= 3) || kind != std::floor(kind)) throwError(env, ErrorCode::Range, "argument 'kind' must be 0..3");
    requireSame(env, x, "x", out, "out", false);
    requireNumel(env, out, 1, "out");
    Reduction r = static_cast<Reduction>(int(kind));
    enqueue(env, "reduce", [=](orthornn::Backend& b) { b.reduce(x.dtype, r, x.numel(), x.data(), out.data()); });
    return env.Undefined();
  }

  // columnSum(x, beta, out): out[c] = Σ_r x[r, c] + β out[c].
  Napi::Value ColumnSum(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor x = tensorArg(info, 0, "x");
    double beta = number(env, info[1], "beta");
    Tensor out = tensorArg(info, 2, "out");
    requireFloat(env, x, "x");
    requireSame(env, x, "x", out, "out", false);
    const int64_t cols = lastDim(x), rows = cols ? x.numel() / cols : 0;
    requireNumel(env, out, cols, "out");
    enqueue(env, "columnSum", [=](orthornn::Backend& b) { b.columnSum(x.dtype, rows, cols, x.data(), beta, out.data()); });
    return env.Undefined();
  }

  // groupNorms(x, out): x's first dimension indexes the groups.
  Napi::Value GroupNorms(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor x = tensorArg(info, 0, "x"), out = tensorArg(info, 1, "out");
    requireFloat(env, x, "x");
    requireSame(env, x, "x", out, "out", false);
    if (x.shape.empty()) throwError(env, ErrorCode::Range, "argument 'x' must have at least one dimension");
    const int64_t groups = x.shape[0], size = groups ? x.numel() / groups : 0;
    requireNumel(env, out, groups, "out");
    enqueue(env, "groupNorms", [=](orthornn::Backend& b) { b.groupNorms(x.dtype, groups, size, x.data(), out.data()); });
    return env.Undefined();
  }

  // softmaxCrossEntropy(logits, targets, weights | null, loss, dlogits | null)
  Napi::Value SoftmaxCrossEntropy(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor logits = tensorArg(info, 0, "logits"), targets = tensorArg(info, 1, "targets");
    std::optional<Tensor> w = optionalTensorArg(info, 2, "weights");
    Tensor loss = tensorArg(info, 3, "loss");
    std::optional<Tensor> d = optionalTensorArg(info, 4, "dlogits");
    requireFloat(env, logits, "logits");
    const int64_t classes = lastDim(logits), rows = classes ? logits.numel() / classes : 0;
    if (classes == 0) throwError(env, ErrorCode::Range, "argument 'logits' must have at least one class");
    if (targets.dtype != DType::I32) throwError(env, ErrorCode::Type, "argument 'targets' must be int32 class ids");
    requireNumel(env, targets, rows, "targets");
    if (w) { requireSame(env, logits, "logits", *w, "weights", false); requireNumel(env, *w, rows, "weights"); }
    requireSame(env, logits, "logits", loss, "loss", false);
    requireNumel(env, loss, 1, "loss");
    if (d) requireSame(env, logits, "logits", *d, "dlogits");
    enqueue(env, "softmaxCrossEntropy", [=](orthornn::Backend& b) {
      b.softmaxCrossEntropy(logits.dtype, rows, classes, logits.data(), static_cast<const int32_t*>(targets.data()),
                            w ? w->data() : nullptr, loss.data(), d ? d->data() : nullptr);
    });
    return env.Undefined();
  }

  // meanSquaredError(y, target, weights | null, loss, dy | null)
  Napi::Value MeanSquaredError(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Tensor y = tensorArg(info, 0, "y"), t = tensorArg(info, 1, "target");
    std::optional<Tensor> w = optionalTensorArg(info, 2, "weights");
    Tensor loss = tensorArg(info, 3, "loss");
    std::optional<Tensor> d = optionalTensorArg(info, 4, "dy");
    requireFloat(env, y, "y");
    requireSame(env, y, "y", t, "target");
    const int64_t cols = lastDim(y), rows = cols ? y.numel() / cols : 0;
    if (w) { requireSame(env, y, "y", *w, "weights", false); requireNumel(env, *w, rows, "weights"); }
    requireSame(env, y, "y", loss, "loss", false);
    requireNumel(env, loss, 1, "loss");
    if (d) requireSame(env, y, "y", *d, "dy");
    enqueue(env, "meanSquaredError", [=](orthornn::Backend& b) {
      b.meanSquaredError(y.dtype, rows, cols, y.data(), t.data(), w ? w->data() : nullptr, loss.data(), d ? d->data() : nullptr);
    });
    return env.Undefined();
  }

  std::shared_ptr<ContextState> state_;
};

Napi::Function DefineContext(Napi::Env env) { return ContextWrap::Define(env); }

std::shared_ptr<ContextState> contextArg(const Napi::CallbackInfo& info, size_t i) {
  Napi::Env env = info.Env();
  void* p = nullptr;
  if (!hasTag(info[i], &kContextTag) || napi_unwrap(env, info[i], &p) != napi_ok || !p ||
      !static_cast<ContextWrap*>(p)->state())
    throwError(env, ErrorCode::Type, "argument 'context' must be a NativeContext, got " + describe(info[i]));
  std::shared_ptr<ContextState> state = static_cast<ContextWrap*>(p)->state();
  if (state->disposed) throwError(env, ErrorCode::Disposed, "the context has been disposed");
  return state;
}

Tensor tensorArg(const Napi::CallbackInfo& info, const ContextState& ctx, size_t i, const char* name) {
  return TensorWrap::From(info.Env(), info[i], name)->tensor(info.Env(), &ctx, name);
}

std::optional<Tensor> optionalTensorArg(const Napi::CallbackInfo& info, const ContextState& ctx, size_t i, const char* name) {
  if (info[i].IsNull() || info[i].IsUndefined()) return std::nullopt;
  return tensorArg(info, ctx, i, name);
}

void enqueueOn(Napi::Env env, ContextState& ctx, const char* op, Context::Work work) {
  if (ctx.disposed) throwError(env, ErrorCode::Disposed, "the context has been disposed");
  try {
    ctx.core->enqueue(op, std::move(work));
  } catch (const Error& e) {
    throwError(env, e.code(), e.what());
  }
}

Napi::Object newTensor(Napi::Env env, const std::shared_ptr<ContextState>& ctx, std::vector<int64_t> shape, DType dtype,
                       Tensor* out) {
  if (ctx->disposed) throwError(env, ErrorCode::Disposed, "the context has been disposed");
  Tensor t;
  t.shape = std::move(shape);
  t.dtype = dtype;
  try {
    t.storage = std::make_shared<Storage>(ctx->core->backend(), t.bytes());
  } catch (const Error& e) {
    throwError(env, e.code(), e.what());
  }
  if (out) *out = t;
  return TensorWrap::Create(env, ctx, std::move(t));
}

void shutdownContexts(Napi::Env env) {
  std::set<ContextWrap*> all = addonData(env).contexts;
  for (ContextWrap* c : all) c->shutdown();
}

}  // namespace orthornn::napi
