/**
 * Tensor ops. Each checks its arguments synchronously (TypeError / RangeError /
 * DisposedError), queues the work on the tensors' context and returns its outputs at once;
 * a failure inside the queued work rejects the next `read()` or `sync()` of that context,
 * naming the op. Outputs may be passed as `out` to reuse memory.
 *
 * Who checks what: the native op's slots (native/ops.json, checked in C++ once for every
 * caller) check dtypes, element counts and squareness; these wrappers check their options
 * and scalars, that the tensors share one live context, and the shapes the outputs they make
 * are sized from.
 */
import type { Context } from './context';
import { rangeError, show, typeError } from './errors';
import type { Activation, DType, FloatDType } from './native';
import type { Tensor } from './tensor';
import {
  checkActivation,
  checkBoolean,
  checkCoefficient,
  checkOptions,
  checkScalar,
  checkTensor,
  checkTensorOn,
  checkTensorShape,
  readObject,
  shapeStr,
} from './validate';

/**
 * Checks the tensor arguments (each a live Tensor; `optional` ones may be null or undefined)
 * and that they share one live context, which it returns.
 */
function contextOf(fn: string, required: Record<string, unknown>, optional: Record<string, unknown> = {}): Context {
  let ctx: Context | undefined;
  let first = '';
  const present = [...Object.entries(required), ...Object.entries(optional).filter(([, t]) => t !== null && t !== undefined)];
  for (const [name, t] of present) {
    const tensor = checkTensor(fn, name, t);
    if (!ctx) {
      ctx = tensor.context;
      first = name;
    } else if (tensor.context !== ctx) {
      throw rangeError(fn, name, `on the same context as '${first}' (${ctx.device})`, `a tensor of another context (${tensor.device})`);
    }
  }
  ctx!.assertLive(fn);
  return ctx!;
}

/** The given `out` after checking it (its dtype is the native op's to check), or a new tensor. */
function output<D extends DType>(fn: string, ctx: Context, out: unknown, shape: readonly number[], dtype: D, arg = 'out'): Tensor<D> {
  if (out === undefined) return ctx.empty<D>(shape, { dtype });
  const t = checkTensorOn(fn, arg, out, ctx);
  checkTensorShape(fn, arg, t, shape);
  return t as Tensor<D>;
}

/**
 * Queues a native op. When its slots refuse an argument, the outputs made for the call (those
 * not given by the caller) are disposed before the error goes on.
 */
function queue(made: readonly { t: Tensor | undefined; given?: unknown }[], call: () => void): void {
  try {
    call();
  } catch (err) {
    for (const { t, given } of made) if (t && given === undefined) t.dispose();
    throw err;
  }
}

export interface GemmOptions {
  transA?: boolean;
  transB?: boolean;
  alpha?: number;
  /** Scales `out`'s previous contents (requires `out`). */
  beta?: number;
  out?: Tensor;
}

/**
 * out = α op(a) op(b) + β out. 2-D matrices, or batches: 3-D `a`/`b` (a 2-D operand is
 * shared by every batch entry) give a 3-D result.
 */
