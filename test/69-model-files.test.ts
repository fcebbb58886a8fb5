/**
 * Model files: `model.save(file)` and `loadModel(file)` round-trip every architecture bit for
 * bit; the file is plain safetensors with the parameter names, the architecture in the metadata
 * and, for svd, the materialised W = U diag(s) Vᵀ; a trainer's checkpoint loads as a model;
 * hostile files are refused with coded DataErrors before anything of the model's size is
 * allocated; `orthornn export --format safetensors` strips a checkpoint to a model file.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exportModel } from '../lib/export/command';
import { Context, DataError, ElmanRNN, LSTM, memoryOf, NumericError, ops } from '../lib/index';
import type { FloatDType, Tensor } from '../lib/index';
import { decodeSafetensors, encodeSafetensors, readSafetensors, type SafetensorsFile } from '../lib/io/safetensors';
import { loadModel, MAX_HIDDEN, MODEL_FORMAT, type LoadedModel } from '../lib/models/files';
import { readCheckpoint } from '../lib/train/checkpoint';
import { resolveConfig } from '../lib/train/config';
import { createModel, train } from '../lib/train/trainer';
import { announceSeed, randomArray, TEST_SEED } from './helpers';

type Spec = { name: string; create: (ctx: Context) => Promise<LoadedModel> };

const SPECS: Spec[] = [
  { name: 'svd, tanh, m = 0.3, learned h0, float32', create: (context) => ElmanRNN.create({ inputSize: 3, hiddenSize: 12, outputSize: 5, recurrent: 'svd', margin: 0.3, spectrumPrior: 0.5, learnH0: true, clipPreactivation: 100, context, seed: 1 }) },
  { name: 'svd, identity, m = 0, float64', create: (context) => ElmanRNN.create({ inputSize: 2, hiddenSize: 7, outputSize: 3, recurrent: 'svd', margin: 0, activation: 'identity', dtype: 'float64', context, seed: 2 }) },
  { name: 'svd, relu, glorot init', create: (context) => ElmanRNN.create({ inputSize: 4, hiddenSize: 9, outputSize: 2, recurrent: 'svd', margin: 1.5, activation: 'relu', init: 'glorot', context, seed: 3 }) },
  { name: 'plain, relu', create: (context) => ElmanRNN.create({ inputSize: 3, hiddenSize: 10, outputSize: 4, recurrent: 'plain', activation: 'relu', context, seed: 4 }) },
  { name: 'penalty, tanh, learned h0, float64', create: (context) => ElmanRNN.create({ inputSize: 5, hiddenSize: 6, outputSize: 3, recurrent: 'penalty', penalty: 0.25, learnH0: true, dtype: 'float64', context, seed: 5 }) },
  { name: 'LSTM, float32', create: (context) => LSTM.create({ inputSize: 3, hiddenSize: 8, outputSize: 4, context, seed: 6 }) },
  { name: 'LSTM, float64', create: (context) => LSTM.create({ inputSize: 2, hiddenSize: 5, outputSize: 3, dtype: 'float64', context, seed: 7 }) },
];

/** Every parameter but U, V (kept orthogonal) and W moved off its initial value, so that nothing passes by accident. */
async function perturb(model: LoadedModel): Promise<void> {
  const state = await model.state();
  for (const [name, values] of Object.entries(state)) {
    if (name === 'U' || name === 'V' || name === 'W') continue;
    const noise = randomArray(values.length, model.dtype);
    for (let i = 0; i < values.length; i++) values[i] += 0.5 * noise[i];
  }
  model.loadState(state);
}

function input<D extends FloatDType>(model: LoadedModel, T: number, B: number, seed: number): Tensor<D> {
  return model.context.randn<D>([T, B, model.inputSize], { dtype: model.dtype as D, seed });
}

async function forwardValues(model: LoadedModel, x: Tensor<FloatDType>): Promise<{ outputs: ArrayLike<number>; finalState: ArrayLike<number> }> {
  const r = model.forward(x);
  try {
    return { outputs: await r.outputs.read(), finalState: await r.finalState.read() };
  } finally {
    for (const t of Object.values(r)) t.dispose();
  }
}

