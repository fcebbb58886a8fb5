import assert from 'node:assert/strict';
import { Context, ElmanRNN, LSTM } from '../lib/index';
import type { FloatDType, Prediction, Tensor } from '../lib/index';
import { announceSeed, assertClose, availableBackends, randomArray, rng, TEST_SEED } from './helpers';

type Model = ElmanRNN<'float64'> | LSTM<'float64'>;

/** Softmax of each k-wide row, in float64. */
function softmaxRows(y: ArrayLike<number>, k: number): Float64Array {
  const out = new Float64Array(y.length);
  for (let o = 0; o < y.length; o += k) {
    let max = -Infinity;
    for (let j = 0; j < k; j++) max = Math.max(max, y[o + j]);
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(y[o + j] - max);
    for (let j = 0; j < k; j++) out[o + j] = Math.exp(y[o + j] - max) / sum;
  }
  return out;
}

/** Sequence b of a time-major T × B × d array, its first L steps (L × 1 × d). */
function column(x: Float64Array, T: number, B: number, d: number, b: number, L = T): Float64Array {
  const out = new Float64Array(L * d);
  for (let t = 0; t < L; t++) out.set(x.subarray((t * B + b) * d, (t * B + b + 1) * d), t * d);
  return out;
}

function code(err: unknown): string | undefined {
  return (err as { code?: string }).code;
}