export function gemm<D extends FloatDType>(a: Tensor<D>, b: Tensor<D>, options: GemmOptions = {}): Tensor<D> {
  const fn = 'gemm';
  const opts = checkOptions(fn, options, ['transA', 'transB', 'alpha', 'beta', 'out']);
  const ctx = contextOf(fn, { a, b });
  const transA = checkBoolean(fn, 'transA', opts.transA ?? false);
  const transB = checkBoolean(fn, 'transB', opts.transB ?? false);
  const alpha = checkScalar(fn, 'alpha', opts.alpha ?? 1, a.dtype);
  const beta = checkScalar(fn, 'beta', opts.beta ?? 0, a.dtype);
  if (beta !== 0 && opts.out === undefined) throw rangeError(fn, 'beta', "0 unless 'out' is given", show(beta));
  for (const [name, t] of [['a', a], ['b', b]] as const) {
    if (t.shape.length !== 2 && t.shape.length !== 3) throw rangeError(fn, name, 'a 2-D or 3-D tensor', shapeStr(t.shape));
  }
  const mat = (t: Tensor, trans: boolean) => {
    const r = t.shape[t.shape.length - 2], c = t.shape[t.shape.length - 1];
    return trans ? [c, r] : [r, c];
  };
  const [m, k] = mat(a, transA);
  const [kb, n] = mat(b, transB);
  if (k !== kb) {
    throw rangeError(fn, 'b', `${k} rows in op(b) to match op(a) = ${m}×${k}`, `op(b) = ${kb}×${n}`);
  }
  const batchA = a.shape.length === 3 ? a.shape[0] : undefined;
  const batchB = b.shape.length === 3 ? b.shape[0] : undefined;
  if (batchA !== undefined && batchB !== undefined && batchA !== batchB) {
    throw rangeError(fn, 'b', `a batch of ${batchA} like 'a'`, `a batch of ${batchB}`);
  }
  const batch = batchA ?? batchB;
  const shape = batch === undefined ? [m, n] : [batch, m, n];
  const out = output(fn, ctx, opts.out, shape, a.dtype);
  queue([{ t: out, given: opts.out }], () => ctx.native.gemm(a.handle, b.handle, out.handle, transA, transB, alpha, beta));
  return out;
}

/** a · b for 2-D or batched 3-D tensors. */
export function matmul<D extends FloatDType>(a: Tensor<D>, b: Tensor<D>): Tensor<D> {
  return gemm(a, b);
}

export interface LU<D extends FloatDType = FloatDType> {
  /**
   * The factors of Aᵀ = P L U (L unit lower, U upper) packed in LAPACK's column-major layout,
   * which is how a row-major A is factorised without transposing it; pass to luSolve.
   */
  lu: Tensor<D>;
  /** P as LAPACK's 1-based row interchanges, int32. */
  pivots: Tensor<'int32'>;
}

/** LU factorisation with partial pivoting of a square matrix. A singular matrix rejects with NumericError. */
export function luFactor<D extends FloatDType>(a: Tensor<D>): LU<D> {
  const fn = 'luFactor';
  const ctx = contextOf(fn, { a });
  if (a.shape.length !== 2) throw rangeError(fn, 'a', 'a square matrix', shapeStr(a.shape));
  const lu = ctx.empty<D>(a.shape, { dtype: a.dtype });
  const pivots = ctx.empty([a.shape[0]], { dtype: 'int32' });
  queue([{ t: lu }, { t: pivots }], () => ctx.native.luFactor(a.handle, lu.handle, pivots.handle));
  return { lu, pivots };
}

/** Solves A x = b from A's LU factors; b is n or n×r. */
export function luSolve<D extends FloatDType>(factors: LU<D>, b: Tensor<D>, options: { out?: Tensor } = {}): Tensor<D> {
  const fn = 'luSolve';
  const opts = checkOptions(fn, options, ['out']);
  const { lu, pivots } = readObject(fn, 'factors', factors, 'the result of luFactor') as Partial<LU<D>>;
  const ctx = contextOf(fn, { 'factors.lu': lu, 'factors.pivots': pivots, b });
  const out = output(fn, ctx, opts.out, b.shape, b.dtype);
  queue([{ t: out, given: opts.out }], () => ctx.native.luSolve(lu!.handle, pivots!.handle, b.handle, out.handle));
  return out;
}

/** x = A⁻¹ b by an LU factorisation (never an explicit inverse). */
export function solve<D extends FloatDType>(a: Tensor<D>, b: Tensor<D>): Tensor<D> {
  const f = luFactor(a);
  try {
    return luSolve(f, b);
  } finally {
    f.lu.dispose();
    f.pivots.dispose();
  }
}

