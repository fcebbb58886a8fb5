#include "binding.h"

namespace orthornn::napi {

namespace {
// The address Create() passes to the constructor: nothing else can make a NativeTensor.
int constructionKey;

// Accessors and methods are plain functions that check the receiver's type tag before
// unwrapping it: `NativeTensor.prototype.shape` read on another wrapped object, or on an
// object whose prototype was set to NativeTensor's, is a TypeError, never a reinterpretation.
template <Napi::Value (TensorWrap::*M)(const Napi::CallbackInfo&)>
Napi::Value method(const Napi::CallbackInfo& info) {
  return guard(info.Env(), [&] {
    TensorWrap* w = TensorWrap::From(info.Env(), info.This(), "this");
    return (w->*M)(info);
  });
}
}  // namespace

Napi::Function TensorWrap::Define(Napi::Env env) {
  Napi::Function cls = DefineClass(env, "NativeTensor", {});
  Napi::Object proto = cls.Get("prototype").As<Napi::Object>();
  proto.DefineProperties({
      Napi::PropertyDescriptor::Value("dispose", Napi::Function::New<method<&TensorWrap::DisposeValue>>(env, "dispose"),
                                      napi_default),
      Napi::PropertyDescriptor::Accessor<method<&TensorWrap::Shape>>("shape"),
      Napi::PropertyDescriptor::Accessor<method<&TensorWrap::DType>>("dtype"),
      Napi::PropertyDescriptor::Accessor<method<&TensorWrap::Device>>("device"),
      Napi::PropertyDescriptor::Accessor<method<&TensorWrap::Disposed>>("disposed"),
      Napi::PropertyDescriptor::Accessor<method<&TensorWrap::Bytes>>("bytes"),
  });
  return cls;
}

TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  // Constructed only by Create(), which passes a private key as a guard.
  if (info.Length() != 1 || !info[0].IsExternal() || info[0].As<Napi::External<int>>().Data() != &constructionKey)
    throwError(info.Env(), ErrorCode::Type, "tensors are created through a Context, not with `new`");
  info.This().As<Napi::Object>().TypeTag(&kTensorTag);
}

Napi::Object TensorWrap::Create(Napi::Env env, std::shared_ptr<ContextState> ctx, Tensor tensor) {
  Napi::Object obj = addonData(env).tensorClass.New({Napi::External<int>::New(env, &constructionKey)});
  TensorWrap* w = TensorWrap::Unwrap(obj);
  w->shape_ = tensor.shape;
  w->dtype_ = tensor.dtype;
  w->device_ = tensor.storage->backend().device();
  if (w->device_ == "cpu") {
    // Host memory the GC should weigh; device memory is invisible to it (hence dispose()).
    w->externalBytes_ = static_cast<int64_t>(tensor.bytes());
    Napi::MemoryManagement::AdjustExternalMemory(env, w->externalBytes_);
  }
  w->tensor_ = std::move(tensor);
  w->ctx_ = std::move(ctx);
  w->ctx_->tensors.insert(w);
  return obj;
}

bool TensorWrap::Is(Napi::Env, const Napi::Value& v) { return v.IsObject() && hasTag(v, &kTensorTag); }

TensorWrap* TensorWrap::From(Napi::Env env, const Napi::Value& v, const std::string& argName) {
  TensorWrap* w = nullptr;
  if (Is(env, v)) {
    void* p = nullptr;
    if (napi_unwrap(env, v, &p) == napi_ok) w = static_cast<TensorWrap*>(p);
  }
  if (!w) throwError(env, ErrorCode::Type, "argument '" + argName + "' must be a tensor, got " + describe(v));
  return w;
}

void TensorWrap::release(Napi::BasicEnv env) {
  if (tensor_) {
    tensor_.reset();
    if (externalBytes_) Napi::MemoryManagement::AdjustExternalMemory(env, -externalBytes_);
    externalBytes_ = 0;
  }
}

TensorWrap::~TensorWrap() {
  if (ctx_) ctx_->tensors.erase(this);
}

void TensorWrap::Finalize(Napi::BasicEnv env) { release(env); }

const Tensor& TensorWrap::tensor(Napi::Env env, const ContextState* ctx, const char* argName) const {
  if (!tensor_)
    throwError(env, ErrorCode::Disposed,
               std::string("argument '") + argName + "': the tensor (" + dtypeName(dtype_) + " " + shapeString(shape_) +
                   ") has been disposed");
  if (ctx && ctx != ctx_.get())
    throwError(env, ErrorCode::Range,
               std::string("argument '") + argName + "': the tensor belongs to another context (" + device_ + ")");
  return *tensor_;
}

Napi::Value TensorWrap::Shape(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), shape_.size());
  for (size_t i = 0; i < shape_.size(); ++i) a.Set(uint32_t(i), Napi::Number::New(info.Env(), double(shape_[i])));
  return a;
}
Napi::Value TensorWrap::DType(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), dtypeName(dtype_)); }
Napi::Value TensorWrap::Device(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), device_); }
Napi::Value TensorWrap::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !tensor_); }
Napi::Value TensorWrap::Bytes(const Napi::CallbackInfo& info) {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return Napi::Number::New(info.Env(), double(n * int64_t(dtypeSize(dtype_))));
}
Napi::Value TensorWrap::DisposeValue(const Napi::CallbackInfo& info) {
  release(info.Env());
  return info.Env().Undefined();
}

}  // namespace orthornn::napi
