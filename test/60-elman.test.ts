import assert from 'node:assert/strict';
import { Context, ElmanRNN, NumericError, ops } from '../lib/index';
import type { Activation, FloatDType, LossKind, RecurrentKind, Scoring, SequenceBatch, Tensor } from '../lib/index';
import { announceSeed, assertClose, byName, naiveGemm, randomArray, rng, TEST_SEED, availableBackends } from './helpers';

interface Case {
  activation: Activation;
  recurrent: RecurrentKind;
  score: Scoring;
  loss: LossKind;
  initial: 'h0' | 'given';
}

const sizes = { T: 4, B: 3, d: 3, n: 5, k: 4 };

async function makeModel(ctx: Context, c: Partial<Case> & { margin?: number; dtype?: FloatDType; spectrumPrior?: number }, seed = TEST_SEED % 1000) {
  const recurrent = c.recurrent ?? 'svd';
  const model = await ElmanRNN.create<FloatDType>({
    inputSize: sizes.d, hiddenSize: sizes.n, outputSize: sizes.k,
    activation: c.activation ?? 'tanh', recurrent,
    ...(recurrent === 'svd' ? { margin: c.margin ?? 0.5, spectrumPrior: c.spectrumPrior ?? 0 } : {}),
    ...(recurrent === 'penalty' ? { penalty: 0.3 } : {}),
    learnH0: c.initial !== 'given', dtype: c.dtype ?? 'float64', context: ctx, seed,
  });
  // Move every parameter off its special initial value (p = 0, b = 0, h0 = 0, ...), so every
  // term of every gradient is exercised.
  const state = await model.state();
  const r = rng(TEST_SEED + 17);
  for (const [name, v] of Object.entries(state)) {
    const scale = name === 'W_in' ? 1 : name === 'p' ? 2 : 0.3;
    for (let i = 0; i < v.length; i++) v[i] += scale * (2 * r() - 1);
  }
  model.loadState(state);
  return model;
}

function makeBatch(ctx: Context, c: Partial<Case>, dtype: FloatDType = 'float64', T = sizes.T, B = sizes.B): SequenceBatch<FloatDType> {
  const { d, n, k } = sizes;
  const score = c.score ?? 'all';
  const loss = c.loss ?? 'crossEntropy';
  const rows = score === 'last' ? B : T * B;
  const r = rng(TEST_SEED + 29);
  const targets = loss === 'crossEntropy'
    ? ctx.tensor(Int32Array.from({ length: rows }, () => Math.floor(r() * k)), score === 'last' ? [B] : [T, B])
    : ctx.tensor(randomArray(rows * k, dtype), score === 'last' ? [B, k] : [T, B, k]);
  const batch: SequenceBatch<FloatDType> = { x: ctx.tensor(randomArray(T * B * d, dtype), [T, B, d]) as Tensor<FloatDType>, targets, loss, score };
  if (score === 'mask') {
    const mask = new Float64Array(T * B).map((_, i) => (i % 5 === 2 ? 0 : 1));
    batch.mask = mask;
  }
  if (c.initial === 'given') batch.initialState = ctx.tensor(randomArray(B * n, dtype), [B, n]) as Tensor<FloatDType>;
  return batch;
}

/**
 * The model on a batch, computed in JS from its state: the pre-activations a_t = W_in x_t +
 * W h_{t−1} + b (T × B × n), the outputs (T × B × k) and the final state.
 */
async function referenceForward(model: ElmanRNN<FloatDType>, batch: SequenceBatch<FloatDType>) {
  const st = await model.state();
  const { T, B, d, n, k } = sizes;
  let W: Float64Array;
  if (model.recurrent === 'svd') {
    const m = model.margin;
    const s = Array.from(st.p, (p) => Math.max(0, 2 * m * (1 / (1 + Math.exp(-p)) - 0.5) + 1));
    const US = Float64Array.from(st.U, (u, i) => u * s[i % n]);
    W = naiveGemm(US, st.V, n, n, n, false, true);
  } else {
    W = Float64Array.from(st.W);
  }
  const phi = { tanh: Math.tanh, relu: (v: number) => Math.max(0, v), identity: (v: number) => v }[model.activation];
  const X = await batch.x.read();
  let h = batch.initialState ? Float64Array.from(await batch.initialState.read()) : Float64Array.from({ length: B * n }, (_, i) => (st.h0 ? st.h0[i % n] : 0));
  const pre = new Float64Array(T * B * n);
  const Y = new Float64Array(T * B * k);
  for (let t = 0; t < T; t++) {
    const a = naiveGemm(X.subarray(t * B * d, (t + 1) * B * d), st.W_in, B, n, d, false, true);
    const rec = naiveGemm(h, W, B, n, n, false, true);
    const at = Float64Array.from(a, (v, i) => v + rec[i] + st.b[i % n]);
    pre.set(at, t * B * n);
    h = at.map(phi);
    Y.set(naiveGemm(h, st.W_out, B, k, n, false, true).map((v, i) => v + st.c[i % k]), t * B * k);
  }
  return { pre, Y, h };
}

