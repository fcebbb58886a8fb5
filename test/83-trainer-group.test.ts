import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readCheckpoint } from '../lib/train/checkpoint';
import { MEMBER_KEYS, train, Trainer, TrainerGroup, trainGroup, type TrainConfig, type TrainResult } from '../lib/train/index';
import { createSource } from './fixtures/sign-of-sum-source';
import { announceSeed, TEST_SEED } from './helpers';

/** What the members share: a small copy task. */
const shared = { task: 'copy' as const, delay: 10, hidden: 16, batchSize: 16, steps: 60, validEvery: 20, logEvery: 10, seed: TEST_SEED % 10_000 };
/** What they differ in. */
const variants: Partial<TrainConfig>[] = [
  { margin: 0.01 },
  { margin: 0.1, cayleyLr: 1e-4, clipNorm: 1 },
  { margin: 0, init: 'glorot', lr: 3e-3, optimizer: 'adam' },
];

/** A run folder's records without their wall-clock times. */
function records(dir: string): unknown[] {
  return readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => {
    const { time: _time, ...rest } = JSON.parse(l);
    return rest;
  });
}

function sameRun(got: TrainResult, want: TrainResult, label: string): void {
  assert.equal(got.steps, want.steps, `${label}: steps`);
  assert.equal(got.reachedTarget, want.reachedTarget, `${label}: reachedTarget`);
  assert.equal(got.interrupted, want.interrupted, `${label}: interrupted`);
  assert.equal(got.best?.loss, want.best?.loss, `${label}: best validation loss`);
  assert.equal(got.test?.loss, want.test?.loss, `${label}: test loss`);
}

function sameParameters(a: string, b: string, label: string): void {
  const [x, y] = [readCheckpoint(a).parameters, readCheckpoint(b).parameters];
  assert.deepEqual(Object.keys(x), Object.keys(y));
  for (const name of Object.keys(x)) assert.deepEqual(x[name], y[name], `${label}: ${name}`);
}

