/**
 * ONNX export: onnxruntime runs the exported model and agrees with model.forward to 1e-4 on
 * random float32 batches, for every Elman parameterisation and activation and for the LSTM
 * (PyTorch's gate order reordered to ONNX's), over several sequence lengths and batch sizes,
 * with and without a given initial state; the file declares what the options say; a run
 * folder exports from the command's entry point.
 *
 * onnxruntime-node is a devDependency whose package ships its CPU binaries; where it cannot
 * be loaded, these tests say why and are skipped.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as Ort from 'onnxruntime-node';
import { exportModel } from '../lib/export/command';
import { encodeOnnx, exportOnnx } from '../lib/export/onnx';
import { onnxType } from '../lib/export/onnx-schema';
import { Context, ElmanRNN, LSTM } from '../lib/index';
import type { FloatDType, Tensor } from '../lib/index';
import { loadModel, type LoadedModel } from '../lib/models/files';
import { train } from '../lib/train/trainer';
import { announceSeed, assertClose, randomArray, TEST_SEED } from './helpers';

let ort: typeof Ort | undefined;
let unavailable = '';
try {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  ort = require('onnxruntime-node') as typeof Ort;
} catch (err) {
  unavailable = `onnxruntime-node cannot be loaded (${(err as Error).message.split('\n')[0]}); run npm install`;
}

const TOLERANCE = { atol: 1e-4, rtol: 1e-4 };

type Case = { name: string; create: (context: Context) => Promise<LoadedModel> };

const CASES: Case[] = [
  { name: 'svd, tanh, m = 0.1', create: (context) => ElmanRNN.create({ inputSize: 5, hiddenSize: 16, outputSize: 6, recurrent: 'svd', margin: 0.1, context, seed: 1 }) },
  { name: 'svd, tanh, m = 0.01, n = 128', create: (context) => ElmanRNN.create({ inputSize: 10, hiddenSize: 128, outputSize: 10, recurrent: 'svd', margin: 0.01, context, seed: 11 }) },
  { name: 'svd, relu, m = 1, learned h0', create: (context) => ElmanRNN.create({ inputSize: 3, hiddenSize: 12, outputSize: 4, recurrent: 'svd', margin: 1, activation: 'relu', learnH0: true, context, seed: 2 }) },
  { name: 'svd, identity, m = 0', create: (context) => ElmanRNN.create({ inputSize: 4, hiddenSize: 10, outputSize: 3, recurrent: 'svd', margin: 0, activation: 'identity', context, seed: 3 }) },
  { name: 'plain, tanh, glorot', create: (context) => ElmanRNN.create({ inputSize: 2, hiddenSize: 20, outputSize: 5, recurrent: 'plain', init: 'glorot', context, seed: 4 }) },
  { name: 'plain, identity', create: (context) => ElmanRNN.create({ inputSize: 3, hiddenSize: 8, outputSize: 2, recurrent: 'plain', activation: 'identity', context, seed: 5 }) },
  { name: 'penalty, relu, learned h0', create: (context) => ElmanRNN.create({ inputSize: 6, hiddenSize: 9, outputSize: 7, recurrent: 'penalty', penalty: 0.5, activation: 'relu', learnH0: true, context, seed: 6 }) },
  { name: 'svd, tanh, float64 (exported as float32)', create: (context) => ElmanRNN.create({ inputSize: 3, hiddenSize: 11, outputSize: 4, recurrent: 'svd', margin: 0.5, dtype: 'float64', context, seed: 7 }) },
  { name: 'LSTM', create: (context) => LSTM.create({ inputSize: 4, hiddenSize: 13, outputSize: 5, context, seed: 8 }) },
  { name: 'LSTM, float64', create: (context) => LSTM.create({ inputSize: 2, hiddenSize: 6, outputSize: 3, dtype: 'float64', context, seed: 9 }) },
];

/** Biases, spectra and h0 moved off their zero initialisation, so that each has to be exported right. */
async function perturb(model: LoadedModel): Promise<void> {
  const state = await model.state();
  for (const name of ['b', 'p', 'h0', 'c', 'bias_ih_l0', 'bias_hh_l0']) {
    const values = state[name];
    if (!values) continue;
    const noise = randomArray(values.length, model.dtype);
    for (let i = 0; i < values.length; i++) values[i] += 0.5 * noise[i];
  }
  model.loadState(state);
}

function softmaxRows(y: ArrayLike<number>, k: number): Float64Array {
  const out = new Float64Array(y.length);
  for (let r = 0; r < y.length; r += k) {
    let max = -Infinity, sum = 0;
    for (let j = 0; j < k; j++) max = Math.max(max, y[r + j]);
    for (let j = 0; j < k; j++) sum += (out[r + j] = Math.exp(y[r + j] - max));
    for (let j = 0; j < k; j++) out[r + j] /= sum;
  }
  return out;
}

