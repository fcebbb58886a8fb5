/**
 * 62: every implementation of every fused op against its reference composite. For each
 * backend, each fused op and each of its variants, a context forced to that variant runs the
 * op at a shape where the variant's own rule applies, says (ctx.variants()) that it ran, and
 * gives the reference's numbers: float64, to rounding. The options that force a variant are
 * checked too.
 */
import assert from 'node:assert/strict';
import { Context, ElmanRNN, LSTM, ops, RMSprop } from '../lib/index';
import type { FusedOp, Tensor } from '../lib/index';
import { announceSeed, availableBackends, byName, rng, TEST_SEED } from './helpers';

/** U(−1, 1) values that depend only on the run's seed and `salt`: the same for every variant's run. */
function uniform(n: number, salt: number): Float64Array {
  const r = rng(TEST_SEED + salt);
  return Float64Array.from({ length: n }, () => 2 * r() - 1);
}

/** What one run of an op gives: every number to compare. */
type Outcome = Record<string, Float64Array>;

async function readAll(tensors: Record<string, Tensor>): Promise<Outcome> {
  const out: Outcome = {};
  for (const [name, t] of Object.entries(tensors)) out[name] = Float64Array.from(await t.read());
  return out;
}

// T = 140 steps of B = 3 sequences, 2 inputs, n = 64 units, 4 classes: the team splits the
// units (two cores or more) and, the recurrence being long, times itself.
const [T, B, d, n, k] = [140, 3, 2, 64, 4];

/** A model's loss, every gradient, the hidden gradient norms and its outputs on one batch. */
async function modelOutcome(ctx: Context, model: ElmanRNN<'float64'> | LSTM<'float64'>): Promise<Outcome> {
  const x = ctx.tensor(uniform(T * B * d, 1), [T, B, d]);
  const targets = ctx.tensor(Int32Array.from({ length: T * B }, (_, i) => i % k), [T, B]);
  const r = await model.lossAndGradients({ x, targets, score: 'all' });
  const out = { loss: Float64Array.of(r.loss), norms: Float64Array.from(r.hiddenGradientNorms), ...(await readAll(byName(r.gradients))), y: Float64Array.from(await model.forward(x).outputs.read()) };
  model.dispose();
  return out;
}

/** Each fused op, run once on `ctx` at a shape where its fast variants apply. */
const RUNS: Record<FusedOp, (ctx: Context) => Promise<Outcome>> = {
  elmanRecurrence: async (ctx) =>
    modelOutcome(ctx, await ElmanRNN.create({ inputSize: d, hiddenSize: n, outputSize: k, recurrent: 'svd', margin: 0.2, dtype: 'float64', context: ctx, seed: TEST_SEED % 1000, clipPreactivation: 5 })),
  lstmRecurrence: async (ctx) =>
    modelOutcome(ctx, await LSTM.create({ inputSize: d, hiddenSize: n, outputSize: k, dtype: 'float64', context: ctx, seed: TEST_SEED % 1000, init: 'paper' })),
  // A whole loss-and-gradients call, twice on new batch tensors of one shape: a variant that
  // replays calls (CUDA's graph) runs the first directly and captures and launches the second.
  async elmanStep(ctx) {
    const model = await ElmanRNN.create({ inputSize: d, hiddenSize: n, outputSize: k, recurrent: 'svd', margin: 0.2, dtype: 'float64', context: ctx, seed: TEST_SEED % 1000, learnH0: true });
    const first = { x: ctx.tensor(uniform(T * B * d, 6), [T, B, d]), targets: ctx.tensor(Int32Array.from({ length: T * B }, (_, i) => (i * 7) % k), [T, B]) };
    await model.lossAndGradients({ ...first, score: 'all' });
    first.x.dispose();
    first.targets.dispose();
    return modelOutcome(ctx, model);
  },
  // Three training steps whose updates (RMSprop, then Cayley steps in the frame) are each one
  // sequence of ops on the same tensors: a variant that replays sequences (CUDA's graph) runs
  // the first directly, captures the second and launches the third.
  async sequence(ctx) {
    const model = await ElmanRNN.create({ inputSize: d, hiddenSize: n, outputSize: k, recurrent: 'svd', margin: 0.2, dtype: 'float64', context: ctx, seed: TEST_SEED % 1000 });
    const { U, V, ...euclidean } = model.parametersByName;
    const rmsprop = new RMSprop(euclidean, { lr: 1e-2 });
    const batch = { x: ctx.tensor(uniform(T * B * d, 7), [T, B, d]), targets: ctx.tensor(Int32Array.from({ length: T * B }, (_, i) => (i * 5) % k), [T, B]), score: 'all' as const };
    const losses: number[] = [];
    for (let step = 0; step < 3; step++) {
      const r = await model.lossAndGradients(batch, { frameGradients: true });
      losses.push(r.loss);
      ctx.sequence(() => {
        rmsprop.step(r.gradients);
        ops.cayleyStepInFrame(U, r.frameGradients.U, 1e-2);
        ops.cayleyStepInFrame(V, r.frameGradients.V, 1e-2);
      });
    }
    const out = { losses: Float64Array.from(losses), ...(await readAll(model.parametersByName)), ...(await rmsprop.state()) } as Outcome;
    rmsprop.dispose();
    model.dispose();
    return Object.fromEntries(Object.entries(out).map(([key, v]) => [key, Float64Array.from(v)]));
  },
  // The CPU's tiled solve takes n ≥ 768, a multiple of 64, and a diagonally dominant system;
  // the CUDA fused one n ≤ 256 where the system fits one block's shared memory.
  async cayleyFrameSolve(ctx) {
    const m = ctx.backend === 'cuda' ? 96 : 768;
    const { q } = ops.qr(ctx.tensor(uniform(m * m, 2), [m, m]));
    const F = ctx.tensor(uniform(m * m, 3), [m, m]);
    ops.cayleyStepInFrame(q, F, 1e-4); // small enough that the system is diagonally dominant, as the tiled solve needs
    return { M: Float64Array.from(await q.read()) };
  },
  // The unpivoted factorisation takes a diagonally dominant Cayley system: a small step.
  async cayleyFactor(ctx) {
    const m = 96;
    const { q } = ops.qr(ctx.tensor(uniform(m * m, 4), [m, m]));
    ops.cayleyStep(q, ctx.tensor(uniform(m * m, 5), [m, m]), 1e-3);
    return { M: Float64Array.from(await q.read()) };
  },
};

