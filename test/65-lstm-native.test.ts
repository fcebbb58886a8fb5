/**
 * The native LSTM baseline (native/core/lstm.cpp) through its bindings, called directly:
 * gradients against central finite differences of the native loss (float64), the forward
 * pass against an independent pure-JS LSTM written from PyTorch's nn.LSTM equations,
 * hidden-gradient norms against finite differences of that reference, float32 against
 * float64, degenerate sizes, and bad input.
 */
import assert from 'node:assert/strict';
import { Context } from '../lib/context';
import type { LstmNativeConfig, NativeTensor, NativeTensors, NativeWorkspace } from '../lib/native';
import type { Tensor } from '../lib/tensor';
import { announceSeed, availableBackends, newContext, rng, TEST_SEED } from './helpers';

type FloatDType = 'float32' | 'float64';
type LossKind = 'crossEntropy' | 'mse';

interface Sizes {
  T: number;
  B: number;
  d: number;
  n: number;
  k: number;
}

const PARAM_NAMES = ['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0', 'W_out', 'c'] as const;
type ParamName = (typeof PARAM_NAMES)[number];
type Params = Record<ParamName, Float64Array>;

function paramShapes(s: Sizes): Record<ParamName, number[]> {
  return {
    weight_ih_l0: [4 * s.n, s.d],
    weight_hh_l0: [4 * s.n, s.n],
    bias_ih_l0: [4 * s.n],
    bias_hh_l0: [4 * s.n],
    W_out: [s.k, s.n],
    c: [s.k],
  };
}

/** One training problem, host-side, in float64. */
interface Problem {
  s: Sizes;
  cfg: LstmNativeConfig;
  params: Params;
  x: Float64Array;
  targets: Int32Array | Float64Array;
  weights: Float64Array;
  h0?: Float64Array;
  c0?: Float64Array;
}

let problemCounter = 0;
function makeProblem(s: Sizes, loss: LossKind, lastStepOnly: boolean, givenState: boolean): Problem {
  const r = rng(TEST_SEED + 104729 * ++problemCounter);
  const uni = (len: number, scale: number) => Float64Array.from({ length: len }, () => scale * (2 * r() - 1));
  const shapes = paramShapes(s);
  const size = (sh: number[]) => sh.reduce((a, b) => a * b, 1);
  // Scales that keep every gate away from saturation but far from linear.
  const params: Params = {
    weight_ih_l0: uni(size(shapes.weight_ih_l0), 0.8),
    weight_hh_l0: uni(size(shapes.weight_hh_l0), 0.8),
    bias_ih_l0: uni(4 * s.n, 0.5),
    bias_hh_l0: uni(4 * s.n, 0.5),
    W_out: uni(s.k * s.n, 1),
    c: uni(s.k, 0.5),
  };
  const rows = lastStepOnly ? s.B : s.T * s.B;
  const targets =
    loss === 'crossEntropy' ? Int32Array.from({ length: rows }, () => Math.floor(r() * s.k)) : uni(rows * s.k, 1);
  // Unequal per-row weights summing to 1, with one row left out when there are several.
  const weights = Float64Array.from({ length: rows }, () => 0.5 + r());
  if (rows > 2) weights[1] = 0;
  const total = weights.reduce((a, b) => a + b, 0);
  for (let i = 0; i < rows; i++) weights[i] /= total;
  return {
    s,
    cfg: { inputSize: s.d, hiddenSize: s.n, outputSize: s.k, loss, lastStepOnly },
    params,
    x: uni(s.T * s.B * s.d, 1),
    targets,
    weights,
    h0: givenState ? uni(s.B * s.n, 0.8) : undefined,
    c0: givenState ? uni(s.B * s.n, 1.5) : undefined,
  };
}

// ---------------------------------------------------------------------------------------
// Independent reference: PyTorch's nn.LSTM equations, element by element, in float64.
//   i = σ(W_ii x + b_ii + W_hi h + b_hi), f = σ(…), g = tanh(…), o = σ(…)
//   c' = f c + i g,  h' = o tanh(c'),  y = W_out h' + c
// ---------------------------------------------------------------------------------------

const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

interface Perturbation {
  /** h_t to perturb, t = 1..T. */
  t: number;
  /** flat index b·n + j. */
  index: number;
  delta: number;
}

