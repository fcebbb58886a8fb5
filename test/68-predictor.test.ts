import assert from 'node:assert/strict';
import { Context, createPredictor, ElmanRNN, LSTM, OrthornnError, OverloadError, ops } from '../lib/index';
import type { FloatDType, Predictor, SequencePrediction } from '../lib/index';
import { announceSeed, assertClose, availableBackends, randomArray, rng, TEST_SEED } from './helpers';

function code(err: unknown): string | undefined {
  return (err as { code?: string }).code;
}

/** model.predict of one sequence alone (L × 1 × d), with the batch axis dropped from the shape. */
async function alone(model: ElmanRNN<FloatDType> | LSTM<FloatDType>, x: Float32Array, output: 'probabilities' | 'raw' | 'argmax', last: boolean) {
  const L = x.length / model.inputSize;
  const p = await model.predict(x, { shape: [L, 1, model.inputSize], output, last });
  return { values: p.values, shape: p.shape.filter((_, i) => i !== (last ? 0 : 1)), finalState: p.finalState };
}

for (const device of availableBackends()) describe(`68 predictor on ${device}: coalesced batches on its own context`, () => {
  let ctx: Context;
  before(() => {
    announceSeed();
    ctx = new Context({ device, seed: TEST_SEED });
  });
  after(() => ctx.dispose());

  for (const kind of ['ElmanRNN', 'LSTM']) {
    it(`${kind}: every request gets what model.predict gives its sequence alone, and requests are batched`, async () => {
      const d = 4;
      const model = kind === 'ElmanRNN'
        ? await ElmanRNN.create({ inputSize: d, hiddenSize: 24, outputSize: 6, context: ctx, seed: 5 })
        : await LSTM.create({ inputSize: d, hiddenSize: 24, outputSize: 6, context: ctx, seed: 5 });
      const predictor = await createPredictor(model, { maxBatch: 16, maxWaitMs: 5 });
      assert.notEqual(predictor.context, model.context);
      const r = rng(TEST_SEED + 68);
      const outputs = ['probabilities', 'raw', 'argmax'] as const;
      const requests = Array.from({ length: 40 }, (_, i) => {
        // Mostly one length (one forward per batch), a few others.
        const L = i % 5 === 0 ? 1 + Math.floor(r() * 12) : 12;
        return { x: randomArray(L * d, 'float32') as Float32Array, output: outputs[i % 3], last: i % 2 === 0 };
      });
      // One request as an array of steps.
      const asRows = Array.from({ length: requests[1].x.length / d }, (_, t) => Array.from(requests[1].x.subarray(t * d, (t + 1) * d)));
      const answers: SequencePrediction[] = await Promise.all(
        requests.map((q, i) => predictor.predict(i === 1 ? asRows : q.x, { output: q.output, last: q.last })),
      );
      for (const [i, q] of requests.entries()) {
        const want = await alone(model, q.x, q.output, q.last);
        const got = answers[i];
        assert.deepEqual(got.shape, want.shape, `request ${i} shape`);
        if (q.output === 'argmax') assert.deepEqual([...got.values], [...want.values], `request ${i} class ids`);
        else assertClose(got.values as Float32Array, want.values as Float32Array, { atol: 2e-6, rtol: 1e-5 }, `request ${i} values`);
        assertClose(got.finalState, want.finalState, { atol: 2e-6, rtol: 1e-5 }, `request ${i} final state`);
      }
      const stats = predictor.stats;
      assert.equal(stats.requests, 40);
      assert.ok(stats.batches <= 4, `40 requests in ${stats.batches} batches (at most 16 each)`);
      assert.equal(stats.largestBatch, 16);
      assert.ok(stats.forwardCalls < 40 / 2, `${stats.forwardCalls} forward calls for 40 requests`);
      await predictor.close();
      assert.ok(predictor.context.disposed);
      model.dispose();
    });
  }

  it('refuses requests past maxQueue with an OverloadError, and close() rejects those waiting', async () => {
    const model = await ElmanRNN.create({ inputSize: 2, hiddenSize: 8, outputSize: 3, context: ctx });
    const predictor = await createPredictor(model, { maxQueue: 4, maxBatch: 64, maxWaitMs: 10_000 });
    const x = new Float32Array(10);
    const waiting = Array.from({ length: 4 }, () => predictor.predict(x));
    const settled = waiting.map((p) => p.then(() => 'resolved', (e: unknown) => e));
    await assert.rejects(predictor.predict(x), (e: unknown) => {
      assert.ok(e instanceof OverloadError && e instanceof OrthornnError);
      assert.equal(code(e), 'ERR_ORTHORNN_OUT_OF_MEMORY');
      assert.match((e as Error).message, /maxQueue 4/);
      return true;
    });
    assert.equal(predictor.stats.refused, 1);
    assert.equal(predictor.stats.queued, 4);
    await predictor.close();
    for (const s of await Promise.all(settled)) {
      assert.equal(code(s), 'ERR_ORTHORNN_DISPOSED');
      assert.match((s as Error).message, /closed before the request ran/);
    }
    await assert.rejects(predictor.predict(x), (e: unknown) => code(e) === 'ERR_ORTHORNN_DISPOSED');
    await assert.rejects(predictor.refresh(), (e: unknown) => code(e) === 'ERR_ORTHORNN_DISPOSED');
    assert.ok(predictor.context.disposed);
    await predictor.close(); // idempotent
    model.dispose();
  });

  it('close() lets running batches finish', async () => {
    const model = await ElmanRNN.create({ inputSize: 2, hiddenSize: 8, outputSize: 3, context: ctx });
    const predictor = await createPredictor(model, { maxBatch: 2, maxWaitMs: 0 });
    const running = [predictor.predict(new Float32Array(6)), predictor.predict(new Float32Array(6))];
    await predictor.close();
    for (const p of await Promise.all(running)) assert.deepEqual(p.shape, [3, 3]);
  });

  it('copies each sequence at predict(): the caller may reuse its array at once; float64 in, float32 served; many slabs of copies', async () => {
    const d = 5;
    const model = await ElmanRNN.create({ inputSize: d, hiddenSize: 16, outputSize: 3, context: ctx, seed: 13 });
    const predictor = await createPredictor(model, { maxBatch: 64, maxWaitMs: 20 });
    const buffer = new Float32Array(100 * d);
    const xs = Array.from({ length: 600 }, () => randomArray(100 * d, 'float32') as Float32Array);
    // One reused buffer for every request, overwritten before any batch runs.
    const answers = xs.map((x) => {
      buffer.set(x);
      return predictor.predict(buffer, { last: true, output: 'raw' });
    });
    buffer.fill(1e30);
    const asFloat64 = predictor.predict(Float64Array.from(xs[7]), { last: true, output: 'raw' });
    const got = await Promise.all(answers);
    // 600 × 100 × 5 float32 values (1.2 MB): more than one slab of copies (1 MiB).
    for (const i of [0, 1, 299, 598, 599]) {
      const want = await alone(model, xs[i], 'raw', true);
      assertClose(got[i].values as Float32Array, want.values as Float32Array, { atol: 2e-6, rtol: 1e-5 }, `request ${i}`);
    }
    // The same sequence served in another batch (its size decides the BLAS blocking), so equal
    // to rounding, not bit for bit: a CI run once saw 9e-8 apart.
    assertClose((await asFloat64).values as Float32Array, got[7].values as Float32Array, { atol: 2e-6, rtol: 1e-5 }, 'float64 input');
    await predictor.close();
    model.dispose();
  });

  it('answers a large batch a slice at a time, turns of the event loop between slices, each answer right', async () => {
    const d = 3;
    const model = await ElmanRNN.create({ inputSize: d, hiddenSize: 8, outputSize: 4, context: ctx, seed: 11 });
    const predictor = await createPredictor(model, { maxBatch: 100, maxWaitMs: 10_000 });
    // A turn counter: a chain of setImmediate callbacks, one per turn of the loop.
    let turn = 0;
    let ticking = true;
    const tick = () => {
      turn++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const xs = Array.from({ length: 100 }, () => randomArray(7 * d, 'float32') as Float32Array);
    const turns: number[] = [];
    // 100 requests fill the batch at once: one batch, one forward.
    const answers = await Promise.all(xs.map((x) => predictor.predict(x, { last: true }).then((p) => (turns.push(turn), p))));
    ticking = false;
    assert.equal(predictor.stats.batches, 1);
    const distinct = new Set(turns).size;
    assert.ok(distinct >= 3, `100 answers in ${distinct} turn(s) of the event loop (slices of 32: at least 3)`);
    for (const i of [0, 31, 32, 63, 64, 99]) {
      const want = await alone(model, xs[i], 'probabilities', true);
      assertClose(answers[i].values as Float32Array, want.values as Float32Array, { atol: 2e-6, rtol: 1e-5 }, `request ${i}`);
    }
    await predictor.close();
    model.dispose();
  });

  it('serves copies of the weights: refresh() and refreshEvery follow a training run', async () => {
    const model = await ElmanRNN.create({ inputSize: 3, hiddenSize: 16, outputSize: 4, context: ctx, seed: 9 });
    const run = { model, step: 0 };
    const predictor: Predictor = await createPredictor(run, { refreshEvery: 10, maxWaitMs: 0 });
    const x = randomArray(5 * 3, 'float32') as Float32Array;
    const before = await predictor.predict(x, { output: 'raw' });
    // "Train": new weights on the training model.
    ops.scale(model.parameters.W_out, 2, { out: model.parameters.W_out });
    const trained = await alone(model, x, 'raw', false);
    assertClose((await predictor.predict(x, { output: 'raw' })).values as Float32Array, before.values as Float32Array, { atol: 0 }, 'the old copy until a refresh');
    await predictor.refresh();
    assertClose((await predictor.predict(x, { output: 'raw' })).values as Float32Array, trained.values as Float32Array, { atol: 1e-6 }, 'after refresh()');
    assert.equal(predictor.stats.weightsStep, 0);

    // refreshEvery: a batch that finds the run 10 steps ahead starts a copy.
    ops.scale(model.parameters.W_out, 0.5, { out: model.parameters.W_out });
    run.step = 9;
    await predictor.predict(x);
    assert.equal(predictor.stats.refreshes, 2);
    run.step = 10;
    await predictor.predict(x);
    const deadline = Date.now() + 5000;
    while (predictor.stats.refreshes < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.equal(predictor.stats.refreshes, 3);
    assert.equal(predictor.stats.weightsStep, 10);
    assertClose((await predictor.predict(x, { output: 'raw' })).values as Float32Array, before.values as Float32Array, { atol: 1e-6 }, 'after the automatic refresh');
    await predictor.close();
    model.dispose();
  });

  it('setWeights(state, step) serves weights given by value (a training thread\'s posted state); bad states leave the weights', async () => {
    const model = await ElmanRNN.create({ inputSize: 3, hiddenSize: 16, outputSize: 4, context: ctx, seed: 9 });
    const other = await ElmanRNN.create({ inputSize: 3, hiddenSize: 16, outputSize: 4, context: ctx, seed: 10 });
    const predictor = await createPredictor(model, { maxWaitMs: 0 });
    const x = randomArray(5 * 3, 'float32') as Float32Array;
    const before = await predictor.predict(x, { output: 'raw' });
    predictor.setWeights(await other.state(), 1234);
    const got = await predictor.predict(x, { output: 'raw' });
    assertClose(got.values as Float32Array, (await alone(other, x, 'raw', false)).values as Float32Array, { atol: 1e-6 }, "the other model's weights");
    assert.equal(got.weightsStep, 1234);
    assert.equal(predictor.stats.weightsStep, 1234);
    const { W_out: _dropped, ...missing } = await model.state();
    assert.throws(() => predictor.setWeights(missing), (e: Error & { code?: string }) => e instanceof RangeError && /W_out/.test(e.message));
    const own = await model.state();
    assert.throws(() => predictor.setWeights(own, -1), (e: Error & { code?: string }) => e instanceof RangeError && /'step'/.test(e.message));
    assertClose((await predictor.predict(x, { output: 'raw' })).values as Float32Array, got.values as Float32Array, { atol: 0 }, 'unchanged after the refused states');
    assert.notDeepEqual(Array.from(got.values), Array.from(before.values));
    await predictor.close();
    assert.throws(() => predictor.setWeights(own), (e: Error & { code?: string }) => e.code === 'ERR_ORTHORNN_DISPOSED');
    model.dispose();
    other.dispose();
  });

  it('does not wait behind work queued on the training context', async () => {
    const model = await ElmanRNN.create({ inputSize: 3, hiddenSize: 16, outputSize: 4, context: ctx });
    const predictor = await createPredictor(model);
    // Seconds of work on the training context.
    const a = ctx.randn([700, 700]);
    const busy: ReturnType<typeof ops.svd>[] = [];
    const t0 = performance.now();
    for (let i = 0; i < 6; i++) busy.push(ops.svd(a));
    let trainingDone = 0;
    const sync = ctx.sync().then(() => (trainingDone = performance.now() - t0));
    await predictor.predict(new Float32Array(30));
    const answered = performance.now() - t0;
    await sync;
    assert.ok(answered < trainingDone, `the request took ${answered.toFixed(0)} ms, the training context's work ${trainingDone.toFixed(0)} ms`);
    for (const { u, s, vt } of busy) for (const t of [u, s, vt]) t.dispose();
    a.dispose();
    await predictor.close();
    model.dispose();
  });

  it('refuses bad arguments with coded errors naming them', async () => {
    const model = await ElmanRNN.create({ inputSize: 3, hiddenSize: 8, outputSize: 4, context: ctx });
    await assert.rejects(createPredictor(model, { refreshEvery: 5 }), (e: unknown) => code(e) === 'ERR_ORTHORNN_RANGE' && /'options.refreshEvery'/.test((e as Error).message));
    await assert.rejects(createPredictor({} as never), (e: unknown) => code(e) === 'ERR_ORTHORNN_TYPE' && /'source'/.test((e as Error).message));
    await assert.rejects(createPredictor(model, { maxBatch: 0 }), (e: unknown) => code(e) === 'ERR_ORTHORNN_RANGE' && /'options.maxBatch'/.test((e as Error).message));
    await assert.rejects(createPredictor(model, { threads: 0 }), (e: unknown) => code(e) === 'ERR_ORTHORNN_RANGE' && /'options.threads'/.test((e as Error).message));
    const predictor = await createPredictor(model);
    const cases: [Promise<unknown>, string, RegExp][] = [
      [predictor.predict(new Float32Array(4)), 'ERR_ORTHORNN_RANGE', /'x'.*multiple of d = 3/],
      [predictor.predict([[1, 2]]), 'ERR_ORTHORNN_RANGE', /'x\[0\]'/],
      [predictor.predict([[1, 2, 'x']] as never), 'ERR_ORTHORNN_TYPE', /'x\[0\]\[2\]'/],
      [predictor.predict([]), 'ERR_ORTHORNN_RANGE', /'x'/],
      [predictor.predict([[1, 2, Infinity]]), 'ERR_ORTHORNN_RANGE', /'x'.*Infinity/],
      [predictor.predict(new Float64Array([1, 2, 1e39])), 'ERR_ORTHORNN_RANGE', /'x' must be values a float32 can hold.*1e\+39 at index 2/],
      [predictor.predict('abc' as never), 'ERR_ORTHORNN_TYPE', /'x'/],
      [predictor.predict(new Float32Array(3), { output: 'logits' as never }), 'ERR_ORTHORNN_RANGE', /'options.output'/],
    ];
    for (const [p, expected, message] of cases) {
      await assert.rejects(p, (e: unknown) => code(e) === expected && message.test((e as Error).message), `${expected} ${message}`);
    }
    await predictor.close();
    model.dispose();
  });
});
