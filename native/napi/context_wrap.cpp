// The JS Context: tensor creation, awaited results, workspaces, variants, and a method for
// every bound op of native/ops.json, each checking its arguments against the op's slots
// (call.cpp) before its body (ops.cpp, models.cpp, lstm.cpp) copies them into plain C++ values
// and queues the work, so worker threads never touch JS values.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "../core/threads.h"
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
        method<&ContextWrap::RunInBackground>(env, "runInBackground"),
        method<&ContextWrap::Variants>(env, "variants"),
        method<&ContextWrap::FromArray>(env, "fromArray"),
        method<&ContextWrap::Empty>(env, "empty"),
        method<&ContextWrap::Read>(env, "read"),
        method<&ContextWrap::Sync>(env, "sync"),
        method<&ContextWrap::DisposeValue>(env, "dispose"),
        method<&ContextWrap::CreateWorkspace>(env, "createWorkspace"),
        method<&ContextWrap::ReleaseWorkspace>(env, "releaseWorkspace"),
        method<&ContextWrap::BeginSequence>(env, "beginSequence"),
        method<&ContextWrap::EndSequence>(env, "endSequence"),
        Napi::PropertyDescriptor::Accessor<dispatch<&ContextWrap::Backend>>("backend"),
        Napi::PropertyDescriptor::Accessor<dispatch<&ContextWrap::Device>>("device"),
        Napi::PropertyDescriptor::Accessor<dispatch<&ContextWrap::Disposed>>("disposed"),
    });
    // Every bound op of native/ops.json, in one style.
    std::vector<Napi::PropertyDescriptor> ops;
