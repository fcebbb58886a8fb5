// Generated from native/ops.json by scripts/gen-ops.js: edit the table, then `npm run gen:ops`.
import type { Activation, ElmanNativeConfig, LstmNativeConfig, NativeTensor as T, NativeTensors, NativeWorkspace } from './native';

/** NativeContext's op methods: each checks its arguments synchronously and queues the op. */
export interface NativeOps {
  /** Every element of tensor set to value (an int32 for an int32 tensor). */
  fill(tensor: T, value: number): void;
  /** tensor ← samples of N(mean, std²) from the counter-based generator at seed. */
  randomNormal(tensor: T, seed: number, mean: number, std: number): void;
  /** tensor ← samples of U[low, high) from the counter-based generator at seed. */
  randomUniform(tensor: T, seed: number, low: number, high: number): void;
  /** out ← source. */
  copy(source: T, out: T): void;
  /** out = α op(a) op(b) + β out: 2-D, or batched when out is 3-D (a 2-D a or b is shared by every batch entry). */
  gemm(a: T, b: T, out: T, transA: boolean, transB: boolean, alpha: number, beta: number): void;
  /** lu ← the LU factors of a with partial pivoting, pivots ← LAPACK's 1-based interchanges. */
  luFactor(a: T, lu: T, pivots: T): void;
  /** out ← A⁻¹ b from luFactor's output; b an n-vector or n×r matrix. */
  luSolve(lu: T, pivots: T, b: T, out: T): void;
  /** Thin QR of a (m×n): q m×k with orthonormal columns, r k×n upper triangular with diag(r) ≥ 0, k = min(m, n). */
  qr(a: T, q: T, r: T): void;
  /** Thin SVD a = u diag(s) vt, singular values descending. */
  svd(a: T, u: T, s: T, vt: T): void;
  /** out = α x + β y (out may be x or y). */
  axpby(alpha: number, x: T, beta: number, y: T, out: T): void;
  /** out = x ⊙ y. */
  mul(x: T, y: T, out: T): void;
  /** out[r, c] = x[r, c] · s[c] (x diag(s); out may be x). */
  scaleColumns(x: T, s: T, out: T): void;
  /** RMSprop on param in place (epsInside: ε inside the square root, Lasagne's form). */
  rmspropStep(param: T, grad: T, meanSquare: T, lr: number, rho: number, eps: number, epsInside: boolean, weightDecay: number): void;
  /** Adam on param in place; step counts from 1. */
  adamStep(param: T, grad: T, m: T, v: T, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number): void;
  /** SGD with momentum on param in place; first: the momentum buffer starts as the gradient. */
  sgdStep(param: T, grad: T, buffer: T, lr: number, momentum: number, weightDecay: number, first: boolean): void;
  /** out[r, c] = φ(x[r, c] + bias[c]) (bias may be null). */
  biasActivation(x: T, bias: T | null, activation: Activation, out: T): void;
  /** out = dy ⊙ φ'(a), φ' taken from h = φ(a). */
  activationBackward(dy: T, h: T, activation: Activation, out: T): void;
  /** out = 2m(σ(p) − ½) + 1, clamped at 0 (docs/math.md (M4)). */
  marginSigmoid(p: T, margin: number, out: T): void;
  /** out = ds ⊙ ∂s/∂p (docs/math.md (M17)). */
  marginSigmoidBackward(p: T, margin: number, ds: T, out: T): void;
  /** out (one element) = Σ x, Σ x², max |x| or the count of non-finite elements (kind 0–3). */
  reduce(x: T, kind: number, out: T): void;
  /** out[c] = Σ_r x[r, c] + β out[c] (the last dimension is c). */
  columnSum(x: T, beta: number, out: T): void;
  /** out[g] = ‖x[g, …]‖₂ over x's first dimension. */
  groupNorms(x: T, out: T): void;
  /** loss = Σ_r w_r (−log softmax(logits_r)[target_r]); dlogits (if given) its gradient. */
  softmaxCrossEntropy(logits: T, targets: T, weights: T | null, loss: T, dlogits: T | null): void;
  /** loss = Σ_r w_r Σ_c (y − target)²; dy (if given) its gradient. */
  meanSquaredError(y: T, target: T, weights: T | null, loss: T, dy: T | null): void;
  /** The Elman model's loss and the gradients named in grads, from one batch (docs/math.md (M1)–(M20)). */
  elmanLossAndGradients(workspace: NativeWorkspace, config: ElmanNativeConfig, params: NativeTensors, batch: NativeTensors, grads: NativeTensors): void;
  /** The Elman model's outputs (T × B × k) and final state from x, without gradients. */
  elmanForward(workspace: NativeWorkspace, config: ElmanNativeConfig, params: NativeTensors, x: T, initialState: T | null, outputs: T, finalState: T): void;
  /** The Cayley step in its ambient form on M in place, from the gradient G (docs/math.md (M21)–(M22)). */
  cayleyStep(workspace: NativeWorkspace, M: T, G: T, lr: number): void;
  /** The Cayley step in the frame form on M in place, from F = MᵀG (docs/math.md (M23)–(M24)). */
  cayleyStepInFrame(workspace: NativeWorkspace, M: T, F: T, lr: number): void;
  /** out (one element) = ‖MᵀM − I‖_max (docs/math.md (M25)). */
  orthogonalityError(workspace: NativeWorkspace, M: T, out: T): void;
  /** M ← Q of M = QR with diag(R) > 0, in place (docs/math.md (M26)). */
  reorthonormalize(workspace: NativeWorkspace, M: T): void;
  /** The LSTM baseline's loss and gradients from one batch (PyTorch names, gate order i, f, g, o). */
  lstmLossAndGradients(workspace: NativeWorkspace, config: LstmNativeConfig, params: NativeTensors, batch: NativeTensors, grads: NativeTensors): void;
  /** The LSTM baseline's outputs and final states from x, without gradients. */
  lstmForward(workspace: NativeWorkspace, config: LstmNativeConfig, params: NativeTensors, x: T, h0: T | null, c0: T | null, outputs: T, hFinal: T, cFinal: T): void;
}