/** Thin QR: q m×k with orthonormal columns, r k×n upper triangular with diag(r) ≥ 0; k = min(m, n). */
export function qr<D extends FloatDType>(a: Tensor<D>): { q: Tensor<D>; r: Tensor<D> } {
  const fn = 'qr';
  const ctx = contextOf(fn, { a });
  if (a.shape.length !== 2) throw rangeError(fn, 'a', 'a matrix', shapeStr(a.shape));
  const [m, n] = a.shape;
  const k = Math.min(m, n);
  const q = ctx.empty<D>([m, k], { dtype: a.dtype });
  const r = ctx.empty<D>([k, n], { dtype: a.dtype });
  queue([{ t: q }, { t: r }], () => ctx.native.qr(a.handle, q.handle, r.handle));
  return { q, r };
}

/** Thin SVD a = u diag(s) vt, singular values descending: u m×k, s k, vt k×n. */
export function svd<D extends FloatDType>(a: Tensor<D>): { u: Tensor<D>; s: Tensor<D>; vt: Tensor<D> } {
  const fn = 'svd';
  const ctx = contextOf(fn, { a });
  if (a.shape.length !== 2) throw rangeError(fn, 'a', 'a matrix', shapeStr(a.shape));
  const [m, n] = a.shape;
  const k = Math.min(m, n);
  const u = ctx.empty<D>([m, k], { dtype: a.dtype });
  const s = ctx.empty<D>([k], { dtype: a.dtype });
  const vt = ctx.empty<D>([k, n], { dtype: a.dtype });
  queue([{ t: u }, { t: s }, { t: vt }], () => ctx.native.svd(a.handle, u.handle, s.handle, vt.handle));
  return { u, s, vt };
}

export function copy<D extends DType>(x: Tensor<D>, options: { out?: Tensor } = {}): Tensor<D> {
  const fn = 'copy';
  const opts = checkOptions(fn, options, ['out']);
  const ctx = contextOf(fn, { x });
  const out = output(fn, ctx, opts.out, x.shape, x.dtype);
  queue([{ t: out, given: opts.out }], () => ctx.native.copy(x.handle, out.handle));
  return out;
}

/** Sets every element of `x` to `value`; returns `x`. */
export function fill<D extends DType>(x: Tensor<D>, value: number): Tensor<D> {
  const ctx = contextOf('fill', { x });
  ctx.native.fill(x.handle, checkScalar('fill', 'value', value, x.dtype));
  return x;
}

/** α x + β y (`out` may be x or y). */
export function axpby<D extends FloatDType>(alpha: number, x: Tensor<D>, beta: number, y: Tensor<D>, options: { out?: Tensor } = {}): Tensor<D> {
  return axpbyAs('axpby', alpha, x, beta, y, options);
}

function axpbyAs<D extends FloatDType>(fn: string, alpha: number, x: Tensor<D>, beta: number, y: Tensor<D>, options: { out?: Tensor }): Tensor<D> {
  const opts = checkOptions(fn, options, ['out']);
  const ctx = contextOf(fn, { x, y });
  const a = checkScalar(fn, 'alpha', alpha, x.dtype);
  const b = checkScalar(fn, 'beta', beta, x.dtype);
  const out = output(fn, ctx, opts.out, x.shape, x.dtype);
  queue([{ t: out, given: opts.out }], () => ctx.native.axpby(a, x.handle, b, y.handle, out.handle));
  return out;
}

/** x + y. */
export const add = <D extends FloatDType>(x: Tensor<D>, y: Tensor<D>, options: { out?: Tensor } = {}): Tensor<D> => axpbyAs('add', 1, x, 1, y, options);
/** x − y. */
export const sub = <D extends FloatDType>(x: Tensor<D>, y: Tensor<D>, options: { out?: Tensor } = {}): Tensor<D> => axpbyAs('sub', 1, x, -1, y, options);
/** α x. */
export const scale = <D extends FloatDType>(x: Tensor<D>, alpha: number, options: { out?: Tensor } = {}): Tensor<D> => axpbyAs('scale', alpha, x, 0, x, options);

/** Element-wise product. */
export function mul<D extends FloatDType>(x: Tensor<D>, y: Tensor<D>, options: { out?: Tensor } = {}): Tensor<D> {
  const fn = 'mul';
  const opts = checkOptions(fn, options, ['out']);
  const ctx = contextOf(fn, { x, y });
  const out = output(fn, ctx, opts.out, x.shape, x.dtype);
  queue([{ t: out, given: opts.out }], () => ctx.native.mul(x.handle, y.handle, out.handle));
  return out;
}

