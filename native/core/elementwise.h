// Element-wise arithmetic shared by the CPU loops and the CUDA kernels, so the
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

// float32 tanh as a rational function, branch-free so that loops over it vectorise (libm's
// tanhf is scalar and dominated the CPU forward pass). Eigen's minimax coefficients: a
// relative error of a few float32 ulps on the whole line (checked against float64 in the tests).
ORTHORNN_HD float tanhRational(float x) {
  const float clamp = 7.99881172180175781f;
  x = x > clamp ? clamp : (x < -clamp ? -clamp : x);
  const float x2 = x * x;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  return x * p / q;
}

ORTHORNN_HD float tanhOf(float x) { return tanhRational(x); }
ORTHORNN_HD double tanhOf(double x) { return tanh(x); }

template <typename T>
ORTHORNN_HD T activate(Activation act, T a) {
  switch (act) {
    case Activation::Tanh: return tanhOf(a);
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

// Element-wise gradient clipping to [−c, c]; c ≤ 0 leaves g as it is. NaN stays NaN.
template <typename T>
ORTHORNN_HD T clipGradient(T g, T c) {
  if (!(c > T(0))) return g;
  return g > c ? c : (g < -c ? -c : g);
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

// σ for the LSTM's gates: in float32 through the rational tanh, σ(x) = (1 + tanh(x/2)) / 2
// (branch-free, so the gate loops vectorise; absolute error a few float32 ulps, and σ of a very
// negative x comes out as 0 or about 1e-7 instead of e^x); in float64 exactly.
ORTHORNN_HD float sigmoidOf(float x) { return 0.5f + 0.5f * tanhRational(0.5f * x); }
ORTHORNN_HD double sigmoidOf(double x) { return sigmoid(x); }

// (M4) of docs/math.md: s = 2m(σ(p) − 1/2) + 1 ∈ [1 − m, 1 + m], clamped at 0 from below (m > 1).
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

// One LSTM cell (PyTorch's nn.LSTM, gate order i, f, g, o) for one (sequence, unit) pair:
// on entry zi..zo are the gate pre-activations, on return the activated gates
// i = σ(zi), f = σ(zf), g = tanh(zg), o = σ(zo), kept for the backward pass; then
// c = f ⊙ c_prev + i ⊙ g and h = o ⊙ tanh(c).
template <typename T>
ORTHORNN_HD void lstmCellForwardAt(T& zi, T& zf, T& zg, T& zo, T cPrev, T& c, T& h) {
  const T i = sigmoidOf(zi), f = sigmoidOf(zf), g = tanhOf(zg), o = sigmoidOf(zo);
  const T cn = f * cPrev + i * g;
  zi = i;
  zf = f;
  zg = g;
  zo = o;
  c = cn;
  h = o * tanhOf(cn);
}

// Its backward for the same pair. On entry gi..go are the activated gates of the forward
// pass, dh = ∂L/∂h_t (total), and dc = ∂L/∂c_t through c_{t+1} only (the carry from the
// step after; 0 at the last step). On return gi..go hold ∂L/∂(pre-activations) and dc holds
// ∂L/∂c_{t−1}, the carry for the step before:
//   dc_t = dc + dh ⊙ o ⊙ (1 − tanh²(c_t))
//   dzi = dc_t ⊙ g ⊙ i(1 − i)      dzf = dc_t ⊙ c_{t−1} ⊙ f(1 − f)
//   dzg = dc_t ⊙ i ⊙ (1 − g²)      dzo = dh ⊙ tanh(c_t) ⊙ o(1 − o)
//   dc_{t−1} = dc_t ⊙ f
template <typename T>
ORTHORNN_HD void lstmCellBackwardAt(T& gi, T& gf, T& gg, T& go, T cPrev, T c, T dh, T& dc) {
  const T i = gi, f = gf, g = gg, o = go;
  const T tc = tanhOf(c);
  const T dct = dc + dh * o * (T(1) - tc * tc);
  gi = dct * g * i * (T(1) - i);
  gf = dct * cPrev * f * (T(1) - f);
  gg = dct * i * (T(1) - g * g);
  go = dh * tc * o * (T(1) - o);
  dc = dct * f;
}

// Optimiser updates for one element (PyTorch's conventions; weight decay as L2 on the gradient).
// RMSprop: ms ← ρ ms + (1 − ρ) g², then PyTorch's p ← p − lr g / (√ms + ε), or with
// `epsInside` Lasagne's p ← p − lr g / √(ms + ε) (the paper's authors' optimiser: for gradients
// much smaller than √ε the two are different optimisers).
template <typename T>
ORTHORNN_HD void rmspropUpdate(T& p, T g, T& ms, T lr, T rho, T eps, T decay, bool epsInside) {
  g += decay * p;
  ms = rho * ms + (T(1) - rho) * g * g;
  p -= lr * g / (epsInside ? sqrt(ms + eps) : sqrt(ms) + eps);
}

// Adam: m ← β1 m + (1 − β1) g, v ← β2 v + (1 − β2) g², p ← p − lr m̂ / (√v̂ + ε) with the bias
// corrections c1 = 1 − β1^t, c2 = 1 − β2^t passed in.
template <typename T>
ORTHORNN_HD void adamUpdate(T& p, T g, T& m, T& v, T lr, T beta1, T beta2, T eps, T decay, T c1, T c2) {
  g += decay * p;
  m = beta1 * m + (T(1) - beta1) * g;
  v = beta2 * v + (T(1) - beta2) * g * g;
  p -= lr * (m / c1) / (sqrt(v / c2) + eps);
}

// SGD with momentum: b ← μ b + g (b ← g on the first step), p ← p − lr b.
template <typename T>
ORTHORNN_HD void sgdUpdate(T& p, T g, T& b, T lr, T momentum, T decay, bool first) {
  g += decay * p;
  b = first ? g : momentum * b + g;
  p -= lr * b;
}

template <typename T>
ORTHORNN_HD bool isFiniteValue(T x) {
  return x - x == T(0);  // false for NaN and ±Inf, without <cmath> classification on device
}

}  // namespace orthornn
