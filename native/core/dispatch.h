// Shared by the backends' element-type dispatch: typed views of untyped buffers, and one
// call of a templated body with a value of the tensor's floating type.
#pragma once
#include <string>
#include "dtype.h"
#include "error.h"

namespace orthornn {

template <typename T>
const T* cp(const void* p) { return static_cast<const T*>(p); }
template <typename T>
T* mp(void* p) { return static_cast<T*>(p); }

// body(float{}) or body(double{}); any other dtype is a TypeError naming `op`.
template <typename F>
void onFloat(DType dt, const char* op, F&& body) {
  switch (dt) {
    case DType::F32: body(float{}); return;
    case DType::F64: body(double{}); return;
    default: fail(ErrorCode::Type, std::string(op) + ": expected a float32 or float64 tensor, got " + dtypeName(dt));
  }
}

}  // namespace orthornn