/** x · diag(s): every column c of x (the last dimension) scaled by s[c]. */
export function scaleColumns<D extends FloatDType>(x: Tensor<D>, s: Tensor<D>, options: { out?: Tensor } = {}): Tensor<D> {
  const fn = 'scaleColumns';
  const opts = checkOptions(fn, options, ['out']);
  const ctx = contextOf(fn, { x, s });
  const out = output(fn, ctx, opts.out, x.shape, x.dtype);
  queue([{ t: out, given: opts.out }], () => ctx.native.scaleColumns(x.handle, s.handle, out.handle));
  return out;
}


/** φ(x + bias) with the bias broadcast over the last dimension (bias may be null). */
export function biasActivation<D extends FloatDType>(x: Tensor<D>, bias: Tensor<D> | null, activation: Activation, options: { out?: Tensor } = {}): Tensor<D> {
  const fn = 'biasActivation';
  const opts = checkOptions(fn, options, ['out']);
  const act = checkActivation(fn, 'activation', activation);
  if (bias === undefined) throw typeError(fn, 'bias', 'a Tensor or null', bias);
  const ctx = contextOf(fn, { x }, { bias });
  const out = output(fn, ctx, opts.out, x.shape, x.dtype);
  queue([{ t: out, given: opts.out }], () => ctx.native.biasActivation(x.handle, bias === null ? null : bias.handle, act, out.handle));
  return out;
}

/** dy ⊙ φ'(a), with φ' taken from the activation's output h = φ(a). */
export function activationBackward<D extends FloatDType>(dy: Tensor<D>, h: Tensor<D>, activation: Activation, options: { out?: Tensor } = {}): Tensor<D> {
  const fn = 'activationBackward';
  const opts = checkOptions(fn, options, ['out']);
  const act = checkActivation(fn, 'activation', activation);
  const ctx = contextOf(fn, { dy, h });
  const out = output(fn, ctx, opts.out, dy.shape, dy.dtype);
  queue([{ t: out, given: opts.out }], () => ctx.native.activationBackward(dy.handle, h.handle, act, out.handle));
  return out;
}


/** The spectrum s = 2m(σ(p) − ½) + 1 ∈ [1 − m, 1 + m], clamped at 0. */
export function marginSigmoid<D extends FloatDType>(p: Tensor<D>, margin: number, options: { out?: Tensor } = {}): Tensor<D> {
  const fn = 'marginSigmoid';
  const opts = checkOptions(fn, options, ['out']);
  const m = checkCoefficient(fn, 'margin', margin);
  const ctx = contextOf(fn, { p });
  const out = output(fn, ctx, opts.out, p.shape, p.dtype);
  queue([{ t: out, given: opts.out }], () => ctx.native.marginSigmoid(p.handle, m, out.handle));
  return out;
}

/** dL/dp = dL/ds ⊙ 2m σ(p)(1 − σ(p)) (zero where the clamp at 0 is active). */
export function marginSigmoidBackward<D extends FloatDType>(p: Tensor<D>, margin: number, ds: Tensor<D>, options: { out?: Tensor } = {}): Tensor<D> {
  const fn = 'marginSigmoidBackward';
  const opts = checkOptions(fn, options, ['out']);
  const m = checkCoefficient(fn, 'margin', margin);
  const ctx = contextOf(fn, { p, ds });
  const out = output(fn, ctx, opts.out, p.shape, p.dtype);
  queue([{ t: out, given: opts.out }], () => ctx.native.marginSigmoidBackward(p.handle, m, ds.handle, out.handle));
  return out;
}

const REDUCTIONS = { sum: 0, sumSquares: 1, maxAbs: 2, countNonFinite: 3 } as const;

function reduction<D extends FloatDType>(fn: keyof typeof REDUCTIONS, x: Tensor<D>, options: { out?: Tensor }): Tensor<D> {
  const opts = checkOptions(fn, options, ['out']);
  const ctx = contextOf(fn, { x });
  const out = output(fn, ctx, opts.out, [], x.dtype);
  queue([{ t: out, given: opts.out }], () => ctx.native.reduce(x.handle, REDUCTIONS[fn], out.handle));
  return out;
}