/** Every native op (native/ops.json), the NativeContext methods and the backend primitives; Context.supports() takes these. */
export const NATIVE_OPS = ['fill', 'randomNormal', 'randomUniform', 'copy', 'gemm', 'gemmStridedBatched', 'luFactor', 'luFactorNoPivot', 'luSolve', 'luSolveRight', 'qr', 'svd', 'axpby', 'mul', 'scaleColumns', 'columnDots', 'addDiagonal', 'transpose', 'cayleySystem', 'cayleyFrameSolve', 'rmspropStep', 'adamStep', 'sgdStep', 'biasActivation', 'activationBackward', 'marginSigmoid', 'marginSigmoidBackward', 'reduce', 'columnSum', 'groupNorms', 'softmaxCrossEntropy', 'meanSquaredError', 'clipElements', 'elmanForwardRecurrence', 'elmanBackwardRecurrence', 'lstmCellForward', 'lstmCellBackward', 'lstmForwardRecurrence', 'lstmBackwardRecurrence', 'elmanLossAndGradients', 'elmanForward', 'cayleyStep', 'cayleyStepInFrame', 'orthogonalityError', 'reorthonormalize', 'lstmLossAndGradients', 'lstmForward'] as const;
export type NativeOp = (typeof NATIVE_OPS)[number];

/** The ops that are NativeContext methods. */
export const BOUND_OPS = ['fill', 'randomNormal', 'randomUniform', 'copy', 'gemm', 'luFactor', 'luSolve', 'qr', 'svd', 'axpby', 'mul', 'scaleColumns', 'rmspropStep', 'adamStep', 'sgdStep', 'biasActivation', 'activationBackward', 'marginSigmoid', 'marginSigmoidBackward', 'reduce', 'columnSum', 'groupNorms', 'softmaxCrossEntropy', 'meanSquaredError', 'elmanLossAndGradients', 'elmanForward', 'cayleyStep', 'cayleyStepInFrame', 'orthogonalityError', 'reorthonormalize', 'lstmLossAndGradients', 'lstmForward'] as const;
