import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { groupFlag } from '../lib/cli/sweep';
import { readCheckpoint } from '../lib/train/checkpoint';
import { MEMBER_KEYS, train, Trainer, TrainerGroup, trainGroup, type TrainConfig, type TrainResult } from '../lib/train/index';
import { streamsPerGroup } from '../lib/train/group';
import { createSource } from './fixtures/sign-of-sum-source';
import { announceSeed, TEST_SEED, until } from './helpers';

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

  it('on a GPU the members are dealt over as many contexts (streams) as the hardware has work queues: 8, or CUDA_DEVICE_MAX_CONNECTIONS up to 32', () => {
    assert.equal(streamsPerGroup({}), 8);
    assert.equal(streamsPerGroup({ CUDA_DEVICE_MAX_CONNECTIONS: '32' }), 32);
    assert.equal(streamsPerGroup({ CUDA_DEVICE_MAX_CONNECTIONS: '16' }), 16);
    assert.equal(streamsPerGroup({ CUDA_DEVICE_MAX_CONNECTIONS: '64' }), 32);
    assert.equal(streamsPerGroup({ CUDA_DEVICE_MAX_CONNECTIONS: '0' }), 1);
    assert.equal(streamsPerGroup({ CUDA_DEVICE_MAX_CONNECTIONS: 'many' }), 8);
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

const ROOT = path.join(__dirname, '..');
const CLI = ['--import', 'tsx', path.join(ROOT, 'lib/cli/main.ts')];

function cli(args: string[]) {
  const r = spawnSync(process.execPath, [...CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 240_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('83 orthornn group and sweep --group: compatible runs in one process, each as if alone', function () {
  this.timeout(300_000);
  let tmp: string;
  before(() => (tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-group-cli-'))));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const seed = String(TEST_SEED % 1000);
  const args = ['sweep', '--task', 'copy', '--delay', '5', '--hidden', '8', '--batch-size', '4', '--valid-every', '50', '--valid-size', '8', '--plot-format', 'none', '--jobs', '1'];

  it('sweep --group trains the runs that differ only in their own settings as one group per seed: every run as with --no-group', () => {
    const grid = ['--grid', 'margin=0,0.1', 'init=orthogonal,glorot', `seed=${seed},${Number(seed) + 1}`, '--steps', '150'];
    const grouped = cli([...args, ...grid, '--group', '--out', path.join(tmp, 'grouped')]);
    assert.equal(grouped.code, 0, grouped.stderr);
    assert.match(grouped.stdout, /sweep of 8 runs, 1 at a time with \d+ thread\(s\) each, 8 of them in 2 group\(s\) trained together/);
    assert.match(grouped.stdout, new RegExp(`group of 4: margin-0_init-orthogonal_seed-${seed}, margin-0_init-glorot_seed-${seed}, margin-0.1_init-orthogonal_seed-${seed}, margin-0.1_init-glorot_seed-${seed} \\(one process`));
    assert.equal(grouped.stdout.match(/: ok \(in a group\), test/g)?.length, 8, grouped.stdout);
    const alone = cli([...args, ...grid, '--no-group', '--out', path.join(tmp, 'alone')]);
    assert.equal(alone.code, 0, alone.stderr);
    assert.doesNotMatch(alone.stdout, /in a group|group of|group\(s\)/);
    const runs = readdirSync(path.join(tmp, 'alone')).filter((d) => d.startsWith('margin-'));
    assert.equal(runs.length, 8);
    for (const run of runs) {
      assert.deepEqual(records(path.join(tmp, 'grouped', run)), records(path.join(tmp, 'alone', run)), run);
      sameParameters(path.join(tmp, 'grouped', run, 'last.safetensors'), path.join(tmp, 'alone', run, 'last.safetensors'), run);
    }
    const table = (dir: string) => (JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8')).runs as { name: string; test: { loss: number }; steps: number }[]).map((r) => [r.name, r.test.loss, r.steps]);
    assert.deepEqual(table(path.join(tmp, 'grouped')), table(path.join(tmp, 'alone')));
  });

  it('a grouped sweep stopped by SIGINT continues as a group from its members\' checkpoints, each ending as its run alone', async () => {
    const out = path.join(tmp, 'stopped');
    const long = [...args, '--steps', '3000', '--checkpoint-every', '100', '--seed', seed, '--group', '--out', out];
    const child = spawn(process.execPath, [...CLI, ...long, '--grid', 'margin=0,0.1'], { cwd: ROOT, detached: true, stdio: 'ignore' });
    const checkpoint = path.join(out, 'margin-0.1', 'last.safetensors');
    await until('the group\'s checkpoint', () => existsSync(checkpoint));
    process.kill(-child.pid!, 'SIGINT');
    await new Promise((r) => child.on('exit', r));
    for (const m of ['0', '0.1']) assert.ok(!records(path.join(out, `margin-${m}`)).some((r) => (r as { type: string }).type === 'test'), `margin ${m} interrupted before its end`);
    // Continued with a third run: the two resume as a group, the new one starts alone.
    const again = cli([...long, '--grid', 'margin=0,0.1,1', '--continue']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /2 of them in 1 group\(s\)/);
    assert.match(again.stdout, /group of 2 \(resumed\): margin-0, margin-0.1/);
    assert.match(again.stdout, /margin-0: ok \(resumed\) \(in a group\)/);
    assert.match(again.stdout, /margin-1: ok, test/);
    const reference = cli([...args, '--steps', '3000', '--checkpoint-every', '100', '--seed', seed, '--no-group', '--grid', 'margin=0,0.1,1', '--out', path.join(tmp, 'reference')]);
    assert.equal(reference.code, 0, reference.stderr);
    for (const m of ['0', '0.1', '1']) {
      assert.deepEqual(records(path.join(out, `margin-${m}`)), records(path.join(tmp, 'reference', `margin-${m}`)), `margin ${m}`);
      sameParameters(path.join(out, `margin-${m}`, 'last.safetensors'), path.join(tmp, 'reference', `margin-${m}`, 'last.safetensors'), `margin ${m}`);
    }
  });

  it('orthornn group: a members file or --resume, refused with one line when wrong; --group is the default on CUDA', () => {
    const file = (name: string, text: string) => {
      writeFileSync(path.join(tmp, name), text);
      return path.join(tmp, name);
    };
    const member = (extra: object) => ({ task: 'copy', delay: 5, hidden: 8, batchSize: 4, steps: 20, validEvery: 10, validSize: 8, ...extra });
    const ok = cli(['group', file('ok.json', JSON.stringify([member({ margin: 0, out: path.join(tmp, 'g0') }), member({ margin: 1, out: path.join(tmp, 'g1') })])), '--plot-format', 'none']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /a group of 2 on one context, one batch per step for all: task copy/);
    assert.match(ok.stdout, /g1: budget spent after 20 steps .* test on the best weights: loss/);
    const refusals: [string[], RegExp][] = [
      [['group'], /'<members.json>' must be either a members file or --resume/],
      [['group', file('bad.json', '{'), ], /not JSON/],
      [['group', file('empty.json', '[]')], /a non-empty JSON array/],
      [['group', file('unknown.json', JSON.stringify([member({ out: 'a', bogus: 1 })]))], /'<members.json>\[0\]' must be training options .* got 'bogus'/],
      [['group', file('noout.json', JSON.stringify([member({})]))], /'<members.json>\[0\]\.out' must be the run folder of this member/],
      [['group', file('shapes.json', JSON.stringify([member({ out: path.join(tmp, 'h0') }), member({ hidden: 16, out: path.join(tmp, 'h1') })]))], /'configs\[1\]\.hidden' must be 8, as configs\[0\]'s/],
      [['group', path.join(tmp, 'missing.json')], /cannot read the members file/],
      [['group', '--resume', path.join(tmp, 'nowhere')], /nowhere/],
      [['sweep', '--grid', 'seed=1', '--group', '--queue', 'redis://127.0.0.1:1/0', '--store', tmp], /'--group' must be omitted with --queue/],
    ];
    for (const [argv, pattern] of refusals) {
      const r = cli(argv);
      assert.equal(r.code, 1, `${argv.join(' ')}: ${r.stdout}`);
      assert.match(r.stderr, pattern, argv.join(' '));
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.doesNotMatch(r.stderr, /internal error/);
    }
    assert.equal(groupFlag({ device: 'cuda:0' }, {}), true);
    assert.equal(groupFlag({ device: 'cuda:0' }, { group: false }), false);
    assert.equal(groupFlag({}, {}), false);
    assert.equal(groupFlag({ device: 'cpu' }, { group: true }), true);
  });
});
