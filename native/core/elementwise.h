// Element-wise arithmetic shared by the CPU loops and the CUDA kernels (DESIGN §4), so the
// CPU tests cover the arithmetic the GPU runs. Nothing here allocates, throws or branches
// on anything but the values.
#pragma once
#include <cmath>

#if defined(__CUDACC__)
#define ORTHORNN_HD __host__ __device__ __forceinline__
#else
#define ORTHORNN_HD inline
#endif

namespace orthornn {

enum class Activation : int { Tanh = 0, Relu = 1, Identity = 2 };

template <typename T>
ORTHORNN_HD T activate(Activation act, T a) {
  switch (act) {
    case Activation::Tanh: return tanh(a);
    case Activation::Relu: return a > T(0) ? a : T(0);
    default: return a;
  }
}

// φ'(a) expressed through h = φ(a), so the backward pass needs only the stored outputs:
// tanh' = 1 − h², relu' = [a > 0] = [h > 0], identity' = 1.
template <typename T>
ORTHORNN_HD T activationDerivativeFromOutput(Activation act, T h) {
  switch (act) {
    case Activation::Tanh: return T(1) - h * h;
    case Activation::Relu: return h > T(0) ? T(1) : T(0);
    default: return T(1);
  }
}

template <typename T>
ORTHORNN_HD T sigmoid(T x) {
  // Two branches keep exp() from overflowing for large |x|.
  if (x >= T(0)) {
    T z = exp(-x);
    return T(1) / (T(1) + z);
  }
  T z = exp(x);
  return z / (T(1) + z);
}

// DESIGN §2.2: s = 2m(σ(p) − 1/2) + 1 ∈ [1 − m, 1 + m], clamped at 0 from below (m > 1).
template <typename T>
ORTHORNN_HD T marginSigmoid(T p, T margin) {
  T s = T(2) * margin * (sigmoid(p) - T(0.5)) + T(1);
  return s > T(0) ? s : T(0);
}

// ds/dp = 2m σ(p)(1 − σ(p)), and 0 where the clamp at 0 is active.
template <typename T>
ORTHORNN_HD T marginSigmoidDerivative(T p, T margin) {
  T sg = sigmoid(p);
  T s = T(2) * margin * (sg - T(0.5)) + T(1);
  if (s <= T(0)) return T(0);
  return T(2) * margin * sg * (T(1) - sg);
}

template <typename T>
ORTHORNN_HD bool isFiniteValue(T x) {
  return x - x == T(0);  // false for NaN and ±Inf, without <cmath> classification on device
}

}  // namespace orthornn
