import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InMemorySource, MetricTotals, Trainer, train, type RunRecord } from '../lib/train/index';
import { readCheckpoint } from '../lib/train/checkpoint';
import { signOfSum } from './fixtures/sign-of-sum-source';
import { announceSeed, rng, TEST_SEED } from './helpers';

const T = 12;
function source(seed = 0) {
  return new InMemorySource({
    inputSize: 1, outputSize: 2, steps: T, score: 'last', name: 'sign-of-sum', seed,
    train: signOfSum(1024, T, TEST_SEED), valid: signOfSum(200, T, TEST_SEED + 1), test: signOfSum(200, T, TEST_SEED + 2),
  });
}
const options = { hidden: 32, batchSize: 32, lr: 3e-3, activation: 'tanh' as const, validEvery: 50, logEvery: 5, seed: 1 };

describe('84 your own data: Trainer on an in-memory source, runs without a folder, cancellation', function () {
  this.timeout(300_000);
  let tmp: string;
  before(() => {
    announceSeed();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-own-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('trains on user-defined arrays end to end, without a run folder: records through onRecord, test on the best weights', async () => {
    const records: RunRecord[] = [];
    const result = await train({ ...options, steps: 400 }, { onRecord: (r) => records.push(r) }, { source: source(), runFolder: false });
    assert.equal(result.runDir, '');
    assert.equal(result.steps, 400);
    assert.ok(result.best && result.best.accuracy! > 0.9, `best validation accuracy ${result.best?.accuracy}`);
    assert.ok(result.test && result.test.accuracy! > 0.85, `test accuracy ${result.test?.accuracy}`);
    assert.equal(result.test!.sequences, 200);
    assert.ok(records.some((r) => r.type === 'train') && records.some((r) => r.type === 'valid') && records.some((r) => r.type === 'test'));
    assert.ok(!existsSync('runs/sign-of-sum'), 'no folder written');
  });

  it('an aborted run resumed with the same source ends bit for bit where the uninterrupted run does', async () => {
    const whole = path.join(tmp, 'whole');
    await train({ ...options, steps: 60, out: whole }, {}, { source: source(3) });
    const split = path.join(tmp, 'split');
    const stop = new AbortController();
    const first = await train({ ...options, steps: 60, out: split }, { signal: stop.signal, onStep: (p) => p.step === 23 && stop.abort() }, { source: source(3) });
    assert.equal(first.interrupted, true);
    assert.equal(first.steps, 23);
    const trainer = await Trainer.resume(split, { source: source(3) });
    try {
      assert.equal((await trainer.run()).steps, 60);
    } finally {
      trainer.dispose();
    }
    const [a, b] = [whole, split].map((d) => readCheckpoint(path.join(d, 'last.safetensors')));
    for (const name of Object.keys(a.parameters)) assert.deepEqual(b.parameters[name], a.parameters[name], `parameter ${name}`);
    assert.deepEqual(b.optimizer, a.optimizer);
    const strip = (d: string) => readFileSync(path.join(d, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.stringify({ ...JSON.parse(l), time: undefined }));
    assert.deepEqual(strip(split), strip(whole));
  });

  it('a custom run needs its source to resume, and a source cannot stand in for a built-in task', async () => {
    const dir = path.join(tmp, 'needs-source');
    await train({ ...options, steps: 5, out: dir }, {}, { source: source() });
    await assert.rejects(Trainer.resume(dir, { steps: 10 }), (e: Error & { code?: string }) => e.code === 'ERR_ORTHORNN_RANGE' && /'custom' data comes from the source given/.test(e.message));
    await assert.rejects(Trainer.create({ task: 'copy' }, { source: source() }), /'options.task' must be 'custom' \(or omitted\) when a source is given/);
    await assert.rejects(Trainer.create({}, { source: {} as never }), (e: Error & { code?: string }) => e.code === 'ERR_ORTHORNN_TYPE' && /extra.source/.test(e.message));
    await assert.rejects(Trainer.create({}, { bogus: 1 } as never), /unknown option 'bogus'/);
    await assert.rejects(Trainer.create({ out: 'x' }, { source: source(), runFolder: false }), /'options.out' must be omitted when runFolder is false/);
  });

  it('InMemorySource refuses malformed data with coded errors naming the field', () => {
    const good = signOfSum(10, T, 1);
    const make = (changes: Record<string, unknown>) => () => new InMemorySource({ inputSize: 1, outputSize: 2, steps: T, score: 'last', train: good, valid: good, ...changes } as never);
    const cases: [Record<string, unknown>, RegExp, string][] = [
      [{ train: { x: good.x.subarray(1), targets: good.targets } }, /'train.x' must be N × 12 × 1 values/, 'ERR_ORTHORNN_RANGE'],
      [{ train: { x: Array.from(good.x), targets: good.targets } }, /'train.x' must be a Float32Array or Float64Array/, 'ERR_ORTHORNN_TYPE'],
      [{ valid: { x: good.x, targets: Int32Array.of(0, 1, 2, 0, 0, 0, 0, 0, 0, 0) } }, /'valid.targets' must be class ids in 0..1, got 2 at index 2/, 'ERR_ORTHORNN_RANGE'],
      [{ valid: { x: good.x, targets: good.targets.subarray(1) } }, /'valid.targets' must be 10 values/, 'ERR_ORTHORNN_RANGE'],
      [{ train: { x: Float32Array.from(good.x, (v, i) => (i === 3 ? NaN : v)), targets: good.targets } }, /'train.x' must be finite values, got NaN at index 3/, 'ERR_ORTHORNN_RANGE'],
      [{ train: { ...good, lengths: new Int32Array(10).fill(3) } }, /'train.lengths' must be given only with score 'all'/, 'ERR_ORTHORNN_RANGE'],
      [{ loss: 'mse', score: 'all' }, /'score' must be 'last' for the mse loss/, 'ERR_ORTHORNN_RANGE'],
      [{ steps: 0 }, /'steps' must be/, 'ERR_ORTHORNN_RANGE'],
      [{ colour: 'red' }, /unknown option 'colour'/, 'ERR_ORTHORNN_RANGE'],
    ];
    for (const [changes, message, code] of cases) {
      assert.throws(make(changes), (e: Error & { code?: string }) => e.code === code && message.test(e.message), JSON.stringify(Object.keys(changes)));
    }
  });

  it('variable lengths: padded steps are neither trained on nor counted', async () => {
    const N = 64;
    const r = rng(TEST_SEED + 5);
    const x = Float32Array.from({ length: N * T * 1 }, () => 2 * r() - 1);
    const targets = Int32Array.from({ length: N * T }, (_, i) => (x[i] > 0 ? 1 : 0));
    const lengths = Int32Array.from({ length: N }, () => 1 + Math.floor(r() * T));
    const s = new InMemorySource({ inputSize: 1, outputSize: 2, steps: T, train: { x, targets, lengths }, valid: { x, targets, lengths } });
    const batch = s.evalBatch('valid', 0, N);
    assert.equal(batch.score, 'mask');
    const totals = new MetricTotals();
    s.score(batch, new Float32Array(T * N * 2), totals);
    assert.equal(totals.lossCount, lengths.reduce((a, b) => a + b, 0), 'only the steps within each length are scored');
    const result = await train({ hidden: 16, batchSize: 16, steps: 150, lr: 1e-2, validEvery: 50, seed: 2 }, {}, { source: s, runFolder: false });
    assert.ok(result.best!.accuracy! > 0.8, `accuracy ${result.best!.accuracy} on the current input's sign`);
  });
});
