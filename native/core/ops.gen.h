// Generated from native/ops.json by scripts/gen-ops.js: edit the table, then `npm run gen:ops`.
#pragma once
#include <cstdint>

namespace orthornn {

// Every native op: the bound ones (NativeContext methods) and the backend primitives they use.
enum class Op : int {
  Fill,  // Every element of tensor set to value (an int32 for an int32 tensor).
  RandomNormal,  // tensor ← samples of N(mean, std²) from the counter-based generator at seed.
  RandomUniform,  // tensor ← samples of U[low, high) from the counter-based generator at seed.
  Copy,  // out ← source.
  Gemm,  // out = α op(a) op(b) + β out: 2-D, or batched when out is 3-D (a 2-D a or b is shared by every batch entry).
  GemmStridedBatched,  // gemm over a batch of matrices spaced by strides (the batched form of the bound gemm).
  LuFactor,  // lu ← the LU factors of a with partial pivoting, pivots ← LAPACK's 1-based interchanges.
  LuFactorNoPivot,  // luFactor, skipping the pivot search where partial pivoting would make no interchanges.
  LuSolve,  // out ← A⁻¹ b from luFactor's output; b an n-vector or n×r matrix.
  LuSolveRight,  // B ← B A⁻¹ from luFactor's output (the frame-form Cayley step).
  Qr,  // Thin QR of a (m×n): q m×k with orthonormal columns, r k×n upper triangular with diag(r) ≥ 0, k = min(m, n).
  Svd,  // Thin SVD a = u diag(s) vt, singular values descending.
  Axpby,  // out = α x + β y (out may be x or y).
  Mul,  // out = x ⊙ y.
  ScaleColumns,  // out[r, c] = x[r, c] · s[c] (x diag(s); out may be x).
  ColumnDots,  // out[c] = Σ_r x[r, c] y[r, c] (diag(xᵀ y)).
  AddDiagonal,  // x[i, i] += value.
  Transpose,  // out = xᵀ.
  CayleySystem,  // out = I + α (x − xᵀ), the Cayley system.
  CayleyFrameSolve,  // The frame-form Cayley solve built, factorised and solved in one (a fused op with variants).
  RmspropStep,  // RMSprop on param in place (epsInside: ε inside the square root, Lasagne's form).
  AdamStep,  // Adam on param in place; step counts from 1.
  SgdStep,  // SGD with momentum on param in place; first: the momentum buffer starts as the gradient.
  BiasActivation,  // out[r, c] = φ(x[r, c] + bias[c]) (bias may be null).
  ActivationBackward,  // out = dy ⊙ φ'(a), φ' taken from h = φ(a).
  MarginSigmoid,  // out = 2m(σ(p) − ½) + 1, clamped at 0 (docs/math.md (M4)).
  MarginSigmoidBackward,  // out = ds ⊙ ∂s/∂p (docs/math.md (M17)).
  Reduce,  // out (one element) = Σ x, Σ x², max |x| or the count of non-finite elements (kind 0–3).
  ColumnSum,  // out[c] = Σ_r x[r, c] + β out[c] (the last dimension is c).
  GroupNorms,  // out[g] = ‖x[g, …]‖₂ over x's first dimension.
  SoftmaxCrossEntropy,  // loss = Σ_r w_r (−log softmax(logits_r)[target_r]); dlogits (if given) its gradient.
  MeanSquaredError,  // loss = Σ_r w_r Σ_c (y − target)²; dy (if given) its gradient.
  ClipElements,  // x clipped element-wise to [−c, c] in place.
  ElmanForwardRecurrence,  // The Elman forward recurrence over all T steps (a fused op with variants).
  ElmanBackwardRecurrence,  // The Elman backward recurrence over all T steps (a fused op with variants).
  LstmCellForward,  // One fused LSTM cell step.
  LstmCellBackward,  // Its backward.
  LstmForwardRecurrence,  // The LSTM forward recurrence over all T steps (a fused op with variants).
  LstmBackwardRecurrence,  // The LSTM backward recurrence over all T steps (a fused op with variants).
  ElmanLossAndGradients,  // The Elman model's loss and the gradients named in grads, from one batch (docs/math.md (M1)–(M20)).
  ElmanForward,  // The Elman model's outputs (T × B × k) and final state from x, without gradients.
  CayleyStep,  // The Cayley step in its ambient form on M in place, from the gradient G (docs/math.md (M21)–(M22)).
  CayleyStepInFrame,  // The Cayley step in the frame form on M in place, from F = MᵀG (docs/math.md (M23)–(M24)).
  OrthogonalityError,  // out (one element) = ‖MᵀM − I‖_max (docs/math.md (M25)).
  Reorthonormalize,  // M ← Q of M = QR with diag(R) > 0, in place (docs/math.md (M26)).
  LstmLossAndGradients,  // The LSTM baseline's loss and gradients from one batch (PyTorch names, gate order i, f, g, o).
  LstmForward,  // The LSTM baseline's outputs and final states from x, without gradients.
};
constexpr int kOpCount = 47;

// X(Enum, name) for each op that is a NativeContext method.
#define ORTHORNN_BOUND_OPS(X) \
  X(Fill, fill) \
  X(RandomNormal, randomNormal) \
  X(RandomUniform, randomUniform) \
  X(Copy, copy) \
  X(Gemm, gemm) \
  X(LuFactor, luFactor) \
  X(LuSolve, luSolve) \
  X(Qr, qr) \
  X(Svd, svd) \
  X(Axpby, axpby) \
  X(Mul, mul) \
  X(ScaleColumns, scaleColumns) \
  X(RmspropStep, rmspropStep) \
  X(AdamStep, adamStep) \
  X(SgdStep, sgdStep) \
  X(BiasActivation, biasActivation) \
  X(ActivationBackward, activationBackward) \
  X(MarginSigmoid, marginSigmoid) \
  X(MarginSigmoidBackward, marginSigmoidBackward) \
  X(Reduce, reduce) \
  X(ColumnSum, columnSum) \
  X(GroupNorms, groupNorms) \
  X(SoftmaxCrossEntropy, softmaxCrossEntropy) \
  X(MeanSquaredError, meanSquaredError) \
  X(ElmanLossAndGradients, elmanLossAndGradients) \
  X(ElmanForward, elmanForward) \
  X(CayleyStep, cayleyStep) \
  X(CayleyStepInFrame, cayleyStepInFrame) \
  X(OrthogonalityError, orthogonalityError) \
  X(Reorthonormalize, reorthonormalize) \
  X(LstmLossAndGradients, lstmLossAndGradients) \
  X(LstmForward, lstmForward)

enum class ArgKind : uint8_t { Tensor, OptionalTensor, Number, Integer, Seed, Boolean, Activation, Workspace, Object };
// A tensor slot's dtype: any, a float, int32, or the dtype of the slot `ref` names.
enum class DTypeRule : uint8_t { None, Any, Float, Int32, Same };
struct ArgSpec {
  const char* name;
  ArgKind kind;
  DTypeRule dtype;
  int8_t ref;        // DTypeRule::Same: the slot whose dtype this one has (−1: none)
  int8_t like;       // the slot whose dtype and element count this one has (−1: none)
  bool square;       // a square matrix
  double min, max;   // ArgKind::Integer: its range
};
struct OpSpec {
  const char* name;
  const ArgSpec* args;  // null for backend primitives
  int argCount;
  uint8_t dtypes[2];    // per backend (cpu, cuda): bit d set when DType(d) is supported
};

inline constexpr ArgSpec kFillArgs[] = {
    {"tensor", ArgKind::Tensor, DTypeRule::Any, -1, -1, false, 0, 0},
    {"value", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
};
inline constexpr ArgSpec kRandomNormalArgs[] = {
    {"tensor", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"seed", ArgKind::Seed, DTypeRule::None, -1, -1, false, 0, 0},
    {"mean", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"std", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
};
inline constexpr ArgSpec kRandomUniformArgs[] = {
    {"tensor", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"seed", ArgKind::Seed, DTypeRule::None, -1, -1, false, 0, 0},
    {"low", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"high", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
};
inline constexpr ArgSpec kCopyArgs[] = {
    {"source", ArgKind::Tensor, DTypeRule::Any, -1, -1, false, 0, 0},
    {"out", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
};
inline constexpr ArgSpec kGemmArgs[] = {
    {"a", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"b", ArgKind::Tensor, DTypeRule::Same, 0, -1, false, 0, 0},
    {"out", ArgKind::Tensor, DTypeRule::Same, 0, -1, false, 0, 0},
    {"transA", ArgKind::Boolean, DTypeRule::None, -1, -1, false, 0, 0},
    {"transB", ArgKind::Boolean, DTypeRule::None, -1, -1, false, 0, 0},
    {"alpha", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"beta", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
};
inline constexpr ArgSpec kLuFactorArgs[] = {
    {"a", ArgKind::Tensor, DTypeRule::Float, -1, -1, true, 0, 0},
    {"lu", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
    {"pivots", ArgKind::Tensor, DTypeRule::Int32, -1, -1, false, 0, 0},
};
inline constexpr ArgSpec kLuSolveArgs[] = {
    {"lu", ArgKind::Tensor, DTypeRule::Float, -1, -1, true, 0, 0},
    {"pivots", ArgKind::Tensor, DTypeRule::Int32, -1, -1, false, 0, 0},
    {"b", ArgKind::Tensor, DTypeRule::Same, 0, -1, false, 0, 0},
    {"out", ArgKind::Tensor, DTypeRule::Same, 2, 2, false, 0, 0},
};
inline constexpr ArgSpec kQrArgs[] = {
    {"a", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"q", ArgKind::Tensor, DTypeRule::Same, 0, -1, false, 0, 0},
    {"r", ArgKind::Tensor, DTypeRule::Same, 0, -1, false, 0, 0},
};
inline constexpr ArgSpec kSvdArgs[] = {
    {"a", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"u", ArgKind::Tensor, DTypeRule::Same, 0, -1, false, 0, 0},
    {"s", ArgKind::Tensor, DTypeRule::Same, 0, -1, false, 0, 0},
    {"vt", ArgKind::Tensor, DTypeRule::Same, 0, -1, false, 0, 0},
};
inline constexpr ArgSpec kAxpbyArgs[] = {
    {"alpha", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"x", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"beta", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"y", ArgKind::Tensor, DTypeRule::Same, 1, 1, false, 0, 0},
    {"out", ArgKind::Tensor, DTypeRule::Same, 1, 1, false, 0, 0},
};
inline constexpr ArgSpec kMulArgs[] = {
    {"x", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"y", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
    {"out", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
};
inline constexpr ArgSpec kScaleColumnsArgs[] = {
    {"x", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"s", ArgKind::Tensor, DTypeRule::Same, 0, -1, false, 0, 0},
    {"out", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
};
inline constexpr ArgSpec kRmspropStepArgs[] = {
    {"param", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"grad", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
    {"meanSquare", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
    {"lr", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"rho", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"eps", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"epsInside", ArgKind::Boolean, DTypeRule::None, -1, -1, false, 0, 0},
    {"weightDecay", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
};
inline constexpr ArgSpec kAdamStepArgs[] = {
    {"param", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"grad", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
    {"m", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
    {"v", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
    {"lr", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"beta1", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"beta2", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"eps", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"weightDecay", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"step", ArgKind::Integer, DTypeRule::None, -1, -1, false, 1, 9007199254740992},
};
inline constexpr ArgSpec kSgdStepArgs[] = {
    {"param", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"grad", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
    {"buffer", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
    {"lr", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"momentum", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"weightDecay", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"first", ArgKind::Boolean, DTypeRule::None, -1, -1, false, 0, 0},
};
inline constexpr ArgSpec kBiasActivationArgs[] = {
    {"x", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"bias", ArgKind::OptionalTensor, DTypeRule::Same, 0, -1, false, 0, 0},
    {"activation", ArgKind::Activation, DTypeRule::None, -1, -1, false, 0, 0},
    {"out", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
};
inline constexpr ArgSpec kActivationBackwardArgs[] = {
    {"dy", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"h", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
    {"activation", ArgKind::Activation, DTypeRule::None, -1, -1, false, 0, 0},
    {"out", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
};
inline constexpr ArgSpec kMarginSigmoidArgs[] = {
    {"p", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"margin", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"out", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
};
inline constexpr ArgSpec kMarginSigmoidBackwardArgs[] = {
    {"p", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"margin", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"ds", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
    {"out", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
};
inline constexpr ArgSpec kReduceArgs[] = {
    {"x", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"kind", ArgKind::Integer, DTypeRule::None, -1, -1, false, 0, 3},
    {"out", ArgKind::Tensor, DTypeRule::Same, 0, -1, false, 0, 0},
};
inline constexpr ArgSpec kColumnSumArgs[] = {
    {"x", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"beta", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
    {"out", ArgKind::Tensor, DTypeRule::Same, 0, -1, false, 0, 0},
};
inline constexpr ArgSpec kGroupNormsArgs[] = {
    {"x", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"out", ArgKind::Tensor, DTypeRule::Same, 0, -1, false, 0, 0},
};
inline constexpr ArgSpec kSoftmaxCrossEntropyArgs[] = {
    {"logits", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"targets", ArgKind::Tensor, DTypeRule::Int32, -1, -1, false, 0, 0},
    {"weights", ArgKind::OptionalTensor, DTypeRule::Same, 0, -1, false, 0, 0},
    {"loss", ArgKind::Tensor, DTypeRule::Same, 0, -1, false, 0, 0},
    {"dlogits", ArgKind::OptionalTensor, DTypeRule::Same, 0, 0, false, 0, 0},
};
inline constexpr ArgSpec kMeanSquaredErrorArgs[] = {
    {"y", ArgKind::Tensor, DTypeRule::Float, -1, -1, false, 0, 0},
    {"target", ArgKind::Tensor, DTypeRule::Same, 0, 0, false, 0, 0},
    {"weights", ArgKind::OptionalTensor, DTypeRule::Same, 0, -1, false, 0, 0},
    {"loss", ArgKind::Tensor, DTypeRule::Same, 0, -1, false, 0, 0},
    {"dy", ArgKind::OptionalTensor, DTypeRule::Same, 0, 0, false, 0, 0},
};
inline constexpr ArgSpec kElmanLossAndGradientsArgs[] = {
    {"workspace", ArgKind::Workspace, DTypeRule::None, -1, -1, false, 0, 0},
    {"config", ArgKind::Object, DTypeRule::None, -1, -1, false, 0, 0},
    {"params", ArgKind::Object, DTypeRule::None, -1, -1, false, 0, 0},
    {"batch", ArgKind::Object, DTypeRule::None, -1, -1, false, 0, 0},
    {"grads", ArgKind::Object, DTypeRule::None, -1, -1, false, 0, 0},
};
inline constexpr ArgSpec kElmanForwardArgs[] = {
    {"workspace", ArgKind::Workspace, DTypeRule::None, -1, -1, false, 0, 0},
    {"config", ArgKind::Object, DTypeRule::None, -1, -1, false, 0, 0},
    {"params", ArgKind::Object, DTypeRule::None, -1, -1, false, 0, 0},
    {"x", ArgKind::Tensor, DTypeRule::Any, -1, -1, false, 0, 0},
    {"initialState", ArgKind::OptionalTensor, DTypeRule::Any, -1, -1, false, 0, 0},
    {"outputs", ArgKind::Tensor, DTypeRule::Any, -1, -1, false, 0, 0},
    {"finalState", ArgKind::Tensor, DTypeRule::Any, -1, -1, false, 0, 0},
};
inline constexpr ArgSpec kCayleyStepArgs[] = {
    {"workspace", ArgKind::Workspace, DTypeRule::None, -1, -1, false, 0, 0},
    {"M", ArgKind::Tensor, DTypeRule::Float, -1, -1, true, 0, 0},
    {"G", ArgKind::Tensor, DTypeRule::Same, 1, 1, true, 0, 0},
    {"lr", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
};
inline constexpr ArgSpec kCayleyStepInFrameArgs[] = {
    {"workspace", ArgKind::Workspace, DTypeRule::None, -1, -1, false, 0, 0},
    {"M", ArgKind::Tensor, DTypeRule::Float, -1, -1, true, 0, 0},
    {"F", ArgKind::Tensor, DTypeRule::Same, 1, 1, true, 0, 0},
    {"lr", ArgKind::Number, DTypeRule::None, -1, -1, false, 0, 0},
};
inline constexpr ArgSpec kOrthogonalityErrorArgs[] = {
    {"workspace", ArgKind::Workspace, DTypeRule::None, -1, -1, false, 0, 0},
    {"M", ArgKind::Tensor, DTypeRule::Float, -1, -1, true, 0, 0},
    {"out", ArgKind::Tensor, DTypeRule::Same, 1, -1, false, 0, 0},
};
inline constexpr ArgSpec kReorthonormalizeArgs[] = {
    {"workspace", ArgKind::Workspace, DTypeRule::None, -1, -1, false, 0, 0},
    {"M", ArgKind::Tensor, DTypeRule::Float, -1, -1, true, 0, 0},
};
inline constexpr ArgSpec kLstmLossAndGradientsArgs[] = {
    {"workspace", ArgKind::Workspace, DTypeRule::None, -1, -1, false, 0, 0},
    {"config", ArgKind::Object, DTypeRule::None, -1, -1, false, 0, 0},
    {"params", ArgKind::Object, DTypeRule::None, -1, -1, false, 0, 0},
    {"batch", ArgKind::Object, DTypeRule::None, -1, -1, false, 0, 0},
    {"grads", ArgKind::Object, DTypeRule::None, -1, -1, false, 0, 0},
};
inline constexpr ArgSpec kLstmForwardArgs[] = {
    {"workspace", ArgKind::Workspace, DTypeRule::None, -1, -1, false, 0, 0},
    {"config", ArgKind::Object, DTypeRule::None, -1, -1, false, 0, 0},
    {"params", ArgKind::Object, DTypeRule::None, -1, -1, false, 0, 0},
    {"x", ArgKind::Tensor, DTypeRule::Any, -1, -1, false, 0, 0},
    {"h0", ArgKind::OptionalTensor, DTypeRule::Any, -1, -1, false, 0, 0},
    {"c0", ArgKind::OptionalTensor, DTypeRule::Any, -1, -1, false, 0, 0},
    {"outputs", ArgKind::Tensor, DTypeRule::Any, -1, -1, false, 0, 0},
    {"hFinal", ArgKind::Tensor, DTypeRule::Any, -1, -1, false, 0, 0},
    {"cFinal", ArgKind::Tensor, DTypeRule::Any, -1, -1, false, 0, 0},
};

inline constexpr OpSpec kOps[kOpCount] = {
    {"fill", kFillArgs, 2, {7, 7}},
    {"randomNormal", kRandomNormalArgs, 4, {3, 3}},
    {"randomUniform", kRandomUniformArgs, 4, {3, 3}},
    {"copy", kCopyArgs, 2, {7, 7}},
    {"gemm", kGemmArgs, 7, {3, 3}},
    {"gemmStridedBatched", nullptr, 0, {3, 3}},
    {"luFactor", kLuFactorArgs, 3, {3, 3}},
    {"luFactorNoPivot", nullptr, 0, {3, 3}},
    {"luSolve", kLuSolveArgs, 4, {3, 3}},
    {"luSolveRight", nullptr, 0, {3, 3}},
    {"qr", kQrArgs, 3, {3, 3}},
    {"svd", kSvdArgs, 4, {3, 3}},
    {"axpby", kAxpbyArgs, 5, {3, 3}},
    {"mul", kMulArgs, 3, {3, 3}},
    {"scaleColumns", kScaleColumnsArgs, 3, {3, 3}},
    {"columnDots", nullptr, 0, {3, 3}},
    {"addDiagonal", nullptr, 0, {3, 3}},
    {"transpose", nullptr, 0, {3, 3}},
    {"cayleySystem", nullptr, 0, {3, 3}},
    {"cayleyFrameSolve", nullptr, 0, {3, 3}},
    {"rmspropStep", kRmspropStepArgs, 8, {3, 3}},
    {"adamStep", kAdamStepArgs, 10, {3, 3}},
    {"sgdStep", kSgdStepArgs, 7, {3, 3}},
    {"biasActivation", kBiasActivationArgs, 4, {3, 3}},
    {"activationBackward", kActivationBackwardArgs, 4, {3, 3}},
    {"marginSigmoid", kMarginSigmoidArgs, 3, {3, 3}},
    {"marginSigmoidBackward", kMarginSigmoidBackwardArgs, 4, {3, 3}},
    {"reduce", kReduceArgs, 3, {3, 3}},
    {"columnSum", kColumnSumArgs, 3, {3, 3}},
    {"groupNorms", kGroupNormsArgs, 2, {3, 3}},
    {"softmaxCrossEntropy", kSoftmaxCrossEntropyArgs, 5, {3, 3}},
    {"meanSquaredError", kMeanSquaredErrorArgs, 5, {3, 3}},
    {"clipElements", nullptr, 0, {3, 3}},
    {"elmanForwardRecurrence", nullptr, 0, {3, 3}},
    {"elmanBackwardRecurrence", nullptr, 0, {3, 3}},
    {"lstmCellForward", nullptr, 0, {3, 3}},
    {"lstmCellBackward", nullptr, 0, {3, 3}},
    {"lstmForwardRecurrence", nullptr, 0, {3, 3}},
    {"lstmBackwardRecurrence", nullptr, 0, {3, 3}},
    {"elmanLossAndGradients", kElmanLossAndGradientsArgs, 5, {3, 3}},
    {"elmanForward", kElmanForwardArgs, 7, {3, 3}},
    {"cayleyStep", kCayleyStepArgs, 4, {3, 3}},
    {"cayleyStepInFrame", kCayleyStepInFrameArgs, 4, {3, 3}},
    {"orthogonalityError", kOrthogonalityErrorArgs, 3, {3, 3}},
    {"reorthonormalize", kReorthonormalizeArgs, 2, {3, 3}},
    {"lstmLossAndGradients", kLstmLossAndGradientsArgs, 5, {3, 3}},
    {"lstmForward", kLstmForwardArgs, 9, {3, 3}},
};

inline const OpSpec& opSpec(Op op) { return kOps[int(op)]; }

}  // namespace orthornn
