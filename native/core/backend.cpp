// Default implementations of the composite Backend ops, in terms of the primitive ones.
#include "backend.h"

#include <algorithm>

namespace orthornn {
namespace {
char* at(void* base, int64_t elements, DType dt) { return static_cast<char*>(base) + elements * int64_t(dtypeSize(dt)); }
const char* at(const void* base, int64_t elements, DType dt) {
  return static_cast<const char*>(base) + elements * int64_t(dtypeSize(dt));
}
}  // namespace

void Backend::elmanForwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* Wt,
                                     const void* bias, const Projection& input, const Logits& logits, void* A,
                                     void* H) {
  inputProjection(dt, T, B, n, input, A);
  for (int64_t t = 0; t < T; ++t) {
    char* At = at(A, t * B * n, dt);
    gemm(dt, false, false, B, n, n, 1.0, at(H, t * B * n, dt), n, Wt, n, 1.0, At, n);
    biasActivation(dt, act, B, n, At, bias, at(H, (t + 1) * B * n, dt));
  }
  forwardLogits(dt, T, B, n, H, logits);
}

void Backend::inputProjection(DType dt, int64_t T, int64_t B, int64_t n, const Projection& input, void* A) {
  if (input.x) gemm(dt, false, true, T * B, n, input.width, 1.0, input.x, input.width, input.w, input.width, 0.0, A, n);
}

void Backend::forwardLogits(DType dt, int64_t T, int64_t B, int64_t n, const void* H, const Logits& logits) {
  if (!logits.W_out) return;
  const int64_t from = std::min(logits.from, T);
  gemm(dt, false, true, (T - from) * B, logits.k, n, 1.0, at(H, (from + 1) * B * n, dt), n, logits.W_out, n, 0.0,
       logits.Y, logits.k);
}

void Backend::elmanBackwardRecurrence(DType dt, Activation act, int64_t T, int64_t B, int64_t n, const void* W,
                                      const void* H, const Projection& input, const Projection& output, void* dH,
                                      void* dA, const BackwardSums& sums, int64_t givenFrom, double clip) {
  givenFrom = std::min(givenFrom, T);
  outputContribution(dt, T, B, n, output, dH, givenFrom);
  for (int64_t t = T - 1; t >= 0; --t) {
    char* dHt = at(dH, t * B * n, dt);
    if (t + 1 < T) gemm(dt, false, false, B, n, n, 1.0, at(dA, (t + 1) * B * n, dt), n, W, n, 1.0, dHt, n);
    activationBackward(dt, act, B * n, dHt, at(H, (t + 1) * B * n, dt), at(dA, t * B * n, dt));
    if (clip > 0) clipElements(dt, B * n, clip, at(dA, t * B * n, dt));
  }
  backwardSums(dt, T, B, n, H, input, output, dH, dA, sums, givenFrom);
}

void Backend::outputContribution(DType dt, int64_t T, int64_t B, int64_t n, const Projection& output, void* dH,
                                 int64_t givenFrom) {
  givenFrom = std::min(givenFrom, T);
  if (givenFrom > 0) fill(dt, givenFrom * B * n, 0.0, dH);
  if (output.x && givenFrom < T)
    gemm(dt, false, false, (T - givenFrom) * B, n, output.width, 1.0, output.x, output.width, output.w, n, 0.0,
         at(dH, givenFrom * B * n, dt), n);
}

void Backend::backwardSums(DType dt, int64_t T, int64_t B, int64_t n, const void* H, const Projection& input,
                           const Projection& output, const void* dH, const void* dA, const BackwardSums& sums,
                           int64_t givenFrom) {
  if ((sums.dW_in && !input.x) || (sums.dW_out && !output.x))
    throw Error(ErrorCode::Internal, "elmanBackwardRecurrence: dW_in needs the input projection, dW_out the output's");
  if (sums.hiddenNorms) groupNorms(dt, T, B * n, dH, sums.hiddenNorms);
  if (sums.db) columnSum(dt, T * B, n, dA, 0.0, sums.db);
  if (sums.dW_in)
    gemm(dt, true, false, n, input.width, T * B, 1.0, dA, n, input.x, input.width, 0.0, sums.dW_in, input.width);
  if (sums.dW_out) {
    givenFrom = std::min(givenFrom, T);
    const int64_t rows = (T - givenFrom) * B;
    gemm(dt, true, false, output.width, n, rows, 1.0, output.x, output.width, at(H, (givenFrom + 1) * B * n, dt), n,
         0.0, sums.dW_out, n);
  }
}

