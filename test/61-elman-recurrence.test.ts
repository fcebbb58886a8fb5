import assert from 'node:assert/strict';
import { Context, ElmanRNN, ops } from '../lib/index';
import type { Tensor } from '../lib/index';
import { announceSeed, assertClose, byName, naiveGemm, randomArray, rng, TEST_SEED, availableBackends } from './helpers';

// The CPU runs the recurrence on one of three paths by size: a single-threaded JIT kernel
// (n < 64), JIT kernels split by columns across threads (n ≥ 64 while each thread's share of
// W fits its L2 cache), and BLAS (beyond that, and at every size in builds without
// libxsmm). The small models of suite 60 cover the first; these sizes cover the other two
// against an independent reference (n = 1100 in float64 is 4.8 MB of W per thread: BLAS).
// The output logits are summed inside the threaded steps for up to 128 classes and by one
// product after them beyond: k = 150 covers the second.
for (const device of availableBackends()) describe(`61 Elman recurrence at the sizes of every CPU code path on ${device}`, () => {
  let ctx: Context;
  before(() => {
    announceSeed();
    ctx = new Context({ device, seed: TEST_SEED });
  });
  after(() => ctx.dispose());

  for (const [n, k] of [[96, 4], [130, 4], [1100, 4], [96, 150]]) {
    it(`n = ${n}, k = ${k}: outputs match a JS reference; sampled gradients match central differences`, async () => {
      const [T, B, d] = [4, 3, 5];
      const model = await ElmanRNN.create({ inputSize: d, hiddenSize: n, outputSize: k, recurrent: 'plain', init: 'glorot', dtype: 'float64', context: ctx, seed: 7 });
      const st = await model.state();
      const x = ctx.tensor(randomArray(T * B * d) as Float64Array, [T, B, d]);
      const X = await x.read();
      // Reference forward: h_t = tanh(W_in x_t + W h_{t−1} + b), y_t = W_out h_t + c.
      let h: Float64Array = new Float64Array(B * n);
      const Y = new Float64Array(T * B * k);
      for (let t = 0; t < T; t++) {
        const a = naiveGemm(X.subarray(t * B * d, (t + 1) * B * d), st.W_in, B, n, d, false, true);
        const r = naiveGemm(h, st.W, B, n, n, false, true);
        h = Float64Array.from(a, (v, i) => Math.tanh(v + r[i] + st.b[i % n]));
        Y.set(naiveGemm(h, st.W_out, B, k, n, false, true).map((v, i) => v + st.c[i % k]), t * B * k);
      }
      const { outputs, finalState } = model.forward(x);
      assertClose(await outputs.read(), Y, { atol: 1e-12, rtol: 1e-12 }, 'outputs');
      assertClose(await finalState.read(), h, { atol: 1e-12, rtol: 1e-12 }, 'final state');

      const targets = ctx.tensor(Int32Array.from({ length: T * B }, (_, i) => (i * 3) % k), [T, B]);
      const batch = { x, targets };
      const { gradients } = await model.lossAndGradients(batch);
      // Read every gradient now: the model's buffers are overwritten by the loss evaluations below.
      const analytic: Record<string, Float64Array> = {};
      for (const name of ['W', 'W_in', 'b']) analytic[name] = Float64Array.from(await byName(gradients)[name]!.read());
      const r = rng(TEST_SEED + n);
      for (const name of ['W', 'W_in', 'b']) {
        const param = model.parametersByName[name] as Tensor<'float64'>;
        const base = Float64Array.from(await param.read());
        const g = analytic[name];
        for (let s = 0; s < 6; s++) {
          const i = Math.floor(r() * base.length);
          // Fourth-order central differences keep the truncation error far below the tolerance.
          const lossAt = async (delta: number) => {
            const probe = Float64Array.from(base);
            probe[i] = base[i] + delta;
            ops.copy(ctx.tensor(probe, param.shape), { out: param });
            return (await model.lossAndGradients(batch)).loss;
          };
          const h0 = 1e-4;
          const fd = (-(await lossAt(2 * h0)) + 8 * (await lossAt(h0)) - 8 * (await lossAt(-h0)) + (await lossAt(-2 * h0))) / (12 * h0);
          ops.copy(ctx.tensor(base, param.shape), { out: param });
          assert.ok(Math.abs(g[i] - fd) <= 1e-8 + 1e-6 * Math.abs(fd), `n = ${n}: d${name}[${i}] ${g[i]} vs ${fd}`);
        }
      }
      model.dispose();
    });
  }

  it('float32 and float64 agree at n = 256 (the threaded path in both precisions)', async () => {
    const [T, B, d, k, n] = [6, 4, 3, 5, 256];
    const m64 = await ElmanRNN.create({ inputSize: d, hiddenSize: n, outputSize: k, dtype: 'float64', context: ctx, seed: 3 });
    const m32 = await ElmanRNN.create({ inputSize: d, hiddenSize: n, outputSize: k, context: ctx, seed: 3 });
    m32.loadState(await m64.state());
    const X = randomArray(T * B * d) as Float64Array;
    const targets = ctx.tensor(Int32Array.from({ length: T * B }, (_, i) => i % k), [T, B]);
    const r64 = await m64.lossAndGradients({ x: ctx.tensor(X, [T, B, d]), targets });
    const r32 = await m32.lossAndGradients({ x: ctx.tensor(Float32Array.from(X), [T, B, d]), targets });
    assert.ok(Math.abs(r64.loss - r32.loss) < 1e-5 * r64.loss);
    for (const name of ['U', 'V', 'W_in']) {
      const a = await byName(r64.gradients)[name]!.read();
      const scale = Math.max(...Array.from(a, Math.abs));
      assertClose(await byName(r32.gradients)[name]!.read(), a, { atol: 1e-4 * scale }, `d${name}`);
    }
    assertClose(r32.hiddenGradientNorms, r64.hiddenGradientNorms, { rtol: 1e-4 }, 'hidden gradient norms');
    m64.dispose();
    m32.dispose();
  });
});
