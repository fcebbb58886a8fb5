#include "binding.h"

namespace orthornn::napi {

Napi::Function TensorWrap::Define(Napi::Env env) {
  return DefineClass(env, "NativeTensor",
                     {
                         InstanceAccessor<&TensorWrap::Shape>("shape"),
                         InstanceAccessor<&TensorWrap::DType>("dtype"),
                         InstanceAccessor<&TensorWrap::Device>("device"),
                         InstanceAccessor<&TensorWrap::Disposed>("disposed"),
                         InstanceAccessor<&TensorWrap::Bytes>("bytes"),
                         InstanceMethod<&TensorWrap::Dispose>("dispose"),
                     });
}

TensorWrap::TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {
  // Constructed only by Create(), which passes an External as a guard.
  if (info.Length() != 1 || !info[0].IsExternal())
    throwError(info.Env(), ErrorCode::Type, "tensors are created through a Context, not with `new`");
}

Napi::Object TensorWrap::Create(Napi::Env env, std::shared_ptr<ContextState> ctx, Tensor tensor) {
  Napi::Object obj = addonData(env).tensorClass.New({Napi::External<void>::New(env, nullptr)});
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

bool TensorWrap::Is(Napi::Env env, const Napi::Value& v) {
  return v.IsObject() && v.As<Napi::Object>().InstanceOf(addonData(env).tensorClass.Value());
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
void TensorWrap::Dispose(const Napi::CallbackInfo& info) { release(info.Env()); }

}  // namespace orthornn::napi