/** Σ x as a 0-d tensor (float32 input accumulates in float64). */
export const sum = <D extends FloatDType>(x: Tensor<D>, options: { out?: Tensor } = {}): Tensor<D> => reduction('sum', x, options);
/** Σ x² as a 0-d tensor. */
export const sumSquares = <D extends FloatDType>(x: Tensor<D>, options: { out?: Tensor } = {}): Tensor<D> => reduction('sumSquares', x, options);
/** max |x| as a 0-d tensor (NaN if any element is NaN; 0 for an empty tensor). */
export const maxAbs = <D extends FloatDType>(x: Tensor<D>, options: { out?: Tensor } = {}): Tensor<D> => reduction('maxAbs', x, options);
/** The number of NaN and ±Inf elements, as a 0-d tensor. */
export const countNonFinite = <D extends FloatDType>(x: Tensor<D>, options: { out?: Tensor } = {}): Tensor<D> => reduction('countNonFinite', x, options);

/** Sum over every dimension but the last (bias gradients over all T·B rows): out = Σ_rows x + β out. */
export function columnSum<D extends FloatDType>(x: Tensor<D>, options: { out?: Tensor; beta?: number } = {}): Tensor<D> {
  const fn = 'columnSum';
  const opts = checkOptions(fn, options, ['out', 'beta']);
  const ctx = contextOf(fn, { x });
  const beta = checkScalar(fn, 'beta', opts.beta ?? 0, x.dtype);
  if (beta !== 0 && opts.out === undefined) throw rangeError(fn, 'beta', "0 unless 'out' is given", show(beta));
  const cols = x.shape.length ? x.shape[x.shape.length - 1] : 1;
  const out = output(fn, ctx, opts.out, [cols], x.dtype);
  queue([{ t: out, given: opts.out }], () => ctx.native.columnSum(x.handle, beta, out.handle));
  return out;
}

/** ‖x[g]‖₂ for each index g of the first dimension (e.g. ‖dh_t‖ over a T × B × n tensor). */
export function groupNorms<D extends FloatDType>(x: Tensor<D>, options: { out?: Tensor } = {}): Tensor<D> {
  const fn = 'groupNorms';
  const opts = checkOptions(fn, options, ['out']);
  const ctx = contextOf(fn, { x });
  if (x.shape.length === 0) throw rangeError(fn, 'x', 'at least 1-D', '[]');
  const out = output(fn, ctx, opts.out, [x.shape[0]], x.dtype);
  queue([{ t: out, given: opts.out }], () => ctx.native.groupNorms(x.handle, out.handle));
  return out;
}

export interface LossOptions<D extends FloatDType> {
  /** Per-row weights (a mask, or 1/|S| for a mean); default 1. */
  weights?: Tensor<D> | null;
  /** Also return the gradient with respect to the first argument (default true). */
  gradient?: boolean;
}

/** Rows of classes or outputs: the last dimension (a 0-D tensor has none). */
function requireRows(fn: string, arg: string, x: Tensor): void {
  if (x.shape.length === 0) throw rangeError(fn, arg, 'at least 1-D', '[]');
}

/**
 * Σ_r w_r · (−log softmax(logits_r)[target_r]) over the rows of `logits` (classes last), and
 * its gradient w_r (softmax − onehot). Class ids outside [0, classes) reject the next await.
 */
export function softmaxCrossEntropy<D extends FloatDType>(
  logits: Tensor<D>,
  targets: Tensor<'int32'>,
  options: LossOptions<D> = {},
): { loss: Tensor<D>; dlogits?: Tensor<D> } {
  const fn = 'softmaxCrossEntropy';
  const opts = checkOptions(fn, options, ['weights', 'gradient']);
  const weights = opts.weights ?? null;
  const gradient = checkBoolean(fn, 'gradient', opts.gradient ?? true);
  const ctx = contextOf(fn, { logits, targets }, { weights });
  requireRows(fn, 'logits', logits);
  const loss = ctx.empty<D>([], { dtype: logits.dtype });
  const dlogits = gradient ? ctx.empty<D>(logits.shape, { dtype: logits.dtype }) : undefined;
  queue([{ t: loss }, { t: dlogits }], () =>
    ctx.native.softmaxCrossEntropy(logits.handle, targets.handle, weights?.handle ?? null, loss.handle, dlogits?.handle ?? null),
  );
  return { loss, dlogits };
}

