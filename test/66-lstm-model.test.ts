import assert from 'node:assert/strict';
import { Context, ElmanRNN, LSTM, ops } from '../lib/index';
import type { Tensor } from '../lib/index';
import { announceSeed, randomArray, TEST_SEED, availableBackends } from './helpers';

for (const device of availableBackends()) describe(`66 LSTM model on ${device}: PyTorch names, initialisation, training through the model API`, () => {
  let ctx: Context;
  before(() => {
    announceSeed();
    ctx = new Context({ device, seed: TEST_SEED });
  });
  after(() => ctx.dispose());

  it('has nn.LSTM parameter names and shapes, initialised U(±1/√n) like PyTorch', async () => {
    const model = await LSTM.create({ inputSize: 3, hiddenSize: 16, outputSize: 5, context: ctx, seed: 2 });
    const shapes = Object.fromEntries(Object.entries(model.parameters).map(([k, t]) => [k, [...t.shape]]));
    assert.deepEqual(shapes, { weight_ih_l0: [64, 3], weight_hh_l0: [64, 16], bias_ih_l0: [64], bias_hh_l0: [64], W_out: [5, 16], c: [5] });
    const st = await model.state();
    for (const name of ['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0']) {
      const v = st[name];
      assert.ok(v.every((x) => Math.abs(x) <= 0.25), `${name} within ±1/√16`);
      assert.ok(Math.max(...Array.from(v, Math.abs)) > 0.2, `${name} spans the range`);
    }
    model.dispose();
  });

  it("init 'paper': each gate's recurrent block orthogonal, Glorot input weights, biases 0 but the forget gate's 1", async () => {
    const n = 8, d = 3;
    const model = await LSTM.create({ inputSize: d, hiddenSize: n, outputSize: 2, dtype: 'float64', context: ctx, seed: 4, init: 'paper' });
    const st = await model.state();
    const W = st.weight_hh_l0;
    for (let gate = 0; gate < 4; gate++) {
      for (let a = 0; a < n; a++) {
        for (let b = 0; b < n; b++) {
          let dot = 0; // rows a and b of the gate's block
          for (let k = 0; k < n; k++) dot += W[(gate * n + a) * n + k] * W[(gate * n + b) * n + k];
          assert.ok(Math.abs(dot - (a === b ? 1 : 0)) < 1e-12, `gate ${gate}: rows ${a}, ${b}`);
        }
      }
    }
    const bias = Array.from(st.bias_ih_l0);
    assert.deepEqual(bias, [...Array(n).fill(0), ...Array(n).fill(1), ...Array(2 * n).fill(0)]);
    assert.ok(st.bias_hh_l0.every((x) => x === 0));
    const a = Math.sqrt(6 / (4 * n + d));
    assert.ok(st.weight_ih_l0.every((x) => Math.abs(x) <= a) && st.weight_ih_l0.some((x) => Math.abs(x) > a / 2), 'Glorot-uniform input weights');
    await assert.rejects(LSTM.create({ inputSize: 1, hiddenSize: 2, outputSize: 2, context: ctx, init: 'glorot' as never }), /'init' must be 'pytorch' or 'paper'/);
    model.dispose();
  });

  it('forward returns outputs and both final states; a given initial state changes them', async () => {
    const model = await LSTM.create({ inputSize: 2, hiddenSize: 6, outputSize: 3, dtype: 'float64', context: ctx });
    const x = ctx.tensor(randomArray(5 * 4 * 2) as Float64Array, [5, 4, 2]);
    const a = model.forward(x);
    assert.deepEqual([...a.outputs.shape, ...a.finalState.shape, ...a.finalCellState.shape], [5, 4, 3, 4, 6, 4, 6]);
    const h0 = ctx.tensor(randomArray(24) as Float64Array, [4, 6]);
    const b = model.forward(x, { initialState: h0, initialCellState: h0 });
    assert.notDeepEqual(await a.finalState.read(), await b.finalState.read());
    // Running the second half from the first half's states reproduces the full run.
    const X = await x.read();
    const first = model.forward(ctx.tensor(X.slice(0, 3 * 8), [3, 4, 2]));
    const second = model.forward(ctx.tensor(X.slice(3 * 8), [2, 4, 2]), { initialState: first.finalState, initialCellState: first.finalCellState });
    const full = await a.outputs.read();
    const tail = await second.outputs.read();
    for (let i = 0; i < tail.length; i++) assert.ok(Math.abs(tail[i] - full[3 * 12 + i]) < 1e-12);
    model.dispose();
  });

  it('learns: SGD on a tiny sequence task lowers the loss, and the state gradients come back', async () => {
    const model = await LSTM.create({ inputSize: 2, hiddenSize: 12, outputSize: 2, context: ctx, seed: 4 });
    const [T, B] = [6, 8];
    const X = new Float32Array(T * B * 2);
    const targets = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      const cls = b % 2;
      targets[b] = cls;
      X[b * 2 + cls] = 1; // the class is shown at the first step only: it must be remembered
    }
    const batch = { x: ctx.tensor(X, [T, B, 2]), targets: ctx.tensor(targets, [B]), score: 'last' as const };
    const first = (await model.lossAndGradients(batch)).loss;
    let last = first;
    for (let i = 0; i < 150; i++) {
      const { loss, gradients } = await model.lossAndGradients(batch);
      last = loss;
      for (const [name, g] of Object.entries(gradients)) ops.axpby(-0.5, g, 1, model.parametersByName[name], { out: model.parametersByName[name] });
    }
    assert.ok(last < 0.5 * first, `loss ${first} → ${last}`);
    const h0 = ctx.zeros([B, 12]) as Tensor<'float32'>;
    const r = await model.lossAndGradients({ ...batch, initialState: h0, initialCellState: h0 });
    assert.deepEqual([...r.initialStateGradient!.shape, ...r.initialCellStateGradient!.shape], [B, 12, B, 12]);
    assert.equal(r.hiddenGradientNorms.length, T);
    model.dispose();
  });

  it('an initial cell state is refused by an Elman model; unknown LSTM options and frame gradients are refused', async () => {
    const elman = await ElmanRNN.create({ inputSize: 2, hiddenSize: 4, outputSize: 2, context: ctx });
    const x = ctx.zeros([3, 2, 2]);
    const targets = ctx.zeros([3, 2], { dtype: 'int32' });
    await assert.rejects(elman.lossAndGradients({ x, targets, initialCellState: ctx.zeros([2, 4]) }), /initialCellState.*only to an LSTM/);
    await assert.rejects(LSTM.create({ inputSize: 2, hiddenSize: 4, outputSize: 2, margin: 0.1 } as never), /unknown option 'margin'/);
    const lstm = await LSTM.create({ inputSize: 2, hiddenSize: 4, outputSize: 2, context: ctx });
    await assert.rejects(lstm.lossAndGradients({ x, targets }, { frameGradients: true }), /frameGradients.*only for an ElmanRNN/);
    assert.ok(Number.isFinite((await lstm.lossAndGradients({ x, targets }, { frameGradients: false })).loss));
    lstm.dispose();
    elman.dispose();
  });
});
