import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Context, createPredictor, modelOf, OrthornnError } from '../lib/index';
import { BackgroundTraining, train, trainInBackground, type Progress, type RunRecord, type TrainResult } from '../lib/train/index';
import { createSource } from './fixtures/sign-of-sum-source';
import { announceSeed, assertClose, randomArray, TEST_SEED } from './helpers';

function code(err: unknown): string | undefined {
  return (err as { code?: string }).code;
}

/** A copy-task run small enough for seconds. */
const copyRun = { task: 'copy' as const, delay: 10, hidden: 24, batchSize: 16, steps: 120, validEvery: 40, logEvery: 20, seed: 3 };

/** The same run on this thread, on a context of one thread like the background run's. */
async function inThread(config: object, extra: object = {}): Promise<TrainResult> {
  const context = new Context({ threads: 1 });
  try {
    return await train(config, {}, { context, runFolder: false, ...extra });
  } finally {
    context.dispose();
  }
}

describe('91 training on a worker thread: trainInBackground, weights posted to a predictor, stop and resume', function () {
  this.timeout(300_000);
  let tmp: string;
  before(() => {
    announceSeed();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-background-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('trains exactly as the same run on this thread, posting weights every weightsEvery steps and every record', async () => {
    const out = path.join(tmp, 'copy');
    const training = trainInBackground({ ...copyRun, out }, { weightsEvery: 30 });
    assert.ok(training instanceof BackgroundTraining);
    const posted: number[] = [];
    const records: RunRecord[] = [];
    training.on('weights', (_state, step) => posted.push(step));
    training.on('record', (r) => records.push(r));
    const start = await training.ready;
    assert.equal(start.runDir, out);
    assert.equal(start.plannedSteps, 120);
    assert.equal(start.step, 0);
    assert.equal(start.device, 'cpu');
    assert.equal(training.device, 'cpu');
    assert.deepEqual(start.architecture, { model: 'elman', dtype: 'float32', inputSize: 10, hiddenSize: 24, outputSize: 10, elman: start.architecture.elman });
    const result = await training.result;
    const alone = await inThread(copyRun);
    assert.equal(result.steps, 120);
    assert.equal(result.interrupted, false);
    assert.equal(result.test!.loss, alone.test!.loss, 'the test loss, bit for bit');
    assert.equal(result.best!.loss, alone.best!.loss);
    assert.deepEqual(posted, [0, 30, 60, 90, 120, 120], 'at the start, every 30 steps, and at the end');
    assert.equal(training.step, 120);
    assert.ok(Number.isFinite(training.loss));
    // The records are the run folder's metrics, line for line.
    const lines = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(records, lines);
    assert.ok(existsSync(path.join(out, 'last.safetensors')));
  });

  it('a predictor follows the posted weights; stop() ends after the step in progress with a checkpoint, and resuming ends bit for bit as the whole run', async () => {
    const whole = await inThread({ ...copyRun, steps: 90 });
    const out = path.join(tmp, 'stopped');
    const training = trainInBackground({ ...copyRun, steps: 90, out }, { weightsEvery: 10 });
    await training.ready;
    const predictor = await createPredictor(training, { maxWaitMs: 0 });
    const x = randomArray(21 * 10, 'float32') as Float32Array;
    const first = await predictor.predict(x, { last: true });
    assert.equal(typeof first.weightsStep, 'number');
    // Stop once the run is past step 25: per-step progress is posted while someone listens.
    const steps: number[] = [];
    const stopping = new Promise<TrainResult>((resolve) => {
      const listener = (p: Progress) => {
        steps.push(p.step);
        if (p.step >= 25) {
          training.off('step', listener);
          resolve(training.stop());
        }
      };
      training.on('step', listener);
    });
    const stopped = await stopping;
    assert.equal(stopped.interrupted, true);
    assert.ok(stopped.steps >= 25 && stopped.steps < 90, `stopped at ${stopped.steps}`);
    assert.ok(steps.length > 0 && steps.every((s, i) => i === 0 || s === steps[i - 1] + 1), 'one progress message per step');
    assert.ok(existsSync(path.join(out, 'last.safetensors')));
    // The predictor now serves the final weights the run posted.
    const final = training.weights!;
    assert.equal(final.step, stopped.steps);
    assert.equal(predictor.stats.weightsStep, stopped.steps);
    const served = await predictor.predict(x, { last: true });
    const model = await modelOf(training.architecture);
    model.loadState(final.state);
    const want = await model.predict(x, { shape: [21, 1, 10], last: true });
    assertClose(served.values as Float32Array, want.values as Float32Array, { atol: 1e-6 }, 'served = the posted weights');
    model.dispose();
    await predictor.close();
    assert.equal(await training.stop(), stopped, 'stop() after the end: the result');

    const resumed = await trainInBackground({}, { resume: out }).result;
    assert.equal(resumed.steps, 90);
    assert.equal(resumed.test!.loss, whole.test!.loss, 'stopped and resumed = the whole run, bit for bit');
  });

  it('trains on your own data: a source module built on the training thread, as the same source on this thread', async () => {
    const options = { hidden: 32, batchSize: 32, lr: 3e-3, activation: 'tanh' as const, validEvery: 50, logEvery: 10, seed: 1, steps: 150 };
    const module = path.join(__dirname, 'fixtures', 'sign-of-sum-source.ts');
    const training = trainInBackground(options, { runFolder: false, source: { module, options: { seed: TEST_SEED % 1000 } } });
    const result = await training.result;
    const alone = await inThread(options, { source: createSource({ seed: TEST_SEED % 1000 }) });
    assert.equal(result.runDir, '');
    assert.equal(result.test!.loss, alone.test!.loss);
    assert.ok(result.test!.accuracy! > 0.8, `test accuracy ${result.test!.accuracy}`);
  });

  it('refuses bad options at once, and a run that fails on the thread rejects ready and result with its coded error', async () => {
    const refuses = (f: () => unknown, errCode: string, pattern: RegExp) =>
      assert.throws(f, (e: unknown) => code(e) === errCode && pattern.test((e as Error).message), String(pattern));
    refuses(() => trainInBackground(copyRun, { bogus: 1 } as never), 'ERR_ORTHORNN_RANGE', /'options' must be made of .* unknown option 'bogus'/);
    refuses(() => trainInBackground(copyRun, { nice: 25 }), 'ERR_ORTHORNN_RANGE', /'options.nice'/);
    refuses(() => trainInBackground(copyRun, { priority: 'idle' as never }), 'ERR_ORTHORNN_RANGE', /'options.priority'/);
    refuses(() => trainInBackground(copyRun, { source: { module: '' } }), 'ERR_ORTHORNN_TYPE', /'options.source.module'/);
    refuses(() => trainInBackground(copyRun, { source: { module: 'x', options: { f: () => 1 } } }), 'ERR_ORTHORNN_TYPE', /'options.source.options' must be plain data/);
    refuses(() => trainInBackground({ ...copyRun, onStep: () => 1 } as never), 'ERR_ORTHORNN_TYPE', /'config' must be plain data/);
    refuses(() => trainInBackground(copyRun, { resume: 'runs/x', runFolder: false }), 'ERR_ORTHORNN_RANGE', /'options.runFolder'/);
    refuses(() => trainInBackground({ ...copyRun, device: 'cpu' }, { device: 'cuda:0' }), 'ERR_ORTHORNN_RANGE', /'options.device' must be the configuration's device, 'cpu'/);

    // Refused by the configuration table on the training thread: the same RangeError here.
    const bad = trainInBackground({ ...copyRun, hidden: -4 }, { runFolder: false });
    await assert.rejects(bad.ready, (e: unknown) => e instanceof RangeError && code(e) === 'ERR_ORTHORNN_RANGE' && /hidden/.test((e as Error).message));
    await assert.rejects(bad.result, (e: unknown) => e instanceof RangeError && code(e) === 'ERR_ORTHORNN_RANGE');
    assert.throws(() => bad.architecture, (e: unknown) => e instanceof OrthornnError && /has not started/.test((e as Error).message));
    await assert.rejects(createPredictor(bad), (e: unknown) => code(e) === 'ERR_ORTHORNN_RANGE');

    // A source module without the export.
    const missing = trainInBackground(copyRun, { runFolder: false, source: { module: path.join(__dirname, 'fixtures', 'sign-of-sum-source.ts'), export: 'nope' } });
    await assert.rejects(missing.result, (e: unknown) => code(e) === undefined && e instanceof TypeError && /'nope' is undefined/.test((e as Error).message));
    // A predictor refuses refreshEvery with a feed: the feed pushes its weights.
    const fine = trainInBackground({ ...copyRun, steps: 5000 }, { runFolder: false });
    await fine.ready;
    await assert.rejects(createPredictor(fine, { refreshEvery: 10 }), (e: unknown) => code(e) === 'ERR_ORTHORNN_RANGE' && /WeightsFeed pushes/.test((e as Error).message));
    // terminate(): at once, no result.
    await fine.terminate();
    await assert.rejects(fine.result, (e: unknown) => code(e) === 'ERR_ORTHORNN_DISPOSED' && /terminated/.test((e as Error).message));
  });
});