/** Σ_r w_r Σ_c (y − target)², and its gradient 2 w_r (y − target). */
export function meanSquaredError<D extends FloatDType>(
  y: Tensor<D>,
  target: Tensor<D>,
  options: LossOptions<D> = {},
): { loss: Tensor<D>; dy?: Tensor<D> } {
  const fn = 'meanSquaredError';
  const opts = checkOptions(fn, options, ['weights', 'gradient']);
  const weights = opts.weights ?? null;
  const gradient = checkBoolean(fn, 'gradient', opts.gradient ?? true);
  const ctx = contextOf(fn, { y, target }, { weights });
  requireRows(fn, 'y', y);
  const loss = ctx.empty<D>([], { dtype: y.dtype });
  const dy = gradient ? ctx.empty<D>(y.shape, { dtype: y.dtype }) : undefined;
  queue([{ t: loss }, { t: dy }], () =>
    ctx.native.meanSquaredError(y.handle, target.handle, weights?.handle ?? null, loss.handle, dy?.handle ?? null),
  );
  return { loss, dy };
}

/**
 * The geodesic (Cayley) step in its ambient form (docs/math.md (M21)–(M22)), in place on M:
 * M ← (I + η/2 A)⁻¹ (I − η/2 A) M with A = G Mᵀ − M Gᵀ, by an LU solve.
 * M stays orthogonal up to rounding; to first order M − η (G − M Gᵀ M).
 */
export function cayleyStep<D extends FloatDType>(M: Tensor<D>, G: Tensor<D>, lr: number): Tensor<D> {
  const fn = 'cayleyStep';
  const ctx = contextOf(fn, { M, G });
  ctx.native.cayleyStep(ctx.workspace, M.handle, G.handle, checkCoefficient(fn, 'lr', lr));
  return M;
}

/**
 * The same Cayley step taken in M's own frame, from F = MᵀG instead of G (the
 * `frameGradients` of ElmanRNN.lossAndGradients): M ← M (I + η/2 A′)⁻¹ (I − η/2 A′) with
 * A′ = F − Fᵀ = MᵀA M. For an orthogonal M this is cayleyStep(M, G, lr), without the n×n
 * product that forms A.
 */
export function cayleyStepInFrame<D extends FloatDType>(M: Tensor<D>, F: Tensor<D>, lr: number): Tensor<D> {
  const fn = 'cayleyStepInFrame';
  const ctx = contextOf(fn, { M, F });
  ctx.native.cayleyStepInFrame(ctx.workspace, M.handle, F.handle, checkCoefficient(fn, 'lr', lr));
  return M;
}

/** ‖MᵀM − I‖_max as a 0-d tensor. */
export function orthogonalityError<D extends FloatDType>(M: Tensor<D>, options: { out?: Tensor } = {}): Tensor<D> {
  const fn = 'orthogonalityError';
  const opts = checkOptions(fn, options, ['out']);
  const ctx = contextOf(fn, { M });
  const out = output(fn, ctx, opts.out, [], M.dtype);
  queue([{ t: out, given: opts.out }], () => ctx.native.orthogonalityError(ctx.workspace, M.handle, out.handle));
  return out;
}

/** Re-orthonormalises M in place: M ← Q of M = QR with diag(R) > 0 (rounding drift correction). */
export function reorthonormalize<D extends FloatDType>(M: Tensor<D>): Tensor<D> {
  const fn = 'reorthonormalize';
  const ctx = contextOf(fn, { M });
  ctx.native.reorthonormalize(ctx.workspace, M.handle);
  return M;
}