bool Backend::supports(Op op, DType dtype) const {
  const int backend = std::string(name()) == "cuda" ? 1 : 0;
  return (opSpec(op).dtypes[backend] >> int(dtype)) & 1;
}

const char* fusedName(Fused op) {
  switch (op) {
    case Fused::ElmanRecurrence: return "elmanRecurrence";
    case Fused::LstmRecurrence: return "lstmRecurrence";
    case Fused::CayleyFrameSolve: return "cayleyFrameSolve";
    case Fused::CayleyFactor: return "cayleyFactor";
    case Fused::ElmanStep: return "elmanStep";
    case Fused::OpSequence: return "sequence";
  }
  return "?";
}

std::vector<std::string> Backend::variants(Fused) const { return {"reference"}; }

void Backend::forceVariant(Fused op, const std::string& variant) {
  if (variant.empty()) {
    forced_[int(op)].store(-1, std::memory_order_relaxed);
    return;
  }
  const std::vector<std::string> names = variants(op);
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == variant) {
      forced_[int(op)].store(int(i), std::memory_order_relaxed);
      return;
    }
  std::string list;
  for (const std::string& n : names) list += (list.empty() ? "'" : ", '") + n + "'";
  throw Error(ErrorCode::Range, std::string("variant of ") + fusedName(op) + " on the " + name() + " backend must be " +
                                    list + ", got '" + variant + "'");
}

std::string Backend::forcedVariant(Fused op) const {
  const int v = forced_[int(op)].load(std::memory_order_relaxed);
  return v < 0 ? "" : variants(op)[size_t(v)];
}

std::string Backend::lastVariant(Fused op) const {
  const int v = last_[int(op)].load(std::memory_order_relaxed);
  return v < 0 ? "" : variants(op)[size_t(v)];
}

void Backend::clipElements(DType, int64_t, double, void*) {
  throw Error(ErrorCode::Unsupported, "clipElements is not implemented by the " + std::string(name()) + " backend");
}

void Backend::lstmForwardRecurrence(DType dt, int64_t T, int64_t B, int64_t n, const void* Whh, const void* biasIh,
                                    const void* biasHh, void* Z, void* H, void* C) {
  const int64_t n4 = 4 * n;
  for (int64_t t = 0; t < T; ++t) {
    char* Zt = at(Z, t * B * n4, dt);
    gemm(dt, false, true, B, n4, n, 1.0, at(H, t * B * n, dt), n, Whh, n, 1.0, Zt, n4);
    lstmCellForward(dt, B, n, Zt, biasIh, biasHh, at(C, t * B * n, dt), at(C, (t + 1) * B * n, dt),
                    at(H, (t + 1) * B * n, dt));
  }
}

void Backend::lstmBackwardSums(DType dt, int64_t T, int64_t B, int64_t n, const void* dZ, const LstmSums& sums) {
  const int64_t n4 = 4 * n;
  if (sums.dWhh) gemm(dt, true, false, n4, n, T * B, 1.0, dZ, n4, sums.H, n, 0.0, sums.dWhh, n);
  if (sums.db) columnSum(dt, T * B, n4, dZ, 0.0, sums.db);
}

void Backend::lstmBackwardRecurrence(DType dt, int64_t T, int64_t B, int64_t n, const void* Whh, const void* C,
                                     void* Z, void* dH, void* dC, const LstmSums& sums) {
  const int64_t n4 = 4 * n;
  for (int64_t t = T - 1; t >= 0; --t) {
    char* dHt = at(dH, t * B * n, dt);
    // dh_t += W_hhᵀ dz_{t+1}  (row form: dZ_{t+1} W_hh)
    if (t + 1 < T) gemm(dt, false, false, B, n, n4, 1.0, at(Z, (t + 1) * B * n4, dt), n4, Whh, n, 1.0, dHt, n);
    lstmCellBackward(dt, B, n, at(Z, t * B * n4, dt), at(C, t * B * n, dt), at(C, (t + 1) * B * n, dt), dHt, dC);
  }
  lstmBackwardSums(dt, T, B, n, Z, sums);
}

}  // namespace orthornn