function refForward(
  s: Sizes,
  p: Params,
  x: Float64Array,
  h0?: Float64Array,
  c0?: Float64Array,
  perturb?: Perturbation,
): { y: Float64Array; h: Float64Array; c: Float64Array } {
  const { T, B, d, n, k } = s;
  let h = h0 ? Float64Array.from(h0) : new Float64Array(B * n);
  let c = c0 ? Float64Array.from(c0) : new Float64Array(B * n);
  const y = new Float64Array(T * B * k);
  const z = new Float64Array(4 * n);
  for (let t = 0; t < T; t++) {
    const hn = new Float64Array(B * n);
    const cn = new Float64Array(B * n);
    for (let b = 0; b < B; b++) {
      const xr = (t * B + b) * d;
      for (let r = 0; r < 4 * n; r++) {
        let v = p.bias_ih_l0[r] + p.bias_hh_l0[r];
        for (let j = 0; j < d; j++) v += p.weight_ih_l0[r * d + j] * x[xr + j];
        for (let j = 0; j < n; j++) v += p.weight_hh_l0[r * n + j] * h[b * n + j];
        z[r] = v;
      }
      for (let j = 0; j < n; j++) {
        const ig = sigmoid(z[j]);
        const fg = sigmoid(z[n + j]);
        const gg = Math.tanh(z[2 * n + j]);
        const og = sigmoid(z[3 * n + j]);
        cn[b * n + j] = fg * c[b * n + j] + ig * gg;
        hn[b * n + j] = og * Math.tanh(cn[b * n + j]);
      }
    }
    if (perturb && perturb.t === t + 1) hn[perturb.index] += perturb.delta;
    for (let b = 0; b < B; b++) {
      for (let q = 0; q < k; q++) {
        let v = p.c[q];
        for (let j = 0; j < n; j++) v += p.W_out[q * n + j] * hn[b * n + j];
        y[(t * B + b) * k + q] = v;
      }
    }
    h = hn;
    c = cn;
  }
  return { y, h, c };
}

function refLoss(prob: Problem, perturb?: Perturbation): number {
  const { s, cfg } = prob;
  const { y } = refForward(s, prob.params, prob.x, prob.h0, prob.c0, perturb);
  const rows = cfg.lastStepOnly ? s.B : s.T * s.B;
  const offset = cfg.lastStepOnly ? (s.T - 1) * s.B : 0;
  let L = 0;
  for (let r = 0; r < rows; r++) {
    const yr = (offset + r) * s.k;
    if (cfg.loss === 'crossEntropy') {
      let mx = -Infinity;
      for (let q = 0; q < s.k; q++) mx = Math.max(mx, y[yr + q]);
      let se = 0;
      for (let q = 0; q < s.k; q++) se += Math.exp(y[yr + q] - mx);
      L += prob.weights[r] * (mx + Math.log(se) - y[yr + prob.targets[r]]);
    } else {
      for (let q = 0; q < s.k; q++) {
        const e = y[yr + q] - prob.targets[r * s.k + q];
        L += prob.weights[r] * e * e;
      }
    }
  }
  return L;
}

// ---------------------------------------------------------------------------------------
// Native calls.
// ---------------------------------------------------------------------------------------

function cast(a: Float64Array, dtype: FloatDType): Float32Array | Float64Array {
  return dtype === 'float32' ? Float32Array.from(a) : Float64Array.from(a);
}

type Owned = Tensor[];

/** The problem's tensors on the context, in `dtype`. */
function upload(ctx: Context, prob: Problem, dtype: FloatDType, owned: Owned) {
  const keep = <X extends Tensor>(t: X): X => {
    owned.push(t);
    return t;
  };
  const s = prob.s;
  const shapes = paramShapes(s);
  const params: Record<string, NativeTensor> = {};
  for (const name of PARAM_NAMES) params[name] = keep(ctx.tensor(cast(prob.params[name], dtype), shapes[name])).handle;
  const batch: Record<string, NativeTensor> = {
    x: keep(ctx.tensor(cast(prob.x, dtype), [s.T, s.B, s.d])).handle,
    targets:
      prob.targets instanceof Int32Array
        ? keep(ctx.tensor(prob.targets, prob.cfg.lastStepOnly ? [s.B] : [s.T, s.B])).handle
        : keep(ctx.tensor(cast(prob.targets, dtype), prob.cfg.lastStepOnly ? [s.B, s.k] : [s.T, s.B, s.k])).handle,
    weights: keep(ctx.tensor(cast(prob.weights, dtype), prob.cfg.lastStepOnly ? [s.B] : [s.T, s.B])).handle,
  };
  if (prob.h0) batch.h0 = keep(ctx.tensor(cast(prob.h0, dtype), [s.B, s.n])).handle;
  if (prob.c0) batch.c0 = keep(ctx.tensor(cast(prob.c0, dtype), [s.B, s.n])).handle;
  const gradTensors: Record<string, Tensor> = { loss: keep(ctx.empty([1], { dtype })) };
  for (const name of PARAM_NAMES) gradTensors[name] = keep(ctx.empty(shapes[name], { dtype }));
  gradTensors.h0 = keep(ctx.empty([s.B, s.n], { dtype }));
  gradTensors.c0 = keep(ctx.empty([s.B, s.n], { dtype }));
  gradTensors.hiddenGradientNorms = keep(ctx.empty([s.T], { dtype }));
  const grads: Record<string, NativeTensor> = {};
  for (const [key, t] of Object.entries(gradTensors)) grads[key] = t.handle;
  return { params, batch, grads, gradTensors };
}