/**
 * A batch for a gradient check. ReLU is not differentiable at 0: a central difference whose
 * step moves a pre-activation across 0 measures the mean of two slopes, not the gradient, so
 * data that puts any pre-activation within 1e-3 of 0 (a step of 1e-5 moves them by far less)
 * is drawn again.
 */
async function gradientCheckBatch(ctx: Context, model: ElmanRNN<FloatDType>, c: Partial<Case>): Promise<SequenceBatch<FloatDType>> {
  for (;;) {
    const batch = makeBatch(ctx, c);
    if (model.activation !== 'relu') return batch;
    const { pre } = await referenceForward(model, batch);
    if (pre.every((v) => Math.abs(v) >= 1e-3)) return batch;
  }
}

/** Central differences of the loss in every element of every parameter (and of the initial state). */
async function checkGradients(ctx: Context, model: ElmanRNN<FloatDType>, batch: SequenceBatch<FloatDType>, label: string) {
  const { gradients, initialStateGradient } = await model.lossAndGradients(batch);
  const analytic: Record<string, Float64Array> = {};
  for (const [name, g] of Object.entries(gradients)) analytic[name] = Float64Array.from(await g.read());
  const dInit = initialStateGradient ? Float64Array.from(await initialStateGradient.read()) : undefined;
  const h = 1e-5;
  const lossAt = async () => (await model.lossAndGradients(batch)).loss;
  for (const [name, param] of Object.entries(model.parameters)) {
    const base = Float64Array.from(await param.read());
    const fd = new Float64Array(base.length);
    for (let i = 0; i < base.length; i++) {
      const probe = Float64Array.from(base);
      probe[i] = base[i] + h;
      ops.copy(ctx.tensor(probe, param.shape), { out: param });
      const up = await lossAt();
      probe[i] = base[i] - h;
      ops.copy(ctx.tensor(probe, param.shape), { out: param });
      const down = await lossAt();
      fd[i] = (up - down) / (2 * h);
    }
    ops.copy(ctx.tensor(base, param.shape), { out: param });
    assertClose(analytic[name], fd, { atol: 1e-8, rtol: 1e-6 }, `${label}: d${name}`);
  }
  if (dInit && batch.initialState) {
    const init = batch.initialState;
    const base = Float64Array.from(await init.read());
    const fd = new Float64Array(base.length);
    for (let i = 0; i < base.length; i++) {
      const probe = Float64Array.from(base);
      probe[i] = base[i] + h;
      const up = (await model.lossAndGradients({ ...batch, initialState: ctx.tensor(probe, init.shape) as Tensor<FloatDType> })).loss;
      probe[i] = base[i] - h;
      const down = (await model.lossAndGradients({ ...batch, initialState: ctx.tensor(probe, init.shape) as Tensor<FloatDType> })).loss;
      fd[i] = (up - down) / (2 * h);
    }
    assertClose(dInit, fd, { atol: 1e-8, rtol: 1e-6 }, `${label}: d(initial state)`);
  }
}