for (const device of availableBackends()) describe(`67 inference on ${device}: predict, variable lengths, sessions`, () => {
  let ctx: Context;
  const models: Model[] = [];
  before(async () => {
    announceSeed();
    ctx = new Context({ device, seed: TEST_SEED });
    const elman = await ElmanRNN.create({ inputSize: 3, hiddenSize: 8, outputSize: 5, dtype: 'float64', context: ctx, seed: 3, learnH0: true });
    // A non-zero learned h0, so that starting from it (rather than zeros) is tested.
    const state = await elman.state();
    state.h0 = randomArray(8) as Float64Array;
    elman.loadState(state);
    models.push(elman, await LSTM.create({ inputSize: 3, hiddenSize: 8, outputSize: 5, dtype: 'float64', context: ctx, seed: 4 }));
  });
  after(() => {
    for (const m of models) m.dispose();
    ctx.dispose();
  });

  for (const which of ['ElmanRNN', 'LSTM']) {
    const model = () => models[which === 'ElmanRNN' ? 0 : 1];

    it(`${which}: probabilities, raw outputs, class ids and the last step agree with forward`, async () => {
      const m = model();
      const [T, B, d, k] = [6, 4, 3, 5];
      const X = randomArray(T * B * d) as Float64Array;
      const x = ctx.tensor(X, [T, B, d]);
      const ref: { outputs: Tensor<'float64'>; finalState: Tensor<'float64'>; finalCellState?: Tensor<'float64'> } = m.forward(x);
      const y = (await ref.outputs.read()) as Float64Array;
      const h = await ref.finalState.read();
      ref.outputs.dispose();
      ref.finalState.dispose();
      ref.finalCellState?.dispose();

      const probs = await m.predict(x);
      assert.deepEqual(probs.shape, [T, B, k]);
      assert.ok(probs.values instanceof Float64Array);
      assertClose(probs.values as Float64Array, softmaxRows(y, k), { atol: 1e-14 }, 'probabilities');
      assertClose(probs.finalState, h, { atol: 0 }, 'final state');
      assert.deepEqual([...probs.lengths], [T, T, T, T]);
      assert.equal(probs.finalCellState !== undefined, which === 'LSTM');

      const raw = await m.predict(X, { shape: [T, B, d], output: 'raw' });
      assertClose(raw.values as Float64Array, y, { atol: 0 }, 'raw, from a host array');

      const ids = await m.predict(x, { output: 'argmax' });
      assert.deepEqual(ids.shape, [T, B]);
      assert.ok(ids.values instanceof Int32Array);
      for (let r = 0; r < T * B; r++) {
        const row = Array.from(y.subarray(r * k, (r + 1) * k));
        assert.equal(ids.values[r], row.indexOf(Math.max(...row)));
      }

      const last = await m.predict(x, { last: true, output: 'raw' });
      assert.deepEqual(last.shape, [B, k]);
      assertClose(last.values as Float64Array, y.subarray((T - 1) * B * k), { atol: 0 }, 'last step');
      x.dispose();
    });

    it(`${which}: variable lengths give each sequence exactly what it gives alone`, async () => {
      const m = model();
      const [T, B, d, k, n] = [9, 7, 3, 5, 8];
      const r = rng(TEST_SEED + 67);
      const lengths = Array.from({ length: B }, (_, b) => (b === 2 ? T : 1 + Math.floor(r() * T)));
      lengths[4] = lengths[1]; // two sequences of one length share a forward
      const X = randomArray(T * B * d) as Float64Array;
      // Whatever the padding holds must not matter.
      const noisy = X.slice();
      for (let b = 0; b < B; b++) for (let t = lengths[b]; t < T; t++) noisy.fill(1e3 * (t + 1), (t * B + b) * d, (t * B + b + 1) * d);
      const H0 = randomArray(B * n) as Float64Array;
      const C0 = randomArray(B * n) as Float64Array;
      const withStates = (o: object) => ({ ...o, initialState: H0, ...(which === 'LSTM' && { initialCellState: C0 }) });

      for (const states of [false, true]) {
        const opts = { shape: [T, B, d], lengths, output: 'raw' as const };
        const all = await m.predict(noisy, states ? withStates(opts) : opts);
        const lastIds = await m.predict(noisy, states ? withStates({ ...opts, output: 'argmax', last: true }) : { ...opts, output: 'argmax', last: true });
        const lastProbs = await m.predict(noisy, { ...(states ? withStates(opts) : opts), output: 'probabilities', last: true });
        assert.deepEqual(all.shape, [T, B, k]);
        assert.deepEqual(lastProbs.shape, [B, k]);
        for (let b = 0; b < B; b++) {
          const L = lengths[b];
          const alone: Prediction<FloatDType> = await m.predict(column(X, T, B, d, b, L), {
            shape: [L, 1, d],
            output: 'raw',
            ...(states && { initialState: H0.slice(b * n, (b + 1) * n), ...(which === 'LSTM' && { initialCellState: C0.slice(b * n, (b + 1) * n) }) }),
          });
          const mine = new Float64Array(T * k);
          for (let t = 0; t < T; t++) mine.set((all.values as Float64Array).subarray((t * B + b) * k, (t * B + b + 1) * k), t * k);
          assertClose(mine.subarray(0, L * k), alone.values as Float64Array, { atol: 1e-13 }, `sequence ${b} (length ${L}) outputs`);
          assert.ok(mine.subarray(L * k).every((v) => v === 0), `sequence ${b}: padded steps are zero`);
          assertClose(all.finalState.subarray(b * n, (b + 1) * n), alone.finalState, { atol: 1e-13 }, `sequence ${b} final state`);
          if (which === 'LSTM') assertClose(all.finalCellState!.subarray(b * n, (b + 1) * n), alone.finalCellState!, { atol: 1e-13 }, `sequence ${b} cell state`);
          const lastRow = Array.from((alone.values as Float64Array).subarray((L - 1) * k, L * k));
          assert.equal(lastIds.values[b], lastRow.indexOf(Math.max(...lastRow)), `sequence ${b}: argmax of its own last step`);
          assertClose((lastProbs.values as Float64Array).subarray(b * k, (b + 1) * k), softmaxRows(lastRow, k), { atol: 1e-13 }, `sequence ${b} last probabilities`);
        }
      }
      // The same from a tensor with an Int32Array of lengths, padded ids −1.
      const xt = ctx.tensor(noisy, [T, B, d]);
      const ids = await m.predict(xt, { lengths: Int32Array.from(lengths), output: 'argmax' });
      for (let b = 0; b < B; b++) for (let t = lengths[b]; t < T; t++) assert.equal(ids.values[t * B + b], -1);
      xt.dispose();
    });

    it(`${which}: a session fed in pieces matches the whole sequence, reset() starts streams over`, async () => {
      const m = model();
      const [T, B, d, k] = [10, 3, 3, 5];
      const X = randomArray(T * B * d) as Float64Array;
      const whole = await m.predict(X, { shape: [T, B, d] });
      const session = m.session({ batchSize: B });
      // Issued without awaiting each other: they still run in order.
      const pieces = await Promise.all([session.step(X.subarray(0, 3 * B * d)), session.step(X.subarray(3 * B * d, 4 * B * d)), session.step(X.subarray(4 * B * d))]);
      assert.deepEqual(pieces.map((p) => p.shape), [[3, B, k], [1, B, k], [6, B, k]]);
      const joined = new Float64Array(T * B * k);
      let at = 0;
      for (const p of pieces) {
        joined.set(p.values as Float64Array, at);
        at += p.values.length;
      }
      assertClose(joined, whole.values as Float64Array, { atol: 1e-13 }, 'session outputs');
      assert.equal(session.steps, T);
      const state = await session.state();
      assertClose(state.hidden, whole.finalState, { atol: 1e-13 }, 'session state');
      assert.equal(state.cell !== undefined, which === 'LSTM');

      // Stream 1 starts over; 0 and 2 go on.
      session.reset([1]);
      const more = randomArray(2 * B * d) as Float64Array;
      const next = await session.step(more);
      const fresh = await m.predict(column(more, 2, B, d, 1), { shape: [2, 1, d] });
      const s1 = new Float64Array(2 * k);
      for (let t = 0; t < 2; t++) s1.set((next.values as Float64Array).subarray((t * B + 1) * k, (t * B + 2) * k), t * k);
      assertClose(s1, fresh.values as Float64Array, { atol: 1e-13 }, 'stream 1 after reset([1])');
      const cont = await m.predict(Float64Array.from([...X, ...more]), { shape: [T + 2, B, d] });
      for (const b of [0, 2]) {
        for (let t = 0; t < 2; t++) {
          assertClose((next.values as Float64Array).subarray((t * B + b) * k, (t * B + b + 1) * k), (cont.values as Float64Array).subarray(((T + t) * B + b) * k, ((T + t) * B + b + 1) * k), { atol: 1e-13 }, `stream ${b} goes on`);
        }
      }

      // reset() of all: the state is the model's initial one again.
      session.reset();
      assert.equal(session.steps, 0);
      const again = await session.step(X.subarray(0, B * d));
      assertClose(again.values as Float64Array, (whole.values as Float64Array).subarray(0, B * k), { atol: 1e-13 }, 'after reset()');
      const ids = m.session({ batchSize: B, output: 'argmax' });
      assert.deepEqual((await ids.step(X)).shape, [T, B]);
      ids.dispose();
      session.dispose();
      session.dispose();
      await assert.rejects(session.step(X), (e: unknown) => code(e) === 'ERR_ORTHORNN_DISPOSED');
    });
  }

  it('refuses bad arguments with coded errors naming them', async () => {
    const [elman, lstm] = models;
    const X = randomArray(2 * 2 * 3) as Float64Array;
    const x = ctx.tensor(X, [2, 2, 3]);
    const cases: [Promise<unknown>, string, RegExp][] = [
      [elman.predict(x, { output: 'softmax' as never }), 'ERR_ORTHORNN_RANGE', /'options.output'/],
      [elman.predict(x, { last: 1 as never }), 'ERR_ORTHORNN_TYPE', /'options.last'/],
      [elman.predict(x, { lengths: [1, 3] }), 'ERR_ORTHORNN_RANGE', /'options.lengths\[1\]'/],
      [elman.predict(x, { lengths: [1] }), 'ERR_ORTHORNN_RANGE', /'options.lengths'/],
      [elman.predict(x, { lengths: [0, 1] }), 'ERR_ORTHORNN_RANGE', /'options.lengths\[0\]'/],
      [elman.predict(x, { lengths: 'all' as never }), 'ERR_ORTHORNN_TYPE', /'options.lengths'/],
      [elman.predict(X), 'ERR_ORTHORNN_RANGE', /'options.shape'/],
      [elman.predict(X, { shape: [2, 3, 3] }), 'ERR_ORTHORNN_RANGE', /'x'/],
      [elman.predict(x, { shape: [2, 2, 3] }), 'ERR_ORTHORNN_RANGE', /'options.shape'/],
      [elman.predict(Float64Array.of(NaN, ...X.subarray(1)), { shape: [2, 2, 3] }), 'ERR_ORTHORNN_RANGE', /'x'.*NaN/],
      [elman.predict([[1, 2, 3]] as never), 'ERR_ORTHORNN_TYPE', /'x'/],
      [elman.predict(x, { initialCellState: new Float64Array(16) }), 'ERR_ORTHORNN_RANGE', /'options.initialCellState'/],
      [lstm.predict(x, { initialState: new Float64Array(3) }), 'ERR_ORTHORNN_RANGE', /'options.initialState'/],
      [elman.predict(x, { colour: 'red' } as never), 'ERR_ORTHORNN_RANGE', /unknown option 'colour'/],
    ];
    for (const [p, expected, message] of cases) {
      await assert.rejects(p, (e: unknown) => code(e) === expected && message.test((e as Error).message), `${expected} ${message}`);
    }
    assert.throws(() => elman.session({ batchSize: 0 }), (e: unknown) => code(e) === 'ERR_ORTHORNN_RANGE' && /'options.batchSize'/.test((e as Error).message));
    const s = elman.session({ batchSize: 3 });
    await assert.rejects(s.step(X), (e: unknown) => code(e) === 'ERR_ORTHORNN_RANGE' && /multiple of 9/.test((e as Error).message));
    assert.throws(() => s.reset([3]), (e: unknown) => code(e) === 'ERR_ORTHORNN_RANGE' && /'streams\[0\]'/.test((e as Error).message));
    s.dispose();
    x.dispose();
  });
});