interface Result {
  loss: number;
  grads: Record<string, Float64Array>;
}

async function readAll(tensors: Record<string, Tensor>): Promise<Result> {
  const grads: Record<string, Float64Array> = {};
  for (const [key, t] of Object.entries(tensors)) grads[key] = Float64Array.from(await t.read());
  return { loss: grads.loss[0], grads };
}

const GRAD_KEYS = [...PARAM_NAMES, 'h0', 'c0'] as const;
type GradKey = (typeof GRAD_KEYS)[number];

/** Loss and every gradient, by one native call. */
async function nativeLossAndGradients(ctx: Context, ws: NativeWorkspace, prob: Problem, dtype: FloatDType): Promise<Result> {
  const owned: Owned = [];
  try {
    const u = upload(ctx, prob, dtype, owned);
    ctx.native.lstmLossAndGradients(ws, prob.cfg, u.params, u.batch, u.grads);
    return await readAll(u.gradTensors);
  } finally {
    for (const t of owned) t.dispose();
  }
}

// Fourth-order central differences: g ≈ (8(L(+h) − L(−h)) − (L(+2h) − L(−2h))) / 12h, with
// truncation error O(h⁴) and rounding error ≈ 1.5 ε|L|/h.
const STENCIL_STEPS = [1, -1, 2, -2];
const STENCIL_WEIGHTS = [8 / 12, -8 / 12, -1 / 12, 1 / 12];

/**
 * Central finite differences of the native loss for every element of `key`, with the other
 * tensors uploaded once. All evaluations are queued, then awaited together.
 */
async function finiteDifferences(ctx: Context, ws: NativeWorkspace, prob: Problem, key: GradKey, h: number): Promise<Float64Array> {
  const owned: Owned = [];
  try {
    const u = upload(ctx, prob, 'float64', owned);
    const s = prob.s;
    const base = key === 'h0' || key === 'c0' ? prob[key]! : prob.params[key];
    const shape = key === 'h0' || key === 'c0' ? [s.B, s.n] : paramShapes(s)[key];
    const pending: Promise<Float64Array>[] = [];
    for (let i = 0; i < base.length; i++) {
      for (const step of STENCIL_STEPS) {
        const v = Float64Array.from(base);
        v[i] += step * h;
        const t = ctx.tensor(v, shape);
        const loss = ctx.empty([1], { dtype: 'float64' });
        owned.push(t, loss);
        const params = { ...u.params };
        const batch = { ...u.batch };
        if (key === 'h0' || key === 'c0') batch[key] = t.handle;
        else params[key] = t.handle;
        ctx.native.lstmLossAndGradients(ws, prob.cfg, params, batch, { ...u.grads, loss: loss.handle });
        pending.push(loss.read() as Promise<Float64Array>);
      }
    }
    const losses = await Promise.all(pending);
    const m = STENCIL_STEPS.length;
    return Float64Array.from({ length: base.length }, (_, i) =>
      STENCIL_WEIGHTS.reduce((acc, w, j) => acc + w * losses[m * i + j][0], 0) / h);
  } finally {
    for (const t of owned) t.dispose();
  }
}

/** Worst |a − b| / max(|a|, |b|, floor) over the elements. */
function worstRelative(a: ArrayLike<number>, b: ArrayLike<number>, floor: number): { rel: number; at: number } {
  assert.equal(a.length, b.length);
  let rel = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]) / Math.max(Math.abs(a[i]), Math.abs(b[i]), floor);
    if (!(e <= rel)) {
      rel = e;
      at = i;
    }
  }
  return { rel, at };
}

// With the fourth-order stencil the truncation error is negligible at h = 1e-5 and the
// rounding error is ≈ 1.5 ε|L|/h ≈ 1e-10·|L| whatever the entry's size; so entries below the
// floor are held to an absolute 1e-6 · floor = 1e-9 instead (plain two-point differences at
// h = 1e-6 carry ~1e-9 of noise, too much for 1e-6 relative on entries of ~1e-3).
const FD_STEP = 1e-5;
const FD_REL_TOL = 1e-6;
const FD_FLOOR = 1e-3;

