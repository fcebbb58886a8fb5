// Counter-based random numbers (Philox4x32-10, Salmon et al. 2011): element i of a tensor
// filled with seed s is a pure function of (s, i), so a seeded tensor is the same on every
// backend and for every thread split.
#pragma once
#include <cmath>
#include <cstdint>
#include "elementwise.h"

namespace orthornn {

struct Philox4 {
  uint32_t v[4];
};

ORTHORNN_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

ORTHORNN_HD Philox4 philox4x32(uint64_t counter, uint64_t seed) {
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32);
  uint32_t c2 = 0, c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    uint32_t lo0 = mulhilo32(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = mulhilo32(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  Philox4 r;
  r.v[0] = c0; r.v[1] = c1; r.v[2] = c2; r.v[3] = c3;
  return r;
}

// Uniform in the open interval (0, 1) with 53 random bits.
ORTHORNN_HD double philoxUniform(uint64_t seed, uint64_t index) {
  Philox4 r = philox4x32(index, seed);
  uint64_t bits = (static_cast<uint64_t>(r.v[0]) << 21) ^ static_cast<uint64_t>(r.v[1] >> 11);
  bits &= (uint64_t(1) << 53) - 1;
  return (static_cast<double>(bits) + 0.5) * (1.0 / 9007199254740992.0);
}

// log and cos from +, −, ×, ÷ and exact scalings only, in a fixed order, so that the CPU and
// the GPU round identically (both are compiled without FMA contraction: -ffp-contract=off,
// nvcc --fmad=false) and a seeded normal tensor is bit-for-bit the same on every backend.
// libm's and CUDA's log/cos are each within an ulp or so, but not always the same ulp.
// Accurate to a few ulps, which is all Box–Muller needs.

// log x for x > 0 (finite): x = m 2^e with m in [√½, √2), log m = 2 atanh s with
// s = (m − 1)/(m + 1), |s| ≤ 0.172, whose odd series reaches double precision in 14 terms.
ORTHORNN_HD double portableLog(double x) {
  int e = 0;
  double m = frexp(x, &e);
  if (m < 0.70710678118654752440) {
    m = m * 2.0;
    e -= 1;
  }
  const double s = (m - 1.0) / (m + 1.0), s2 = s * s;
  double p = 1.0 / 27.0;
  for (int j = 12; j >= 0; --j) p = p * s2 + 1.0 / double(2 * j + 1);
  return double(e) * 0.69314718055994530942 + 2.0 * s * p;
}

// cos 2πu: u is reduced in turns with exact subtractions (Sterbenz) to r ∈ [0, 1/8], where
// Taylor series of cos or sin in 2πr (≤ π/4) converge to double precision in 11 terms.
ORTHORNN_HD double portableCos2Pi(double u) {
  double r = u - floor(u);          // [0, 1)
  if (r > 0.5) r = 1.0 - r;         // cos is even and 1-periodic in turns
  bool negate = false;
  if (r > 0.25) {                   // cos(π − x) = −cos x
    r = 0.5 - r;
    negate = true;
  }
  const bool useSin = r > 0.125;    // cos(π/2 − x) = sin x
  if (useSin) r = 0.25 - r;
  const double x = 6.283185307179586476925 * r, x2 = x * x;
  double p = 1.0;
  double v;
  if (useSin) {
    for (int k = 11; k >= 1; --k) p = 1.0 - x2 / double((2 * k) * (2 * k + 1)) * p;
    v = x * p;
  } else {
    for (int k = 11; k >= 1; --k) p = 1.0 - x2 / double((2 * k - 1) * (2 * k)) * p;
    v = p;
  }
  return negate ? -v : v;
}

// Standard normal by Box–Muller on two uniforms drawn from one Philox block.
ORTHORNN_HD double philoxNormal(uint64_t seed, uint64_t index) {
  Philox4 r = philox4x32(index, seed);
  uint64_t b1 = ((static_cast<uint64_t>(r.v[0]) << 21) ^ (r.v[1] >> 11)) & ((uint64_t(1) << 53) - 1);
  uint64_t b2 = ((static_cast<uint64_t>(r.v[2]) << 21) ^ (r.v[3] >> 11)) & ((uint64_t(1) << 53) - 1);
  double u1 = (static_cast<double>(b1) + 0.5) * (1.0 / 9007199254740992.0);
  double u2 = (static_cast<double>(b2) + 0.5) * (1.0 / 9007199254740992.0);
  return sqrt(-2.0 * portableLog(u1)) * portableCos2Pi(u2);
}

}  // namespace orthornn