for (const device of availableBackends()) describe(`60 Elman RNN on ${device}: forward, loss and BPTT against finite differences and independent formulas`, function () {
  let ctx: Context;
  before(() => {
    announceSeed();
    ctx = new Context({ device, seed: TEST_SEED });
  });
  after(() => ctx.dispose());

  describe('float64 central-difference gradient checks of every parameter', () => {
    const cases: Case[] = [];
    for (const activation of ['tanh', 'relu', 'identity'] as const)
      for (const recurrent of ['svd', 'plain', 'penalty'] as const)
        for (const score of ['all', 'last', 'mask'] as const)
          for (const loss of ['crossEntropy', 'mse'] as const)
            for (const initial of ['h0', 'given'] as const) cases.push({ activation, recurrent, score, loss, initial });
    for (const c of cases) {
      const label = `${c.activation}, ${c.recurrent}, score ${c.score}, ${c.loss}, ${c.initial === 'h0' ? 'learned h0' : 'given initial state'}`;
      it(label, async () => {
        const model = await makeModel(ctx, c);
        await checkGradients(ctx, model, await gradientCheckBatch(ctx, model, c), label);
        model.dispose();
      });
    }
    it('svd with a spectrum prior γ Σ (s − 1)² and a margin above 1 (s clamped at 0)', async () => {
      for (const margin of [0.3, 2.5]) {
        const model = await makeModel(ctx, { recurrent: 'svd', margin, spectrumPrior: 0.7 });
        await checkGradients(ctx, model, makeBatch(ctx, { score: 'all' }), `prior, m = ${margin}`);
        model.dispose();
      }
    });
  });

  it('the forward pass and the loss match an independent JS implementation', async () => {
    for (const recurrent of ['svd', 'plain'] as const) {
      const model = await makeModel(ctx, { recurrent, activation: 'tanh' });
      const batch = makeBatch(ctx, { score: 'all', loss: 'crossEntropy' });
      const { T, B, k } = sizes;
      const { Y, h } = await referenceForward(model, batch);
      const targets = await batch.targets.read();
      let loss = 0;
      for (let t = 0; t < T; t++) {
        const y = Y.subarray(t * B * k, (t + 1) * B * k);
        for (let bi = 0; bi < B; bi++) {
          const row = y.subarray(bi * k, (bi + 1) * k);
          const mx = Math.max(...row);
          const lse = mx + Math.log(row.reduce((acc, v) => acc + Math.exp(v - mx), 0));
          loss += (lse - row[targets[t * B + bi]]) / (T * B);
        }
      }
      const { outputs, finalState } = model.forward(batch.x);
      assertClose(await outputs.read(), Y, { atol: 1e-12, rtol: 1e-12 }, `${recurrent} outputs`);
      assertClose(await finalState.read(), h, { atol: 1e-12, rtol: 1e-12 }, `${recurrent} final state`);
      const got = (await model.lossAndGradients(batch)).loss;
      assert.ok(Math.abs(got - loss) < 1e-12, `loss ${got} vs ${loss}`);
      model.dispose();
    }
  });

  it('the U, V and p gradients agree with the chain rule through dL/dW', async () => {
    const m = 0.4;
    const svd = await makeModel(ctx, { recurrent: 'svd', margin: m });
    const st = await svd.state();
    const { n } = sizes;
    // A plain model holding the same W = U diag(s) Vᵀ gives G = dL/dW.
    const plain = await makeModel(ctx, { recurrent: 'plain' });
    const W = await svd.recurrentMatrix().read();
    plain.loadState({ W_in: st.W_in, b: st.b, W: Float64Array.from(W), W_out: st.W_out, c: st.c, h0: st.h0 });
    const batch = makeBatch(ctx, { score: 'all' });
    const G = Float64Array.from(await byName((await plain.lossAndGradients(batch)).gradients).W!.read());
    const g = byName((await svd.lossAndGradients(batch)).gradients);
    const sig = Array.from(st.p, (p) => 1 / (1 + Math.exp(-p)));
    const s = sig.map((v) => 2 * m * (v - 0.5) + 1);
    const GV = naiveGemm(G, st.V, n, n, n);
    const GtU = naiveGemm(G, st.U, n, n, n, true);
    const dU = Float64Array.from(GV, (v, i) => v * s[i % n]);
    const dV = Float64Array.from(GtU, (v, i) => v * s[i % n]);
    const UtGV = naiveGemm(st.U, GV, n, n, n, true);
    const dp = s.map((_, i) => UtGV[i * n + i] * 2 * m * sig[i] * (1 - sig[i]));
    assertClose(await g.U!.read(), dU, { atol: 1e-12, rtol: 1e-10 }, 'dU = G V S');
    assertClose(await g.V!.read(), dV, { atol: 1e-12, rtol: 1e-10 }, 'dV = Gᵀ U S');
    assertClose(await g.p!.read(), dp, { atol: 1e-12, rtol: 1e-10 }, 'dp = diag(Uᵀ G V) · 2mσ(1 − σ)');
    svd.dispose();
    plain.dispose();
  });

  it('frame gradients are Uᵀ dL/dU and Vᵀ dL/dV, replace gradients.U and .V, and leave the rest unchanged', async () => {
    const model = await makeModel(ctx, { recurrent: 'svd', margin: 0.4 });
    const { n } = sizes;
    const batch = makeBatch(ctx, { score: 'all' });
    const euclidean = await model.lossAndGradients(batch);
    const expected: Record<string, Float64Array> = {};
    for (const [name, g] of Object.entries(euclidean.gradients)) expected[name] = Float64Array.from(await g.read());
    const framed = await model.lossAndGradients(batch, { frameGradients: true });
    assert.equal(framed.loss, euclidean.loss);
    assert.deepEqual(Object.keys(framed.gradients).sort(), Object.keys(expected).filter((k) => k !== 'U' && k !== 'V').sort());
    for (const [name, g] of Object.entries(framed.gradients)) assertClose(await g.read(), expected[name], { atol: 1e-13, rtol: 1e-12 }, name);
    const U = await model.parametersByName.U.read(), V = await model.parametersByName.V.read();
    assertClose(await framed.frameGradients!.U.read(), naiveGemm(U, expected.U, n, n, n, true), { atol: 1e-12, rtol: 1e-10 }, 'Uᵀ dU');
    assertClose(await framed.frameGradients!.V.read(), naiveGemm(V, expected.V, n, n, n, true), { atol: 1e-12, rtol: 1e-10 }, 'Vᵀ dV');
    // Without the option, the Euclidean gradients again.
    const again = await model.lossAndGradients(batch);
    assert.equal(again.frameGradients, undefined);
    assertClose(await byName(again.gradients).V!.read(), expected.V, { atol: 1e-13, rtol: 1e-12 }, 'dV again');
    model.dispose();
  });

  it('hidden gradient norms: ‖dL/dh_t‖ equals the initial-state gradient of the suffix from step t (last step scored)', async () => {
    const model = await makeModel(ctx, { recurrent: 'svd', initial: 'h0' });
    const { T, B, d } = { ...sizes, T: 7 };
    const batch = makeBatch(ctx, { score: 'last' }, 'float64', T, B);
    const { hiddenGradientNorms } = await model.lossAndGradients(batch);
    assert.equal(hiddenGradientNorms.length, T);
    const X = await batch.x.read();
    for (const t of [1, 3, 6]) {
      const prefix = ctx.tensor(X.slice(0, t * B * d), [t, B, d]) as Tensor<FloatDType>;
      const suffix = ctx.tensor(X.slice(t * B * d), [T - t, B, d]) as Tensor<FloatDType>;
      const { finalState } = model.forward(prefix);
      const r = await model.lossAndGradients({ ...batch, x: suffix, initialState: finalState });
      const g = await r.initialStateGradient!.read();
      const norm = Math.hypot(...g);
      assert.ok(Math.abs(norm - hiddenGradientNorms[t - 1]) < 1e-12 * Math.max(1, norm), `t = ${t}: ${norm} vs ${hiddenGradientNorms[t - 1]}`);
    }
    model.dispose();
  });

  it('float32 agrees with float64 (loss to 1e-5, gradients to 1e-4 relative to their scale)', async () => {
    for (const recurrent of ['svd', 'plain', 'penalty'] as const) {
      const m64 = await makeModel(ctx, { recurrent });
      const st = await m64.state();
      const m32 = await ElmanRNN.create({ inputSize: sizes.d, hiddenSize: sizes.n, outputSize: sizes.k, recurrent, ...(recurrent === 'svd' ? { margin: 0.5 } : {}), ...(recurrent === 'penalty' ? { penalty: 0.3 } : {}), learnH0: true, context: ctx });
      m32.loadState(st);
      const b64 = makeBatch(ctx, { score: 'all' });
      const X = await b64.x.read();
      const b32: SequenceBatch<'float32'> = { targets: b64.targets, loss: b64.loss, score: b64.score, x: ctx.tensor(Float32Array.from(X), b64.x.shape) };
      const r64 = await m64.lossAndGradients(b64);
      const r32 = await m32.lossAndGradients(b32);
      assert.ok(Math.abs(r64.loss - r32.loss) < 1e-5 * Math.max(1, r64.loss), `${recurrent} loss ${r32.loss} vs ${r64.loss}`);
      for (const name of Object.keys(r64.gradients)) {
        const a = await byName(r64.gradients)[name]!.read();
        const scale = Math.max(1e-3, ...Array.from(a, Math.abs));
        assertClose(await byName(r32.gradients)[name]!.read(), a, { atol: 1e-4 * scale, rtol: 0 }, `${recurrent} d${name}`);
      }
      m64.dispose();
      m32.dispose();
    }
  });

  it('degenerate sizes: n = 1, T = 1, B = 1', async () => {
    const model = await ElmanRNN.create({ inputSize: 1, hiddenSize: 1, outputSize: 2, dtype: 'float64', context: ctx, learnH0: true });
    const batch = { x: ctx.tensor(new Float64Array([0.7]), [1, 1, 1]), targets: ctx.tensor(new Int32Array([1]), [1, 1]) };
    const r = await model.lossAndGradients(batch);
    assert.ok(Number.isFinite(r.loss) && r.loss > 0);
    assert.equal(r.hiddenGradientNorms.length, 1);
    assert.deepEqual([...r.gradients.U.shape], [1, 1]);
    model.dispose();
  });

  it('m = 0 gives s ≡ 1 (W orthogonal) and dL/dp = 0', async () => {
    const model = await ElmanRNN.create({ inputSize: 3, hiddenSize: 6, outputSize: 2, margin: 0, dtype: 'float64', context: ctx, seed: 3 });
    const s = await model.singularValues();
    assert.ok(s.every((v) => v === 1), `s = ${s}`);
    const W = await model.recurrentMatrix().read();
    const WtW = naiveGemm(W, W, 6, 6, 6, true);
    for (let i = 0; i < 6; i++) for (let j = 0; j < 6; j++) assert.ok(Math.abs(WtW[i * 6 + j] - (i === j ? 1 : 0)) < 1e-12);
    const r = await model.lossAndGradients({ x: ctx.randn([5, 2, 3], { dtype: 'float64' }), targets: ctx.tensor(new Int32Array(10).fill(1), [5, 2]) });
    assert.ok((await r.gradients.p.read()).every((v) => v === 0));
    model.dispose();
  });

  it('initialisations: orthogonal and identity give s = 1; Glorot clips the spectrum into the margin', async () => {
    for (const init of ['orthogonal', 'identity', 'glorot'] as const) {
      const model = await ElmanRNN.create({ inputSize: 2, hiddenSize: 32, outputSize: 2, margin: 0.1, init, dtype: 'float64', context: ctx });
      const s = await model.singularValues();
      if (init === 'glorot') {
        assert.ok(s.every((v) => v >= 0.9 - 1e-9 && v <= 1.1 + 1e-9), `glorot s in [0.9, 1.1]: ${s[0]}..${s[s.length - 1]}`);
        assert.ok(s[0] - s[s.length - 1] > 0.05, 'a Glorot spectrum is spread, not all ones');
      } else {
        assert.ok(s.every((v) => Math.abs(v - 1) < 1e-12));
      }
      for (const M of ['U', 'V']) assert.ok((await ops.orthogonalityError(model.parametersByName[M]).item()) < 1e-13, `${init} ${M} orthogonal`);
      model.dispose();
    }
    const plain = await ElmanRNN.create({ inputSize: 2, hiddenSize: 64, outputSize: 2, recurrent: 'plain', init: 'glorot', context: ctx });
    const sv = await plain.singularValues();
    assert.ok(sv[0] > 1.5 && sv[sv.length - 1] < 0.1, `a Glorot W is far from orthogonal: ${sv[0]}, ${sv[sv.length - 1]}`);
    plain.dispose();
  });

  it('state() and loadState() round-trip by parameter names and reject unknown, missing or mis-sized entries', async () => {
    const model = await makeModel(ctx, { recurrent: 'svd' });
    const st = await model.state();
    assert.deepEqual(Object.keys(st), ['W_in', 'b', 'U', 'V', 'p', 'W_out', 'c', 'h0']);
    const other = await makeModel(ctx, { recurrent: 'svd' }, 99);
    other.loadState(st);
    const st2 = await other.state();
    for (const k of Object.keys(st)) assert.deepEqual(st2[k], st[k]);
    assert.throws(() => other.loadState({ ...st, W: st.U }), /unknown parameter 'W'/);
    const { p: _p, ...missing } = st;
    assert.throws(() => other.loadState(missing), /no 'p'/);
    assert.throws(() => other.loadState({ ...st, b: new Float64Array(2) }), RangeError);
    assert.throws(() => other.loadState({ ...st, b: new Float64Array(sizes.n).fill(NaN) }), /finite/);
    assert.deepEqual(await other.state(), st2, 'a rejected state leaves the model untouched');
    model.dispose();
    other.dispose();
  });

  describe('bad input: clear errors, the model still usable afterwards', () => {
    let model: ElmanRNN<FloatDType>;
    before(async () => (model = await makeModel(ctx, { recurrent: 'svd' })));
    after(() => model.dispose());
    const good = () => makeBatch(ctx, { score: 'all' });

    it('mismatched shapes are RangeErrors naming the argument', async () => {
      const b = good();
      await assert.rejects(model.lossAndGradients({ ...b, x: ctx.zeros([4, 3, 7], { dtype: 'float64' }) }), /batch\.x.*T × B × 3/);
      await assert.rejects(model.lossAndGradients({ ...b, targets: ctx.tensor(new Int32Array(5), [5]) }), /batch\.targets.*\[4, 3\]/);
      await assert.rejects(model.lossAndGradients({ ...b, score: 'last' }), /batch\.targets.*\[3\]/);
      await assert.rejects(model.lossAndGradients({ ...b, initialState: ctx.zeros([2, 5], { dtype: 'float64' }) }), /initialState.*\[3, 5\]/);
      await assert.rejects(model.lossAndGradients({ ...b, score: 'mask', mask: new Float64Array(3) }), /mask.*12 values/);
      await assert.rejects(model.lossAndGradients({ ...b, score: 'mask', mask: new Float64Array(12) }), /all-zero mask/);
      await assert.rejects(model.lossAndGradients({ ...b, extra: 1 } as never), /unknown option 'extra'/);
    });

    it('class ids ≥ k reject with a RangeError naming the row', async () => {
      const b = good();
      await assert.rejects(model.lossAndGradients({ ...b, targets: ctx.tensor(new Int32Array(12).fill(sizes.k), [4, 3]) }), (e: unknown) => e instanceof RangeError && /target 4 at row 0/.test(e.message));
    });

    it('NaN/Inf inputs are a NumericError naming the input', async () => {
      const b = good();
      const X = await b.x.read();
      X[5] = NaN;
      await assert.rejects(model.lossAndGradients({ ...b, x: ctx.tensor(X, b.x.shape, { allowNonFinite: true }) as Tensor<FloatDType> }), (e: unknown) => e instanceof NumericError && /batch\.x.*1 NaN/.test(e.message));
    });

    it('a dtype that differs between model and batch is a TypeError', async () => {
      const b = good();
      await assert.rejects(model.lossAndGradients({ ...b, x: ctx.zeros([4, 3, 3]) as never }), (e: unknown) => e instanceof TypeError && /float64 tensor like the model/.test(e.message));
      await assert.rejects(model.lossAndGradients({ ...b, targets: ctx.zeros([4, 3]) as never }), TypeError);
    });

    it('bad options are errors naming the option', async () => {
      await assert.rejects(ElmanRNN.create({ inputSize: 0, hiddenSize: 2, outputSize: 2 }), /inputSize/);
      await assert.rejects(ElmanRNN.create({ inputSize: 1, hiddenSize: 2, outputSize: 2, recurrent: 'plain', margin: 0.1 }), /margin/);
      await assert.rejects(ElmanRNN.create({ inputSize: 1, hiddenSize: 2, outputSize: 2, margin: -1 }), /margin/);
      await assert.rejects(ElmanRNN.create({ inputSize: 1, hiddenSize: 2, outputSize: 2, hidden: 3 } as never), /unknown option 'hidden'/);
      const b = good();
      await assert.rejects(model.lossAndGradients(b, { frames: true } as never), /unknown option 'frames'/);
      await assert.rejects(model.lossAndGradients(b, { frameGradients: 1 } as never), (e: unknown) => e instanceof TypeError && /options\.frameGradients.*a boolean/.test(e.message));
      await assert.rejects(model.lossAndGradients(b, null as never), /options.*an object/);
      const plain = await makeModel(ctx, { recurrent: 'plain' });
      await assert.rejects(plain.lossAndGradients(b, { frameGradients: true }), /options\.frameGradients.*only for an ElmanRNN with recurrent 'svd'/);
      plain.dispose();
    });

    it('after all of these the model computes the same loss as before', async () => {
      const b = good();
      const r1 = (await model.lossAndGradients(b)).loss;
      assert.ok(Number.isFinite(r1));
      assert.equal((await model.lossAndGradients(b)).loss, r1);
    });
  });
});