describe('95 ONNX export: onnxruntime agrees with model.forward', () => {
  let ctx: Context;
  let dir: string;
  const quiet = { logSeverityLevel: 3 as const };
  before(function () {
    if (!ort) {
      console.log(`      skipped: ${unavailable}`);
      this.skip();
    }
    announceSeed();
    ctx = new Context({ seed: TEST_SEED });
    dir = mkdtempSync(path.join(os.tmpdir(), 'orthornn-95-'));
  });
  after(() => {
    ctx?.dispose();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const c of CASES) {
    it(`${c.name}: y, probabilities and final states for several T and B, with and without an initial state`, async () => {
      const model = await c.create(ctx);
      await perturb(model);
      const lstm = model instanceof LSTM;
      // Without state inputs (the default), and with them.
      const sessions: Ort.InferenceSession[] = [];
      for (const initialState of [false, true]) {
        const file = path.join(dir, `model-${initialState}.onnx`);
        await exportOnnx(model, file, { initialState });
        const session = await ort!.InferenceSession.create(file, quiet);
        const states = lstm ? ['initial_state', 'initial_cell_state'] : ['initial_state'];
        assert.deepEqual([...session.inputNames], initialState ? ['x', ...states] : ['x']);
        assert.deepEqual([...session.outputNames], lstm ? ['y', 'probabilities', 'final_state', 'final_cell_state'] : ['y', 'probabilities', 'final_state']);
        sessions.push(session);
      }
      const [d, n, k] = [model.inputSize, model.hiddenSize, model.outputSize];
      for (const [T, B] of [[1, 1], [7, 3], [23, 8]]) {
        const xs = randomArray(T * B * d, 'float32') as Float32Array;
        const x = ctx.tensor(model.dtype === 'float64' ? Float64Array.from(xs) : xs, [T, B, d]) as Tensor<FloatDType>;
        for (const withState of [false, true]) {
          const h0 = randomArray(B * n, 'float32') as Float32Array;
          const c0 = randomArray(B * n, 'float32') as Float32Array;
          const asModel = (a: Float32Array) => ctx.tensor(model.dtype === 'float64' ? Float64Array.from(a) : a, [B, n]) as Tensor<FloatDType>;
          const states: { initialState?: Tensor<FloatDType>; initialCellState?: Tensor<FloatDType> } = withState ? { initialState: asModel(h0), ...(lstm ? { initialCellState: asModel(c0) } : {}) } : {};
          const want = (model as LSTM<FloatDType>).forward(x, states);
          const feeds: Record<string, Ort.Tensor> = { x: new ort!.Tensor('float32', xs, [T, B, d]) };
          if (withState) {
            feeds.initial_state = new ort!.Tensor('float32', h0, [B, n]);
            if (lstm) feeds.initial_cell_state = new ort!.Tensor('float32', c0, [B, n]);
          }
          const got = await sessions[withState ? 1 : 0].run(feeds);
          const label = `T ${T}, B ${B}${withState ? ', given initial state' : ''}`;
          assert.deepEqual(got.y.dims, [T, B, k]);
          const y = await want.outputs.read();
          assertClose(got.y.data as Float32Array, y, TOLERANCE, `y (${label})`);
          assertClose(got.probabilities.data as Float32Array, softmaxRows(y, k), TOLERANCE, `probabilities (${label})`);
          assert.deepEqual(got.final_state.dims, [B, n]);
          assertClose(got.final_state.data as Float32Array, await want.finalState.read(), TOLERANCE, `final state (${label})`);
          if (lstm) assertClose(got.final_cell_state.data as Float32Array, await want.finalCellState!.read(), TOLERANCE, `final cell state (${label})`);
          for (const t of [...Object.values(want), ...Object.values(states)]) t?.dispose();
        }
        x.dispose();
      }
      for (const session of sessions) await session.release();
      model.dispose();
    });
  }

  it('declares what the options say: fixed T and B, the opset, state inputs, no probabilities; the architecture in metadata_props', async () => {
    const model = await ElmanRNN.create({ inputSize: 3, hiddenSize: 8, outputSize: 4, recurrent: 'svd', margin: 0.2, activation: 'relu', context: ctx, seed: 10 });
    await perturb(model);
    const ModelProto = onnxType('ModelProto');
    const decode = async (options: Parameters<typeof encodeOnnx>[1]) => ModelProto.toObject(ModelProto.decode(await encodeOnnx(model, options)), { longs: Number }) as {
      ir_version: number;
      opset_import: { version: number }[];
      graph: { input: { name: string; type: { tensor_type: { shape: { dim: { dim_value?: number; dim_param?: string }[] } } } }[]; output: { name: string }[]; node: { op_type: string }[] };
      metadata_props: { key: string; value: string }[];
    };
    const dflt = await decode({});
    assert.equal(dflt.opset_import[0].version, 17);
    assert.equal(dflt.ir_version, 8);
    assert.deepEqual(dflt.graph.input[0].type.tensor_type.shape.dim, [{ dim_param: 'sequence' }, { dim_param: 'batch' }, { dim_value: 3 }]);
    assert.ok(dflt.graph.node.some((node) => node.op_type === 'RNN'));
    const arch = JSON.parse(dflt.metadata_props.find((p) => p.key === 'orthornn.architecture')!.value);
    assert.deepEqual([arch.model, arch.elman.recurrent, arch.elman.activation, arch.elman.margin], ['elman', 'svd', 'relu', 0.2]);

    const fixed = await decode({ sequenceLength: 6, batchSize: 2, opset: 13, probabilities: false, initialState: true });
    assert.equal(fixed.opset_import[0].version, 13);
    assert.deepEqual(fixed.graph.input.map((i) => i.name), ['x', 'initial_state']);
    assert.deepEqual(fixed.graph.input[0].type.tensor_type.shape.dim, [{ dim_value: 6 }, { dim_value: 2 }, { dim_value: 3 }]);
    assert.deepEqual(fixed.graph.input[1].type.tensor_type.shape.dim, [{ dim_value: 2 }, { dim_value: 8 }]);
    assert.deepEqual(fixed.graph.output.map((o) => o.name), ['y', 'final_state']);

    // Every opset from 13 to 17 runs; a fixed shape refuses another.
    const xs = randomArray(6 * 2 * 3, 'float32') as Float32Array;
    const x = ctx.tensor(xs, [6, 2, 3]);
    const want = model.forward(x);
    const y = await want.outputs.read();
    for (const opset of [13, 14, 15, 16, 17]) {
      const file = path.join(dir, `opset-${opset}.onnx`);
      await exportOnnx(model, file, { opset, sequenceLength: 6, batchSize: 2 });
      const session = await ort!.InferenceSession.create(file, quiet);
      assert.deepEqual([...session.inputNames], ['x']);
      const got = await session.run({ x: new ort!.Tensor('float32', xs, [6, 2, 3]) });
      assertClose(got.y.data as Float32Array, y, TOLERANCE, `opset ${opset}`);
      await assert.rejects(session.run({ x: new ort!.Tensor('float32', xs.subarray(0, 5 * 2 * 3), [5, 2, 3]) }), /dimension|shape/i);
      await session.release();
    }
    for (const t of [x, want.outputs, want.finalState]) t.dispose();

    for (const [options, pattern] of [
      [{ opset: 12 }, /'options.opset' must be an integer in \[13, 17\]/],
      [{ sequenceLength: 0 }, /'options.sequenceLength' must be an integer in \[1, /],
      [{ batchSize: 'any' }, /'options.batchSize'/],
      [{ probabilities: 1 }, /'options.probabilities'/],
      [{ layout: 1 }, /options/],
    ] as const) {
      await assert.rejects(encodeOnnx(model, options as object), (e) => (e instanceof RangeError || e instanceof TypeError) && pattern.test(e.message));
    }
    await assert.rejects(exportOnnx(model, ''), TypeError);
    await assert.rejects(encodeOnnx({} as LoadedModel), TypeError);
    model.dispose();
  });

  it('export --format onnx writes a run folder’s best model as <run>/model.onnx', async function () {
    this.timeout(120_000);
    const out = path.join(dir, 'run');
    await train({ task: 'copy', delay: 4, hidden: 8, batchSize: 4, steps: 6, validEvery: 3, validSize: 8, out, model: 'svd', margin: 0.3 });
    const written = await exportModel(out, { format: 'onnx' });
    assert.equal(written, path.join(out, 'model.onnx'));
    const session = await ort!.InferenceSession.create(readFileSync(written), quiet);
    const xs = randomArray(25 * 2 * 10, 'float32') as Float32Array;
    const got = await session.run({ x: new ort!.Tensor('float32', xs, [25, 2, 10]) });
    assert.deepEqual(got.y.dims, [25, 2, 10]);
    const model = await loadModel(path.join(out, 'best.safetensors'), { context: ctx });
    const x = ctx.tensor(xs, [25, 2, 10]) as Tensor<FloatDType>;
    const want = model.forward(x);
    assertClose(got.y.data as Float32Array, await want.outputs.read(), TOLERANCE, 'exported run');
    for (const t of [x, want.outputs, want.finalState]) t.dispose();
    model.dispose();
    await session.release();
    const other = await exportModel(path.join(out, 'last.safetensors'), { format: 'onnx', out: path.join(dir, 'last.onnx') });
    assert.equal(other, path.join(dir, 'last.onnx'));
  });
});