function worstRelative(a: Float64Array, b: Float64Array): number {
  assert.equal(a.length, b.length);
  let scale = 0, worst = 0;
  for (let i = 0; i < a.length; i++) scale = Math.max(scale, Math.abs(b[i]));
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.max(scale, 1e-300));
  return worst;
}

for (const device of availableBackends()) describe(`62 fused-op variants on ${device}: each against the reference composite`, function () {
  this.timeout(300_000);
  before(() => announceSeed());

  const probe = new Context({ device });
  const report = probe.variants();
  probe.dispose();

  for (const op of Object.keys(RUNS) as FusedOp[]) {
    const names = report[op].available;
    it(`${op}: ${names.join(', ')}`, async () => {
      assert.equal(names[0], 'reference');
      const reference = new Context({ device, variants: { [op]: 'reference' } });
      let expected: Outcome;
      try {
        expected = await RUNS[op](reference);
        assert.equal(reference.variants()[op].last, 'reference', `${op}: the forced reference ran`);
        assert.equal(reference.variants()[op].forced, 'reference');
      } finally {
        reference.dispose();
      }
      if (names.length === 1) console.log(`      (${device} has no other ${op} variant than the reference in this build)`);
      for (const variant of names.slice(1)) {
        const ctx = new Context({ device, variants: { [op]: variant } });
        try {
          const got = await RUNS[op](ctx);
          assert.equal(ctx.variants()[op].last, variant, `${op}: '${variant}' ran at its shape`);
          for (const [key, values] of Object.entries(expected)) {
            const rel = worstRelative(got[key], values);
            assert.ok(rel <= 1e-11, `${op} '${variant}' against the reference: ${key} differs by ${rel.toExponential(2)} of its largest entry`);
          }
        } finally {
          ctx.dispose();
        }
      }
    });
  }

  it('threads: 1 computes what the default computes (to rounding); bad counts are coded errors', async () => {
    for (const op of ['elmanRecurrence', 'lstmRecurrence'] as const) {
      const [one, all] = [new Context({ device, threads: 1 }), new Context({ device })];
      try {
        const [a, b] = [await RUNS[op](one), await RUNS[op](all)];
        for (const [key, values] of Object.entries(b)) {
          const rel = worstRelative(a[key], values);
          assert.ok(rel <= 1e-11, `${op} with one thread: ${key} differs by ${rel.toExponential(2)} of its largest entry`);
        }
      } finally {
        one.dispose();
        all.dispose();
      }
    }
    for (const bad of [0, 1.5, 5000]) assert.throws(() => new Context({ device, threads: bad }), (e: Error) => e instanceof RangeError && /'threads' must be an integer in \[1, 4096\]/.test(e.message));
    assert.throws(() => new Context({ device, threads: '2' as never }), (e: Error) => e instanceof TypeError && /'threads'/.test(e.message));
  });

  it('by default each call takes a fast variant that applies; bad variant options are coded errors naming them', async () => {
    const ctx = new Context({ device });
    try {
      assert.deepEqual(Object.values(ctx.variants()).map((v) => v.forced), [null, null, null, null, null, null]);
      assert.equal(ctx.variants().elmanRecurrence.last, null, 'nothing ran yet');
      await RUNS.elmanRecurrence(ctx);
      const { available, last } = ctx.variants().elmanRecurrence;
      const fast = available.slice(1);
      assert.ok(fast.length === 0 ? last === 'reference' : fast.includes(last!), `a fast variant of ${available.join(', ')} ran, not ${last}`);
    } finally {
      ctx.dispose();
    }
    assert.throws(() => new Context({ device, variants: { elmanRecurrence: 'fastest' } }), (e: Error & { code?: string }) =>
      e instanceof RangeError && e.code === 'ERR_ORTHORNN_RANGE' && /'variants\.elmanRecurrence' must be 'reference'/.test(e.message) && /got 'fastest'/.test(e.message));
    assert.throws(() => new Context({ device, variants: { gemm: 'reference' } as never }), /'variants' must be keys among elmanRecurrence, lstmRecurrence, cayleyFrameSolve, cayleyFactor, elmanStep, sequence, got 'gemm'/);
    assert.throws(() => new Context({ device, variants: { lstmRecurrence: 3 } as never }), (e: Error) => e instanceof TypeError && /'variants\.lstmRecurrence'/.test(e.message));
    assert.throws(() => new Context({ device, variants: 'reference' as never }), /'variants' must be an object/);
  });
});