async function checkAgainstFiniteDifferences(ctx: Context, ws: NativeWorkspace, prob: Problem, label: string): Promise<number> {
  const analytic = await nativeLossAndGradients(ctx, ws, prob, 'float64');
  assert.ok(Math.abs(analytic.loss - refLoss(prob)) <= 1e-12 * Math.max(1, Math.abs(analytic.loss)),
    `${label}: native loss ${analytic.loss} vs reference ${refLoss(prob)}`);
  let worst = 0;
  const keys: GradKey[] = prob.h0 ? [...GRAD_KEYS] : [...PARAM_NAMES];
  for (const key of keys) {
    const fd = await finiteDifferences(ctx, ws, prob, key, FD_STEP);
    const { rel, at } = worstRelative(analytic.grads[key], fd, FD_FLOOR);
    assert.ok(rel <= FD_REL_TOL,
      `${label}: d${key}[${at}] = ${analytic.grads[key][at]} but finite differences give ${fd[at]} (relative error ${rel.toExponential(2)})`);
    // And the gradient must not be trivially zero (the check would then say nothing).
    // (except dW_hh of one step from a zero state, which is exactly zero).
    const exactlyZero = key === 'weight_hh_l0' && prob.s.T === 1 && !prob.h0;
    if (exactlyZero) assert.ok(analytic.grads[key].every((v) => v === 0), `${label}: d${key} must be exactly zero`);
    else assert.ok(fd.some((v) => Math.abs(v) > 1e-6), `${label}: d${key} is all zero`);
    worst = Math.max(worst, rel);
  }
  return worst;
}

/** ‖dL/dh_t‖ over the batch, t = 1..T, by central differences of the JS reference loss. */
function referenceHiddenNorms(prob: Problem): Float64Array {
  const { T, B, n } = prob.s;
  const h = 1e-6;
  const out = new Float64Array(T);
  for (let t = 1; t <= T; t++) {
    let sq = 0;
    for (let index = 0; index < B * n; index++) {
      const g = (refLoss(prob, { t, index, delta: h }) - refLoss(prob, { t, index, delta: -h })) / (2 * h);
      sq += g * g;
    }
    out[t - 1] = Math.sqrt(sq);
  }
  return out;
}

async function nativeForward(ctx: Context, ws: NativeWorkspace, prob: Problem, dtype: FloatDType, x = prob.x, T = prob.s.T, h0 = prob.h0, c0 = prob.c0) {
  const owned: Owned = [];
  const keep = <X extends Tensor>(t: X): X => {
    owned.push(t);
    return t;
  };
  try {
    const s = prob.s;
    const shapes = paramShapes(s);
    const params: NativeTensors = {};
    for (const name of PARAM_NAMES) params[name] = keep(ctx.tensor(cast(prob.params[name], dtype), shapes[name])).handle;
    const xt = keep(ctx.tensor(cast(x, dtype), [T, s.B, s.d]));
    const h0t = h0 ? keep(ctx.tensor(cast(h0, dtype), [s.B, s.n])).handle : null;
    const c0t = c0 ? keep(ctx.tensor(cast(c0, dtype), [s.B, s.n])).handle : null;
    const y = keep(ctx.empty([T, s.B, s.k], { dtype }));
    const hT = keep(ctx.empty([s.B, s.n], { dtype }));
    const cT = keep(ctx.empty([s.B, s.n], { dtype }));
    ctx.native.lstmForward(ws, prob.cfg, params, xt.handle, h0t, c0t, y.handle, hT.handle, cT.handle);
    return { y: Float64Array.from(await y.read()), h: Float64Array.from(await hT.read()), c: Float64Array.from(await cT.read()) };
  } finally {
    for (const t of owned) t.dispose();
  }
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
}

const SIZES: Sizes = { T: 5, B: 3, d: 4, n: 6, k: 5 };
const CASES: { loss: LossKind; lastStepOnly: boolean; givenState: boolean }[] = [];
for (const loss of ['crossEntropy', 'mse'] as const)
  for (const lastStepOnly of [false, true])
    for (const givenState of [false, true]) CASES.push({ loss, lastStepOnly, givenState });
const caseName = (c: (typeof CASES)[number]) =>
  `${c.loss === 'crossEntropy' ? 'CE' : 'MSE'}, ${c.lastStepOnly ? 'last step' : 'all steps'}, ${c.givenState ? 'given (h0, c0)' : 'zero state'}`;