#define ORTHORNN_OP_METHOD(E, name) \
  ops.push_back(Napi::PropertyDescriptor::Value(#name, Napi::Function::New<opMethod<Op::E, &bodies::name>>(env, #name), napi_default));
    ORTHORNN_BOUND_OPS(ORTHORNN_OP_METHOD)
#undef ORTHORNN_OP_METHOD
    proto.DefineProperties(ops);
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
    state_->recording.reset();
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

  // runInBackground(): from the next queued op on, the context's worker thread runs only when
  // a core is otherwise idle (threads.h); returns whether the system has such a priority.
  Napi::Value RunInBackground(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    core(env);
    if (kBackgroundPriority) enqueue(env, "runInBackground", [](orthornn::Backend&) { runThisThreadInBackground(); });
    return Napi::Boolean::New(env, kBackgroundPriority);
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
    o.Set("graphsUpdated", Napi::Number::New(env, double(c.graphsUpdated)));
    return o;
  }

  // supports(op, dtype): whether this context's backend runs `op` (any op of native/ops.json,
  // bound or a backend primitive) on `dtype`.
  Napi::Value Supports(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!info[0].IsString()) throwError(env, ErrorCode::Type, "supports: argument 'op' must be an op name, got " + describe(info[0]));
    const std::string name = info[0].As<Napi::String>();
    const DType dtype = parseDType(env, info[1], "dtype");
    for (int i = 0; i < kOpCount; ++i)
      if (name == kOps[i].name) return Napi::Boolean::New(env, state_->core->backend()->supports(Op(i), dtype));
    throwError(env, ErrorCode::Range, "supports: argument 'op' must be an op of native/ops.json, got '" + name + "'");
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
    flushRecording(env, *state_);  // what was recorded so far runs before this completes
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

  // createWorkspace(): scratch memory a model keeps across steps. The External is type-tagged
  // and records its context: workspaceArg() refuses it anywhere else, since its buffers belong
  // to that context's device and worker.
  Napi::Value CreateWorkspace(const Napi::CallbackInfo& info) {
    core(info.Env());
    auto handle = std::make_unique<WorkspaceHandle>();
    handle->ws = std::make_shared<Workspace>(state_->core->backend());
    handle->owner = state_;
    auto& list = state_->workspaces;
    list.erase(std::remove_if(list.begin(), list.end(), [](const std::weak_ptr<Workspace>& w) { return w.expired(); }),
               list.end());
    list.push_back(handle->ws);
    auto ext = Napi::External<WorkspaceHandle>::New(info.Env(), handle.get(), [](Napi::BasicEnv, WorkspaceHandle* p) { delete p; });
    handle.release();
    ext.TypeTag(&kWorkspaceTag);
    return ext;
  }

  // releaseWorkspace(workspace): frees its buffers once the work queued before is done.
  Napi::Value ReleaseWorkspace(const Napi::CallbackInfo& info) {
    core(info.Env());
    WorkspaceRef ws = workspaceArg(info.Env(), info[0], state_);
    enqueue(info.Env(), "releaseWorkspace", [ws](orthornn::Backend&) { ws->release(); });
    return info.Env().Undefined();
  }

  // beginSequence(): the ops given to this context from now on are recorded, and endSequence()
  // queues them as one task (see Recording in binding.h). Sequences do not nest.
  Napi::Value BeginSequence(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    core(env);
    if (state_->recording) throwError(env, ErrorCode::Range, "beginSequence: a sequence is already being recorded (sequences do not nest)");
    state_->recording.emplace();
    return env.Undefined();
  }

  // endSequence(): queues the ops recorded since beginSequence() as one task: in order, each
  // named as itself in an error, and replayed by the backend as one unit where it can.
  Napi::Value EndSequence(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    core(env);
    if (!state_->recording) throwError(env, ErrorCode::Range, "endSequence: no sequence is being recorded (call beginSequence first)");
    Recording recording = std::move(*state_->recording);
    state_->recording.reset();
    queueRecording(env, *state_, std::move(recording));
    return env.Undefined();
  }

  // A bound op of native/ops.json: its arguments checked against the op's slots, then its body.
  template <Op O, void (*Body)(Call&)>
  static Napi::Value opMethod(const Napi::CallbackInfo& info) {
    return guard(info.Env(), [&] {
      Call call(info, O, self(info)->state_);
      Body(call);
      return info.Env().Undefined();
    });
  }

  std::shared_ptr<ContextState> state_;
};

Napi::Function DefineContext(Napi::Env env) { return ContextWrap::Define(env); }

void queueRecording(Napi::Env env, ContextState& ctx, Recording recording) {
  if (recording.steps.empty()) return;
  std::vector<uint64_t> key = recording.replayable ? std::move(recording.key) : std::vector<uint64_t>();
  auto workspaces = std::move(recording.workspaces);
  auto steps = std::move(recording.steps);
  enqueueOn(env, ctx, "sequence", [steps = std::move(steps), key = std::move(key), workspaces = std::move(workspaces)](orthornn::Backend& be) {
    auto body = [&] {
      for (const auto& [op, work] : steps) {
        try {
          be.beginOp(op);
          work(be);
        } catch (const OpError&) {
          throw;
        } catch (const Error& e) {
          throw OpError(e.code(), e.what(), op);
        } catch (const std::bad_alloc&) {
          throw OpError(ErrorCode::OutOfMemory, "out of memory", op);
        } catch (const std::exception& e) {
          throw OpError(ErrorCode::Internal, e.what(), op);
        }
      }
    };
    if (key.empty()) return body();
    // The workspaces' generations only ever grow: their largest changes when any of them does.
    be.runCall(Fused::OpSequence, key, [&] {
      uint64_t g = 0;
      for (const auto& ws : workspaces) g = std::max(g, ws->generation());
      return g;
    }, body);
  });
}

void flushRecording(Napi::Env env, ContextState& ctx) {
  if (!ctx.recording || ctx.recording->steps.empty()) return;
  Recording done = std::move(*ctx.recording);
  done.replayable = false;  // a part of a sequence runs op by op
  ctx.recording.reset();    // so that enqueueOn queues the part
  queueRecording(env, ctx, std::move(done));
  ctx.recording.emplace();
  ctx.recording->replayable = false;  // and so does the rest
}

Tensor tensorArg(const Napi::CallbackInfo& info, const ContextState& ctx, size_t i, const char* name) {
  return TensorWrap::From(info.Env(), info[i], name)->tensor(info.Env(), &ctx, name);
}

void enqueueOn(Napi::Env env, ContextState& ctx, const char* op, Context::Work work) {
  if (ctx.disposed) throwError(env, ErrorCode::Disposed, "the context has been disposed");
  if (ctx.recording) {
    ctx.recording->steps.emplace_back(op, std::move(work));
    ctx.recording->replayable = false;
    return;
  }
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