describe('83 a group of runs of one shape: one batch for all, each member as if alone', function () {
  this.timeout(300_000);
  let tmp: string;
  const alone: TrainResult[] = [];
  before(async () => {
    announceSeed();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-group-'));
    for (const [i, v] of variants.entries()) alone.push(await train({ ...shared, ...v, out: path.join(tmp, `alone-${i}`) }));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('trains every member bit for bit as the same configuration alone: results, records, checkpoints', async () => {
    const dirs = variants.map((_, i) => path.join(tmp, `group-${i}`));
    const progress: number[][] = [];
    const seen = variants.map(() => 0);
    const results = await trainGroup(variants.map((v, i) => ({ ...shared, ...v, out: dirs[i] })), {
      onStep: (p) => progress.push(p.losses),
      onRecord: (member) => seen[member]++,
    });
    assert.equal(progress.length, 60);
    for (const [i, r] of results.entries()) {
      sameRun(r, alone[i], `member ${i}`);
      assert.deepEqual(records(dirs[i]), records(path.join(tmp, `alone-${i}`)), `member ${i}: metrics.jsonl`);
      assert.equal(seen[i], records(dirs[i]).length, `member ${i}: onRecord saw every record`);
      sameParameters(path.join(dirs[i], 'last.safetensors'), path.join(tmp, `alone-${i}`, 'last.safetensors'), `member ${i}: last checkpoint`);
    }
  });

  it('a member that reaches its target finishes there while the others go on, each as alone', async () => {
    // Member 1 stops at its first validation whose loss is under the first validation's.
    const target = alone[1].best!.loss * 1.5;
    const configs = variants.map((v, i) => ({ ...shared, ...v, ...(i === 1 && { targetLoss: target }) }));
    const results = await trainGroup(configs, {}, { runFolder: false });
    const member1 = await train(configs[1], {}, { runFolder: false });
    assert.ok(member1.reachedTarget && member1.steps < 60, `member 1 alone stops early (step ${member1.steps})`);
    sameRun(results[1], member1, 'member 1');
    sameRun(results[0], alone[0], 'member 0');
    sameRun(results[2], alone[2], 'member 2');
  });

  it('stopped with a signal and resumed as a group (or one member alone), every member ends as its run alone', async () => {
    const dirs = variants.map((_, i) => path.join(tmp, `stopped-${i}`));
    const stop = new AbortController();
    const first = await trainGroup(variants.map((v, i) => ({ ...shared, ...v, out: dirs[i] })), { signal: stop.signal, onStep: (p) => p.step === 27 && stop.abort() });
    for (const r of first) {
      assert.equal(r.interrupted, true);
      assert.equal(r.steps, 27);
    }
    // Member 2 alone, from a copy of its folder; the group from the folders.
    const lone = await Trainer.resume(dirs[2]);
    const loneResult = await lone.run();
    lone.dispose();
    sameRun(loneResult, alone[2], 'member 2 resumed alone');
    const group = await TrainerGroup.resume(dirs.slice(0, 2));
    assert.equal(group.step, 27);
    const rest = await group.run();
    group.dispose();
    sameRun(rest[0], alone[0], 'member 0 resumed in the group');
    sameRun(rest[1], alone[1], 'member 1 resumed in the group');
  });

  it('trains on your own data: the members share one source', async () => {
    const options = { hidden: 24, batchSize: 32, lr: 3e-3, activation: 'tanh' as const, validEvery: 40, logEvery: 10, seed: 1, steps: 80 };
    const seed = TEST_SEED % 1000;
    const results = await trainGroup([{ ...options, margin: 0.01 }, { ...options, margin: 0.5 }], {}, { source: createSource({ seed }), runFolder: false });
    for (const [i, margin] of [0.01, 0.5].entries()) {
      const want = await train({ ...options, margin }, {}, { source: createSource({ seed }), runFolder: false });
      sameRun(results[i], want, `margin ${margin}`);
    }
  });

  it('refuses members that differ in a shared key, folders shared twice, and groups it cannot resume together', async () => {
    const code = (e: unknown) => (e as { code?: string }).code;
    const refuses = (p: Promise<unknown>, errCode: string, pattern: RegExp) =>
      assert.rejects(p, (e: unknown) => code(e) === errCode && pattern.test((e as Error).message), String(pattern));
    await refuses(TrainerGroup.create([]), 'ERR_ORTHORNN_RANGE', /'configs' must be 1 to 256/);
    await refuses(TrainerGroup.create('x' as never), 'ERR_ORTHORNN_TYPE', /'configs'/);
    await refuses(TrainerGroup.create([shared, { ...shared, hidden: 32 }]), 'ERR_ORTHORNN_RANGE', /'configs\[1\]\.hidden' must be 16, as configs\[0\]'s/);
    await refuses(TrainerGroup.create([shared, { ...shared, seed: shared.seed + 1 }]), 'ERR_ORTHORNN_RANGE', /'configs\[1\]\.seed'/);
    await refuses(TrainerGroup.create([{ ...shared, out: path.join(tmp, 'same') }, { ...shared, out: path.join(tmp, 'same') }]), 'ERR_ORTHORNN_RANGE', /'configs\[1\]\.out' must be a run folder of its own/);
    await refuses(TrainerGroup.create([{ ...shared, out: 'x' }], { runFolder: false }), 'ERR_ORTHORNN_RANGE', /'configs\[0\]\.out' must be omitted/);
    await refuses(TrainerGroup.create([shared], { bogus: 1 } as never), 'ERR_ORTHORNN_RANGE', /unknown option 'bogus'/);
    assert.ok(MEMBER_KEYS.includes('margin') && !MEMBER_KEYS.includes('seed'));
    // Members at different steps.
    const [a, b] = [path.join(tmp, 'steps-a'), path.join(tmp, 'steps-b')];
    const stopAt = async (dir: string, step: number) => {
      const stop = new AbortController();
      await train({ ...shared, out: dir }, { signal: stop.signal, onStep: (p) => p.step === step && stop.abort() });
    };
    await stopAt(a, 10);
    await stopAt(b, 12);
    await refuses(TrainerGroup.resume([a, b]), 'ERR_ORTHORNN_RANGE', /'runDirs\[1\]' must be a run at step 10/);
    // A member of another shape.
    const c = path.join(tmp, 'steps-c');
    const stop = new AbortController();
    await train({ ...shared, hidden: 8, out: c }, { signal: stop.signal, onStep: (p) => p.step === 10 && stop.abort() });
    await refuses(TrainerGroup.resume([a, c]), 'ERR_ORTHORNN_RANGE', /'runDirs\[1\]\.hidden' must be 16/);
  });
});