for (const device of availableBackends()) describe(`65 LSTM baseline (native) on ${device}: PyTorch nn.LSTM math, gradients, errors`, () => {
  let ctx: Context;
  let ws: NativeWorkspace;
  before(() => {
    announceSeed();
    ctx = newContext(device);
    ws = ctx.native.createWorkspace();
  });
  after(() => ctx.dispose());

  describe('gradients match fourth-order central finite differences of the native loss (float64, h = 1e-5, error ≤ 1e-6 · max(|g|, 1e-3))', () => {
    for (const c of CASES) {
      it(`${caseName(c)}: every parameter${c.givenState ? ', dL/dh_0 and dL/dc_0' : ''}`, async () => {
        const prob = makeProblem(SIZES, c.loss, c.lastStepOnly, c.givenState);
        const worst = await checkAgainstFiniteDifferences(ctx, ws, prob, caseName(c));
        console.log(`      worst relative error ${worst.toExponential(2)}`);
      });
    }
  });

  it('forward outputs and final (h, c) equal the pure-JS nn.LSTM reference (float64 ≤ 1e-12, float32 ≤ 2e-5)', async () => {
    for (const givenState of [false, true]) {
      const prob = makeProblem(SIZES, 'crossEntropy', false, givenState);
      const ref = refForward(prob.s, prob.params, prob.x, prob.h0, prob.c0);
      const f64 = await nativeForward(ctx, ws, prob, 'float64');
      assert.ok(maxAbsDiff(f64.y, ref.y) <= 1e-12, `float64 outputs differ by ${maxAbsDiff(f64.y, ref.y)}`);
      assert.ok(maxAbsDiff(f64.h, ref.h) <= 1e-12, `float64 h_T differs by ${maxAbsDiff(f64.h, ref.h)}`);
      assert.ok(maxAbsDiff(f64.c, ref.c) <= 1e-12, `float64 c_T differs by ${maxAbsDiff(f64.c, ref.c)}`);
      const f32 = await nativeForward(ctx, ws, prob, 'float32');
      for (const [name, a, b] of [['outputs', f32.y, ref.y], ['h_T', f32.h, ref.h], ['c_T', f32.c, ref.c]] as const) {
        assert.ok(maxAbsDiff(a, b) <= 2e-5, `float32 ${name} differ by ${maxAbsDiff(a, b)}`);
      }
      // Sanity: the state is not trivial (gates neither saturated nor zero).
      assert.ok(maxAbs(ref.h) > 0.05 && maxAbs(ref.h) < 0.99, `h_T magnitude ${maxAbs(ref.h)}`);
    }
  });

  it('the loss of lstmLossAndGradients equals the reference loss in every scoring mode', async () => {
    for (const c of CASES) {
      const prob = makeProblem(SIZES, c.loss, c.lastStepOnly, c.givenState);
      const r = await nativeLossAndGradients(ctx, ws, prob, 'float64');
      const expected = refLoss(prob);
      assert.ok(Math.abs(r.loss - expected) <= 1e-12 * Math.max(1, expected), `${caseName(c)}: ${r.loss} vs ${expected}`);
    }
  });

  it('a given (h0, c0) continues a sequence: two segments chained through (h_T, c_T) equal one long run', async () => {
    const prob = makeProblem({ ...SIZES, T: 7 }, 'mse', false, true);
    const { B, d } = prob.s;
    const whole = await nativeForward(ctx, ws, prob, 'float64');
    const T1 = 3;
    const first = await nativeForward(ctx, ws, prob, 'float64', prob.x.slice(0, T1 * B * d), T1);
    const second = await nativeForward(ctx, ws, prob, 'float64', prob.x.slice(T1 * B * d), 7 - T1, first.h, first.c);
    const joined = new Float64Array(whole.y.length);
    joined.set(first.y);
    joined.set(second.y, first.y.length);
    assert.ok(maxAbsDiff(joined, whole.y) <= 1e-14);
    assert.ok(maxAbsDiff(second.h, whole.h) <= 1e-14 && maxAbsDiff(second.c, whole.c) <= 1e-14);
  });

  it('hidden gradient norms ‖dL/dh_t‖ equal finite differences of the reference loss w.r.t. each h_t (relative ≤ 1e-6)', async () => {
    for (const c of CASES) {
      const prob = makeProblem(SIZES, c.loss, c.lastStepOnly, c.givenState);
      const r = await nativeLossAndGradients(ctx, ws, prob, 'float64');
      const expected = referenceHiddenNorms(prob);
      const { rel, at } = worstRelative(r.grads.hiddenGradientNorms, expected, 1e-8);
      assert.ok(rel <= 1e-6, `${caseName(c)}: ‖dh_${at + 1}‖ = ${r.grads.hiddenGradientNorms[at]} vs ${expected[at]} (relative ${rel.toExponential(2)})`);
      if (c.lastStepOnly) assert.ok(r.grads.hiddenGradientNorms[prob.s.T - 1] > 0);
    }
  });

  it('float32 agrees with float64: loss and every gradient within 1e-4 of the gradient\'s largest entry, norms within 1e-4 relative', async () => {
    for (const c of CASES) {
      const prob = makeProblem(SIZES, c.loss, c.lastStepOnly, c.givenState);
      const r64 = await nativeLossAndGradients(ctx, ws, prob, 'float64');
      const r32 = await nativeLossAndGradients(ctx, ws, prob, 'float32');
      assert.ok(Math.abs(r32.loss - r64.loss) <= 1e-5 * Math.max(1, r64.loss), `${caseName(c)}: loss ${r32.loss} vs ${r64.loss}`);
      for (const key of [...GRAD_KEYS, 'hiddenGradientNorms']) {
        const scale = Math.max(maxAbs(r64.grads[key]), 1e-3);
        const diff = maxAbsDiff(r32.grads[key], r64.grads[key]);
        assert.ok(diff <= 1e-4 * scale, `${caseName(c)}: float32 d${key} differs by ${diff} (scale ${scale})`);
      }
    }
  });

  // n = 64 and 160 with T = 140: on a machine with two or more cores the CPU splits the units
  // between threads (two parts of 32 and of 80 units, the latter in chunks of 64 and 16) and,
  // the recurrence being long, times the team against the caller alone; full finite
  // differences are too many here, so each gradient is checked along a random direction.
  describe('units split across threads and chunks: forward equals the reference, every gradient its directional derivative', () => {
    for (const s of [{ T: 140, B: 3, d: 2, n: 64, k: 3 }, { T: 140, B: 3, d: 2, n: 160, k: 3 }]) {
      it(`n = ${s.n}, T = ${s.T}`, async () => {
        const prob = makeProblem(s, 'crossEntropy', false, true);
        // W_hh at 1/√n of the small cases' scale keeps the dynamics contracting: an expanding
        // recurrence would amplify rounding differences (the kernels of 32- and 64-unit chunks
        // add in different orders) exponentially over 140 steps.
        prob.params.weight_hh_l0 = prob.params.weight_hh_l0.map((w) => w / Math.sqrt(s.n));
        const f = await nativeForward(ctx, ws, prob, 'float64');
        const forwardDiff = maxAbsDiff(f.y, refForward(s, prob.params, prob.x, prob.h0, prob.c0).y);
        assert.ok(forwardDiff <= 1e-11, `forward differs by ${forwardDiff}`);
        const r = await nativeLossAndGradients(ctx, ws, prob, 'float64');
        const random = rng(TEST_SEED + s.n);
        for (const key of GRAD_KEYS) {
          const base = key === 'h0' || key === 'c0' ? prob[key]! : prob.params[key];
          const v = Float64Array.from(base, () => random() * 2 - 1);
          const losses: number[] = [];
          for (const step of STENCIL_STEPS) {
            const moved = Float64Array.from(base, (b, i) => b + step * FD_STEP * v[i]);
            const p2 = key === 'h0' || key === 'c0' ? { ...prob, [key]: moved } : { ...prob, params: { ...prob.params, [key]: moved } };
            losses.push((await nativeLossAndGradients(ctx, ws, p2, 'float64')).loss);
          }
          const fd = STENCIL_WEIGHTS.reduce((acc, w, j) => acc + w * losses[j], 0) / FD_STEP;
          const g = r.grads[key];
          let dot = 0, scale = 0;
          for (let i = 0; i < v.length; i++) {
            dot += g[i] * v[i];
            scale += Math.abs(g[i] * v[i]);
          }
          assert.ok(Math.abs(fd - dot) <= 1e-6 * Math.max(scale, 1e-3), `n = ${s.n}: d${key} along v: ${dot} vs finite differences ${fd}`);
        }
      });
    }
  });

  describe('degenerate sizes: gradients still match finite differences', () => {
    const degenerate: [string, Sizes][] = [
      ['n = 1', { T: 4, B: 3, d: 3, n: 1, k: 3 }],
      ['T = 1', { T: 1, B: 3, d: 4, n: 5, k: 4 }],
      ['B = 1', { T: 5, B: 1, d: 4, n: 5, k: 4 }],
      ['T = B = d = n = 1, k = 2', { T: 1, B: 1, d: 1, n: 1, k: 2 }],
    ];
    for (const [label, s] of degenerate) {
      for (const loss of ['crossEntropy', 'mse'] as const) {
        it(`${label}, ${loss === 'crossEntropy' ? 'CE' : 'MSE'} (all steps with a given state, and last step from zeros)`, async () => {
          await checkAgainstFiniteDifferences(ctx, ws, makeProblem(s, loss, false, true), `${label} all steps`);
          await checkAgainstFiniteDifferences(ctx, ws, makeProblem(s, loss, true, false), `${label} last step`);
          const prob = makeProblem(s, loss, false, false);
          const f = await nativeForward(ctx, ws, prob, 'float64');
          assert.ok(maxAbsDiff(f.y, refForward(s, prob.params, prob.x).y) <= 1e-12);
        });
      }
    }
  });

  describe('bad input: synchronous RangeError/TypeError naming the tensor, rejected awaits for bad class ids; the context stays usable', () => {
    const prob = makeProblem(SIZES, 'crossEntropy', false, true);
    let owned: Owned;
    let u: ReturnType<typeof upload>;
    let goodLoss: number;

    /** A good call afterwards still gives the right loss. */
    async function stillUsable(): Promise<void> {
      ctx.native.lstmLossAndGradients(ws, prob.cfg, u.params, u.batch, u.grads);
      const loss = (await u.gradTensors.loss.read())[0];
      assert.ok(Math.abs(loss - goodLoss) <= 1e-14 * Math.max(1, goodLoss), `loss after the error ${loss} vs ${goodLoss}`);
    }

    function throwsSync(fn: () => void, cls: typeof RangeError | typeof TypeError, re: RegExp): void {
      assert.throws(fn, (e: unknown) => {
        assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
        assert.match((e as Error).message, re);
        return true;
      });
    }

    const t = (data: Float64Array | Float32Array | Int32Array, shape: number[]) => {
      const x = ctx.tensor(data, shape);
      owned.push(x);
      return x.handle;
    };
    const call = (over: { cfg?: Partial<LstmNativeConfig>; params?: NativeTensors; batch?: NativeTensors; grads?: NativeTensors }) => () =>
      ctx.native.lstmLossAndGradients(ws,
        { ...prob.cfg, ...over.cfg },
        { ...u.params, ...over.params },
        { ...u.batch, ...over.batch },
        { ...u.grads, ...over.grads },
      );

    before(async () => {
      owned = [];
      u = upload(ctx, prob, 'float64', owned);
      ctx.native.lstmLossAndGradients(ws, prob.cfg, u.params, u.batch, u.grads);
      goodLoss = (await u.gradTensors.loss.read())[0];
    });
    after(() => {
      for (const x of owned) x.dispose();
    });

    it('mismatched shapes are RangeErrors naming the tensor and both shapes', async () => {
      const { T, B, d, n, k } = SIZES;
      throwsSync(call({ params: { weight_ih_l0: t(new Float64Array(4 * n * d), [d, 4 * n]) } }), RangeError,
        /'weight_ih_l0' must be of shape \[24, 4\], got \[4, 24\]/);
      throwsSync(call({ params: { weight_hh_l0: t(new Float64Array(3 * n * n), [3 * n, n]) } }), RangeError, /'weight_hh_l0' must be of shape \[24, 6\]/);
      throwsSync(call({ params: { bias_hh_l0: t(new Float64Array(n), [n]) } }), RangeError, /'bias_hh_l0' must be of shape \[24\]/);
      throwsSync(call({ params: { W_out: t(new Float64Array(n * k), [n, k]) } }), RangeError, /'W_out' must be of shape \[5, 6\]/);
      throwsSync(call({ batch: { x: t(new Float64Array(T * B * (d + 1)), [T, B, d + 1]) } }), RangeError, /'x' must be T × B × 4, got shape \[5, 3, 5\]/);
      throwsSync(call({ batch: { h0: t(new Float64Array((B + 1) * n), [B + 1, n]) } }), RangeError, /'h0' must be of shape \[3, 6\], got \[4, 6\]/);
      throwsSync(call({ batch: { c0: t(new Float64Array(B * n), [n, B]) } }), RangeError, /'c0' must be of shape \[3, 6\]/);
      throwsSync(call({ batch: { targets: t(new Int32Array(B), [B]) } }), RangeError, /'targets' must have 15 elements/);
      throwsSync(call({ batch: { weights: t(new Float64Array(T * B + 1), [T * B + 1]) } }), RangeError, /'weights' must have 15 elements/);
      throwsSync(call({ grads: { weight_hh_l0: t(new Float64Array(4 * n * d), [4 * n, d]) } }), RangeError, /'grads.weight_hh_l0' must be of shape \[24, 6\]/);
      throwsSync(call({ grads: { h0: t(new Float64Array(n), [n]) } }), RangeError, /'grads.h0' must be of shape \[3, 6\]/);
      throwsSync(call({ grads: { hiddenGradientNorms: t(new Float64Array(T + 1), [T + 1]) } }), RangeError, /'grads.hiddenGradientNorms' must have 5 elements/);
      throwsSync(call({ params: { c: undefined } }), RangeError, /missing tensor 'c'/);
      throwsSync(call({ grads: { W_out: undefined } }), RangeError, /missing tensor 'grads.W_out'/);
      throwsSync(call({ cfg: { hiddenSize: 5 } }), RangeError, /'weight_ih_l0' must be of shape \[20, 4\]/);
      throwsSync(call({ cfg: { hiddenSize: 0 } }), RangeError, /config.hiddenSize must be a positive integer/);
      throwsSync(call({ cfg: { outputSize: 2.5 } }), RangeError, /config.outputSize must be a positive integer/);
      throwsSync(call({ cfg: { loss: 'hinge' as never } }), RangeError, /config.loss must be 'crossEntropy' or 'mse', got 'hinge'/);
      // lstmForward validates its outputs as well.
      const y = ctx.empty([T, B, k + 1], { dtype: 'float64' });
      const hT = ctx.empty([B, n], { dtype: 'float64' });
      const cT = ctx.empty([B, n + 1], { dtype: 'float64' });
      owned.push(y, hT, cT);
      throwsSync(() => ctx.native.lstmForward(ws, prob.cfg, u.params, u.batch.x!, null, null, y.handle, hT.handle, hT.handle), RangeError,
        /'outputs' must have 75 elements/);
      const yGood = ctx.empty([T, B, k], { dtype: 'float64' });
      owned.push(yGood);
      throwsSync(() => ctx.native.lstmForward(ws, prob.cfg, u.params, u.batch.x!, null, null, yGood.handle, hT.handle, cT.handle), RangeError,
        /'cFinal' must be of shape \[3, 6\], got \[3, 7\]/);
      await stillUsable();
    });

    it('wrong dtypes are TypeErrors', async () => {
      const { T, B, d, n } = SIZES;
      throwsSync(call({ batch: { x: t(new Float32Array(T * B * d), [T, B, d]) } }), TypeError, /'x' must be float64 like the parameters, got float32/);
      throwsSync(call({ params: { bias_ih_l0: t(new Float32Array(4 * n), [4 * n]) } }), TypeError, /'bias_ih_l0' must be float64, got float32/);
      throwsSync(call({ batch: { targets: t(new Float64Array(T * B), [T, B]) } }), TypeError, /'targets' must be int32, got float64/);
      throwsSync(call({ grads: { c0: t(new Float32Array(B * n), [B, n]) } }), TypeError, /'grads.c0' must be float64, got float32/);
      throwsSync(call({ params: { weight_ih_l0: t(new Int32Array(4 * n * d), [4 * n, d]) } }), TypeError, /parameters must be float32 or float64/);
      throwsSync(call({ params: { W_out: {} as never } }), TypeError, /'params.W_out' must be a tensor/);
      throwsSync(call({ cfg: { lastStepOnly: 1 as never } }), TypeError, /config.lastStepOnly must be a boolean/);
      throwsSync(() => ctx.native.lstmLossAndGradients({} as never, prob.cfg, u.params, u.batch, u.grads), TypeError, /argument 'workspace'/);
      await stillUsable();
    });

    it('a class id ≥ k (or < 0) is accepted synchronously and rejects the next await with a RangeError', async () => {
      const { T, B, k } = SIZES;
      for (const bad of [k, -1]) {
        const targets = Int32Array.from(prob.targets);
        targets[T * B - 2] = bad;
        call({ batch: { targets: t(targets, [T, B]) } })();
        await assert.rejects(ctx.sync(), (e: unknown) => {
          assert.ok(e instanceof RangeError, `expected RangeError, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
          assert.match((e as Error).message, new RegExp(`lstmLossAndGradients.*target ${bad} at row ${T * B - 2} is not a class id in \\[0, ${k}\\)`));
          return true;
        });
        await stillUsable();
      }
    });

    it('a disposed tensor is refused synchronously', async () => {
      const x = ctx.tensor(Float64Array.from(prob.x), [SIZES.T, SIZES.B, SIZES.d]);
      x.dispose();
      assert.throws(call({ batch: { x: x.handle } }), /'batch.x'.*has been disposed/);
      await stillUsable();
    });
  });
});