/** The same array, element for element (NaN never passes). */
function assertBitwise(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): void {
  assert.equal(actual.length, expected.length, `${label}: length`);
  for (let i = 0; i < actual.length; i++) if (!Object.is(actual[i], expected[i])) assert.fail(`${label}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
}

function assertRefused(err: unknown, pattern: RegExp): true {
  // Factors that are not orthogonal are NumericErrors (as on resume); the rest DataErrors.
  const numeric = err instanceof NumericError && /is not orthogonal/.test((err as Error).message);
  assert.ok(err instanceof DataError || numeric, `a DataError, got ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
  assert.equal((err as DataError).code, numeric ? 'ERR_ORTHORNN_NUMERIC' : 'ERR_ORTHORNN_DATA');
  assert.match((err as Error).message, pattern);
  return true;
}

describe('69 model files: save, loadModel, checkpoints, hostile files', () => {
  let ctx: Context;
  let dir: string;
  before(() => {
    announceSeed();
    ctx = new Context({ seed: TEST_SEED });
    dir = mkdtempSync(path.join(os.tmpdir(), 'orthornn-69-'));
  });
  after(() => {
    ctx.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const spec of SPECS) {
    it(`round-trips ${spec.name}: same architecture, parameters and forward outputs bit for bit`, async () => {
      const model = await spec.create(ctx);
      await perturb(model);
      const file = path.join(dir, `${spec.name.replace(/\W+/g, '-')}.safetensors`);
      await model.save(file);
      const loaded = await loadModel(file, { context: ctx });
      try {
        assert.equal(loaded.constructor, model.constructor);
        for (const key of ['dtype', 'inputSize', 'hiddenSize', 'outputSize', 'recurrent', 'activation', 'margin', 'penalty', 'spectrumPrior', 'init', 'learnH0', 'clipPreactivation'] as const) {
          assert.deepEqual((loaded as unknown as Record<string, unknown>)[key], (model as unknown as Record<string, unknown>)[key], key);
        }
        const [a, b] = [await model.state(), await loaded.state()];
        assert.deepEqual(Object.keys(b), Object.keys(a));
        for (const name of Object.keys(a)) assertBitwise(b[name], a[name], name);
        for (const [T, B] of [[1, 1], [9, 4]]) {
          const x = input(model, T, B, TEST_SEED + T);
          const [want, got] = [await forwardValues(model, x), await forwardValues(loaded, x)];
          assertBitwise(got.outputs, want.outputs, `outputs (T ${T}, B ${B})`);
          assertBitwise(got.finalState, want.finalState, `final state (T ${T}, B ${B})`);
          x.dispose();
        }
      } finally {
        model.dispose();
        loaded.dispose();
      }
    });
  }

  it('writes plain safetensors: the parameter names and shapes, the architecture as metadata, svd W = U diag(s) Vᵀ marked derived', async () => {
    const model = await ElmanRNN.create({ inputSize: 3, hiddenSize: 16, outputSize: 4, recurrent: 'svd', margin: 0.5, context: ctx, seed: 8 });
    await perturb(model);
    const file = path.join(dir, 'svd.safetensors');
    await model.save(file);
    const { tensors, metadata } = readSafetensors(file);
    assert.deepEqual(Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, t.shape])), { W_in: [16, 3], b: [16], U: [16, 16], V: [16, 16], p: [16], W_out: [4, 16], c: [4], W: [16, 16] });
    assert.equal(metadata.format, MODEL_FORMAT);
    assert.deepEqual(
      { model: metadata.model, recurrent: metadata.recurrent, activation: metadata.activation, margin: metadata.margin, hiddenSize: metadata.hiddenSize, dtype: metadata.dtype },
      { model: 'elman', recurrent: 'svd', activation: 'tanh', margin: '0.5', hiddenSize: '16', dtype: 'float32' },
    );
    assert.deepEqual(Object.keys(JSON.parse(metadata.derived)), ['W']);
    // W from the stored factors, in float64 here: s = 1 + m(2σ(p) − 1).
    const n = 16;
    const [U, V, p, W] = [tensors.U.data, tensors.V.data, tensors.p.data, tensors.W.data];
    let worst = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        let w = 0;
        for (let r = 0; r < n; r++) w += U[i * n + r] * (1 + 0.5 * (2 / (1 + Math.exp(-p[r])) - 1)) * V[j * n + r];
        worst = Math.max(worst, Math.abs(w - W[i * n + j]));
      }
    }
    assert.ok(worst < 1e-5, `|W − U diag(s) Vᵀ| = ${worst}`);
    // The same as the model's own recurrentMatrix(), exactly.
    const w = model.recurrentMatrix();
    assertBitwise(W, await w.read(), 'W');
    w.dispose();
    // No temporary left beside it; saving again replaces the file.
    await model.save(file);
    assert.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), []);
    model.dispose();

    const plain = await ElmanRNN.create({ inputSize: 3, hiddenSize: 4, outputSize: 2, recurrent: 'plain', context: ctx });
    await plain.save(file);
    const stored = readSafetensors(file);
    assert.deepEqual(Object.keys(stored.tensors), ['W_in', 'b', 'W', 'W_out', 'c']);
    assert.equal(stored.metadata.derived, undefined);
    assert.equal(stored.metadata.margin, undefined);
    plain.dispose();

    const lstm = await LSTM.create({ inputSize: 3, hiddenSize: 4, outputSize: 2, context: ctx });
    await lstm.save(file);
    const l = readSafetensors(file);
    assert.deepEqual(Object.keys(l.tensors), ['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0', 'W_out', 'c']);
    assert.deepEqual(l.metadata, { format: MODEL_FORMAT, model: 'lstm', dtype: 'float32', inputSize: '3', hiddenSize: '4', outputSize: '2' });
    lstm.dispose();
  });

  it("loads a trainer's checkpoints (svd, plain, LSTM) as the model that trained", async function () {
    this.timeout(120_000);
    const runs = [
      { model: 'svd' as const, margin: 0.2, learnH0: true },
      { model: 'plain' as const, activation: 'relu' as const },
      { model: 'lstm' as const },
    ];
    for (const options of runs) {
      const out = path.join(dir, `run-${options.model}`);
      await train({ task: 'copy', delay: 4, hidden: 8, batchSize: 4, steps: 6, validEvery: 3, validSize: 8, out, ...options });
      for (const name of ['best.safetensors', 'last.safetensors']) {
        const file = path.join(out, name);
        const ckpt = readCheckpoint(file);
        const config = resolveConfig(ckpt.config, { stored: true });
        const reference = await createModel(config, { inputSize: 10, outputSize: 10 }, ctx);
        reference.loadState(ckpt.parameters);
        const loaded = await loadModel(file, { context: ctx });
        try {
          assert.equal(loaded.constructor, reference.constructor, `${options.model} ${name}`);
          assert.deepEqual([loaded.inputSize, loaded.hiddenSize, loaded.outputSize], [10, 8, 10]);
          if (loaded instanceof ElmanRNN) {
            assert.equal(loaded.recurrent, options.model);
            assert.equal(loaded.learnH0, options.learnH0 ?? false);
            assert.equal(loaded.activation, config.activation);
            if (options.model === 'svd') assert.equal(loaded.margin, 0.2);
          }
          const x = input(loaded, 14, 3, TEST_SEED);
          const [want, got] = [await forwardValues(reference, x), await forwardValues(loaded, x)];
          assertBitwise(got.outputs, want.outputs, `${options.model} ${name} outputs`);
          x.dispose();
          // Saved as a model file, it loads again: the optimiser state is gone.
          const file2 = path.join(out, `${name}.model.safetensors`);
          await loaded.save(file2);
          assert.ok(!Object.keys(readSafetensors(file2).tensors).some((t) => t.startsWith('optimizer.')));
          const again = await loadModel(file2, { context: ctx });
          const y = input(loaded, 5, 2, TEST_SEED + 1);
          assertBitwise((await forwardValues(again, y)).outputs, (await forwardValues(loaded, y)).outputs, 'reloaded');
          y.dispose();
          again.dispose();
        } finally {
          reference.dispose();
          loaded.dispose();
        }
      }
    }
  });

  it('export --format safetensors turns a run folder into a model file beside it', async () => {
    const out = path.join(dir, 'run-svd');
    const written = await exportModel(out, { format: 'safetensors' });
    assert.equal(written, path.join(out, 'model.safetensors'));
    const model = await loadModel(written, { context: ctx });
    assert.ok(model instanceof ElmanRNN && model.recurrent === 'svd');
    model.dispose();
    const fromFile = await exportModel(path.join(out, 'last.safetensors'), { format: 'safetensors' });
    assert.equal(fromFile, path.join(out, 'last.model.safetensors'));
    await assert.rejects(exportModel(out, { format: 'pt' }), (e) => e instanceof RangeError && /'format' must be 'onnx' or 'safetensors'/.test(e.message));
    await assert.rejects(exportModel(path.join(dir, 'nowhere'), { format: 'onnx' }), (e) => assertRefused(e, /does not exist/));
    await assert.rejects(exportModel(written, { format: 'safetensors', out: written }), (e) => e instanceof RangeError && /another file/.test(e.message));
  });

  describe('refuses hostile files with coded DataErrors, allocating nothing', () => {
    let svd: SafetensorsFile;
    let lstm: SafetensorsFile;
    let checkpoint: SafetensorsFile;
    before(async () => {
      const a = await ElmanRNN.create({ inputSize: 3, hiddenSize: 6, outputSize: 4, recurrent: 'svd', margin: 0.1, learnH0: true, context: ctx, seed: 9 });
      await a.save(path.join(dir, 'good-svd.safetensors'));
      a.dispose();
      const b = await LSTM.create({ inputSize: 3, hiddenSize: 6, outputSize: 4, context: ctx });
      await b.save(path.join(dir, 'good-lstm.safetensors'));
      b.dispose();
      svd = readSafetensors(path.join(dir, 'good-svd.safetensors'));
      lstm = readSafetensors(path.join(dir, 'good-lstm.safetensors'));
      checkpoint = readSafetensors(path.join(dir, 'run-svd', 'last.safetensors'));
    });

    /** `base` changed by `edit` (on a deep copy), written and loaded: must be refused matching `pattern`. */
    async function refused(base: SafetensorsFile, edit: (f: SafetensorsFile) => void, pattern: RegExp): Promise<void> {
      const copy = decodeSafetensors(encodeSafetensors(base));
      edit(copy);
      const file = path.join(dir, 'hostile.safetensors');
      writeFileSync(file, encodeSafetensors(copy));
      const before = memoryOf('cpu').tensors;
      await assert.rejects(loadModel(file, { context: ctx }), (e) => assertRefused(e, pattern));
      // At most as many: a collection may free an earlier test's tensors meanwhile.
      assert.ok(memoryOf('cpu').tensors <= before, 'tensors left allocated by a refused load');
    }

    it('metadata: unknown kinds, missing or malformed values, bounds, keys of another architecture', async () => {
      const meta = (key: string, value: string | undefined) => (f: SafetensorsFile) => {
        if (value === undefined) delete f.metadata[key];
        else f.metadata[key] = value;
      };
      await refused(svd, meta('format', 'pt'), /neither an orthornn model file nor a checkpoint \(metadata format "pt"/);
      await refused(svd, meta('format', undefined), /metadata format missing/);
      await refused(svd, meta('model', 'gru'), /metadata 'model' must be one of 'elman', 'lstm', got "gru"/);
      await refused(svd, meta('model', undefined), /metadata 'model' must be one of .*, got nothing/);
      await refused(svd, meta('recurrent', 'cayley'), /metadata 'recurrent' must be one of 'svd', 'plain', 'penalty'/);
      await refused(svd, meta('activation', 'gelu'), /metadata 'activation'/);
      await refused(svd, meta('dtype', 'float16'), /metadata 'dtype'/);
      await refused(svd, meta('init', '__proto__'), /metadata 'init'/);
      await refused(svd, meta('learnH0', 'yes'), /metadata 'learnH0' must be 'true' or 'false'/);
      for (const bad of ['3.5', '-3', '0', '1e1', '0x3', ' 3', '', '99999999999999999999']) {
        await refused(svd, meta('inputSize', bad), /metadata 'inputSize' must be an integer in \[1, 1048576\]/);
      }
      await refused(svd, meta('hiddenSize', String(MAX_HIDDEN + 1)), /metadata 'hiddenSize' must be an integer in \[1, 8192\], got "8193"/);
      for (const bad of ['NaN', 'Infinity', '-0.1', '1e9', '0.1.2', '']) await refused(svd, meta('margin', bad), /metadata 'margin' must be a number in \[0, 1000\]/);
      await refused(svd, meta('margin', undefined), /metadata 'margin' must be a number/);
      await refused(svd, meta('clipPreactivation', '1e10'), /metadata 'clipPreactivation'/);
      await refused(svd, meta('derived', '{"W":"x","U":"y"}'), /metadata 'derived' must be a JSON object whose only key is 'W'/);
      await refused(svd, meta('derived', 'not json'), /metadata 'derived'/);
      await refused(svd, meta('penalty', '1'), /metadata 'penalty' is given only with recurrent 'penalty'/);
      await refused(lstm, meta('activation', 'tanh'), /metadata 'activation' is given only for model 'elman'/);
      await refused(svd, (f) => Object.assign(f.metadata, { recurrent: 'plain' }), /metadata 'margin' is given only with recurrent 'svd'/);
    });

    it('tensors: sizes against the metadata, dtypes, names, NaN/Inf', async () => {
      await refused(svd, (f) => (f.metadata.hiddenSize = '7'), /tensor 'W_in' has shape \[6, 3\], expected \[7, 3\]/);
      await refused(svd, (f) => (f.metadata.inputSize = '4'), /tensor 'W_in' has shape \[6, 3\], expected \[6, 4\]/);
      await refused(svd, (f) => (f.metadata.outputSize = '5'), /tensor 'W_out' has shape \[4, 6\], expected \[5, 6\]/);
      await refused(svd, (f) => (f.tensors.p = { data: new Float32Array(6), shape: [2, 3] }), /tensor 'p' has shape \[2, 3\], expected \[6\]/);
      await refused(svd, (f) => (f.tensors.b = { data: new Float64Array(6), shape: [6] }), /tensor 'b' is F64, but the metadata says dtype float32/);
      await refused(svd, (f) => (f.tensors.b = { data: new Int32Array(6), shape: [6] }), /tensor 'b' is I32/);
      await refused(svd, (f) => delete f.tensors.h0, /parameter 'h0' \[6\] is missing/);
      await refused(svd, (f) => (f.tensors.extra = { data: new Float32Array(1), shape: [1] }), /unknown tensor "extra"/);
      await refused(svd, (f) => (f.tensors['optimizer.U.square_avg'] = { data: new Float32Array(36), shape: [6, 6] }), /unknown tensor "optimizer.U.square_avg"/);
      await refused(svd, (f) => (f.tensors.W_out.data[5] = NaN), /tensor 'W_out' holds NaN at index 5/);
      await refused(svd, (f) => (f.tensors.W.data[0] = -Infinity), /tensor 'W' holds -Infinity at index 0/);
      await refused(lstm, (f) => (f.tensors.weight_hh_l0 = { data: new Float32Array(36), shape: [6, 6] }), /tensor 'weight_hh_l0' has shape \[6, 6\], expected \[24, 6\]/);
    });

    it('U and V must be orthogonal to 1e-2, and a stored W must be U diag(s) Vᵀ', async () => {
      await refused(svd, (f) => f.tensors.U.data.forEach((v, i, a) => (a[i] = 1.01 * v)), /the factor U is not orthogonal: ‖UᵀU − I‖_max = 0.0201 > 0.01/);
      await refused(svd, (f) => (f.tensors.V.data[7] += 0.5), /the factor V is not orthogonal/);
      await refused(svd, (f) => (f.tensors.W.data[8] += 0.01), /the stored W is not U diag\(s\) Vᵀ of the stored factors \(\|ΔW\| = 0.0100 at \[1, 2\]\); W is derived/);
      // Without the derived W, the factors alone make the model.
      const copy = decodeSafetensors(encodeSafetensors(svd));
      delete copy.tensors.W;
      const file = path.join(dir, 'no-w.safetensors');
      writeFileSync(file, encodeSafetensors(copy));
      const model = await loadModel(file, { context: ctx });
      assert.ok(model instanceof ElmanRNN && model.recurrent === 'svd');
      const error = await ops.orthogonalityError(model.parametersByName.U).item();
      assert.ok(error < 1e-5);
      model.dispose();
    });

    it('checkpoints: the config checked as training checks it, the tensors against it', async () => {
      const config = (edit: (c: Record<string, unknown>) => void) => (f: SafetensorsFile) => {
        const c = JSON.parse(f.metadata.config);
        edit(c);
        f.metadata.config = JSON.stringify(c);
      };
      await refused(checkpoint, config((c) => (c.model = 'gru')), /holds a config that orthornn refuses: trainConfig: argument 'model' must be 'svd', 'plain', 'penalty', 'lstm', got gru/);
      await refused(checkpoint, config((c) => (c.hidden = 1e6)), /holds a config that orthornn refuses: .*'hidden' must be ≤ 8192/);
      await refused(checkpoint, config((c) => (c.hidden = 9)), /parameter 'W_in' has shape \[8, 10\] \(80 values\), expected \[9, 10\]/);
      await refused(checkpoint, config((c) => (c.margin = -1)), /'margin' must be ≥ 0/);
      await refused(checkpoint, config((c) => (c.learnH0 = false)), /unknown parameter "h0"/);
      await refused(checkpoint, (f) => (f.metadata.config = '{"model":'), /checkpoint metadata 'config' is not JSON/);
      await refused(checkpoint, (f) => delete f.tensors.W_in, /parameter 'W_in' is missing/);
      await refused(checkpoint, (f) => (f.tensors.W_in = { data: new Float32Array(8 * 2 * 10), shape: [8, 2, 10] }), /parameter 'W_in' has shape \[8, 2, 10\], which gives no size/);
      await refused(checkpoint, (f) => (f.tensors.c.data[0] = NaN), /tensor 'c' holds NaN/);
      await refused(checkpoint, (f) => f.tensors.U.data.forEach((v, i, a) => (a[i] = 2 * v)), /the factor U is not orthogonal/);
    });

    it('files that are not safetensors at all, and wrong arguments', async () => {
      const junk = path.join(dir, 'junk.safetensors');
      writeFileSync(junk, Buffer.from('definitely not a model'));
      await assert.rejects(loadModel(junk), (e) => assertRefused(e, /is not a valid safetensors file/));
      await assert.rejects(loadModel(path.join(dir, 'missing.safetensors')), (e) => assertRefused(e, /cannot read .*ENOENT/));
      await assert.rejects(loadModel(dir), (e) => assertRefused(e, /not a regular file/));
      await assert.rejects(loadModel(42 as unknown as string), (e) => e instanceof TypeError && /'file' must be a non-empty string/.test(e.message));
      const good = path.join(dir, 'good-svd.safetensors');
      await assert.rejects(loadModel(good, { context: ctx, device: 'cpu' }), (e) => e instanceof RangeError && /'options.device' must be omitted when a context is given/.test(e.message));
      await assert.rejects(loadModel(good, { dtype: 'float64' } as object), (e) => e instanceof RangeError);
      const onDevice = await loadModel(good, { device: 'cpu' });
      assert.equal(onDevice.context.device, 'cpu');
      onDevice.dispose();
      const model = await ElmanRNN.create({ inputSize: 1, hiddenSize: 2, outputSize: 1, context: ctx });
      await assert.rejects(model.save(''), (e) => e instanceof TypeError);
      model.dispose();
      await assert.rejects(model.save(good), (e) => (e as { code?: string }).code === 'ERR_ORTHORNN_DISPOSED');
    });
  });
});
