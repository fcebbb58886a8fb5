import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readCheckpoint, writeCheckpoint } from '../lib/train/checkpoint';
import { Trainer, truncateMetrics } from '../lib/train/trainer';

const ROOT = path.join(__dirname, '..');
const CLI = ['--import', 'tsx', path.join(ROOT, 'lib/cli/main.ts')];

/** metrics.jsonl without the wall-clock fields, which no two runs share. */
function metrics(dir: string): string[] {
  const lines = readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n');
  return lines.map((l) => JSON.stringify({ ...JSON.parse(l), time: undefined }));
}

function lastStep(dir: string): number {
  const lines = readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n');
  return lines.length === 0 || lines[0] === '' ? 0 : Math.max(...lines.map((l) => JSON.parse(l).step as number));
}

/**
 * Runs `orthornn …`, sending `signals` (in order, `gapMs` apart) once the run has logged
 * `afterStep`; resolves with the exit code and output.
 */
function runAndSignal(args: string[], dir: string, afterStep: number, signals: NodeJS.Signals[], gapMs = 0) {
  return new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, [...CLI, ...args], { cwd: ROOT });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    let sent = false;
    const poll = setInterval(() => {
      if (sent || !existsSync(path.join(dir, 'metrics.jsonl'))) return;
      let step = 0;
      try {
        step = lastStep(dir);
      } catch {
        return; // a line being written
      }
      if (step < afterStep) return;
      sent = true;
      signals.forEach((s, i) => setTimeout(() => child.kill(s), i * gapMs));
    }, 20);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearInterval(poll);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe('93 interruptions: graceful stop on signals, exact metrics after resumes', function () {
  this.timeout(600_000);
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-interrupt-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  // Long enough to be interrupted mid-run several times; every step logged.
  const config = ['--task', 'copy', '--delay', '30', '--hidden', '48', '--batch-size', '16', '--valid-every', '25', '--valid-size', '64',
    '--checkpoint-every', '40', '--log-every', '1', '--gradient-norms-every', '7', '--steps', '300', '--seed', '3', '--plot-format', 'none', '--quiet'];

  it('SIGINT and SIGTERM lose no step, and after resumes metrics.jsonl equals the uninterrupted run\'s', async () => {
    const whole = path.join(tmp, 'whole');
    const a = spawnSync(process.execPath, [...CLI, 'train', ...config, '--out', whole], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(a.status, 0, a.stderr);

    const split = path.join(tmp, 'split');
    const plan: [number, NodeJS.Signals, number][] = [[30, 'SIGINT', 130], [110, 'SIGTERM', 143], [190, 'SIGINT', 130]];
    let first = true;
    let stops = 0;
    for (const [afterStep, signal, exitCode] of plan) {
      const args = first ? ['train', ...config, '--out', split] : ['train', '--resume', split, '--quiet', '--plot-format', 'none'];
      first = false;
      const r = await runAndSignal(args, split, afterStep, [signal]);
      if (r.code === 0) break; // finished before the signal landed (a very fast machine)
      assert.equal(r.code, exitCode, `${signal}: exit ${r.code} (${r.signal}), stderr ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`${signal}: finishing step \\d+ and saving`));
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      // Nothing lost: the checkpoint holds the last step the run logged.
      const ckpt = readCheckpoint(path.join(split, 'last.safetensors'));
      assert.equal(ckpt.step, lastStep(split), 'the checkpoint is at the last finished step');
      assert.ok(ckpt.step >= afterStep, `stopped at ${ckpt.step}, after ${afterStep}`);
      assert.deepEqual(readdirSync(split).filter((f) => f.endsWith('.tmp')), [], 'no temporary files');
      stops++;
    }
    if (lastStep(split) < 300) {
      const r = spawnSync(process.execPath, [...CLI, 'train', '--resume', split, '--quiet', '--plot-format', 'none'], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
    }
    console.log(`      ${stops} graceful stops and resumes`);
    assert.ok(stops >= 1, 'at least one signal landed mid-run');
    assert.deepEqual(metrics(split), metrics(whole));
  });

  it('a second signal exits at once, without saving', async () => {
    const dir = path.join(tmp, 'twice');
    // Steps of about a second, so that the second signal lands inside one.
    const slow = ['--task', 'copy', '--delay', '1000', '--hidden', '256', '--batch-size', '64', '--valid-every', '1000', '--log-every', '1', '--steps', '1000', '--plot-format', 'none', '--quiet'];
    const r = await runAndSignal(['train', ...slow, '--out', dir], dir, 1, ['SIGINT', 'SIGINT'], 100);
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /SIGINT again: exiting without saving/);
    assert.ok(!existsSync(path.join(dir, 'last.safetensors')), 'nothing saved');
  });

  it('Trainer.run stops on an AbortSignal after the step in progress, saves it, and resume continues', async () => {
    const out = path.join(tmp, 'api');
    const stop = new AbortController();
    const trainer = await Trainer.create({ task: 'copy', delay: 5, hidden: 16, batchSize: 8, steps: 30, validEvery: 10, validSize: 32, logEvery: 1, out });
    try {
      const result = await trainer.run({ signal: stop.signal, onStep: (p) => p.step === 13 && stop.abort() });
      assert.equal(result.interrupted, true);
      assert.equal(result.steps, 13);
      assert.equal(result.test, undefined, 'no test metrics for an interrupted run');
    } finally {
      trainer.dispose();
    }
    assert.equal(readCheckpoint(path.join(out, 'last.safetensors')).step, 13);
    const resumed = await Trainer.resume(out);
    try {
      assert.equal(resumed.step, 13);
      const result = await resumed.run();
      assert.equal(result.interrupted, false);
      assert.equal(result.steps, 30);
    } finally {
      resumed.dispose();
    }
  });

  it('resume refuses a budget the run has already spent', async () => {
    const out = path.join(tmp, 'spent');
    const trainer = await Trainer.create({ task: 'copy', delay: 5, hidden: 16, batchSize: 8, steps: 12, validEvery: 6, validSize: 32, out });
    try {
      await trainer.run();
    } finally {
      trainer.dispose();
    }
    await assert.rejects(Trainer.resume(out, { steps: 5 }), (e: Error & { code?: string }) => e.code === 'ERR_ORTHORNN_RANGE' && /more than the 12 steps/.test(e.message));
    await assert.rejects(Trainer.resume(out), /more than the 12 steps the checkpoint has taken, got a budget of 12 steps/);
    const r = spawnSync(process.execPath, [...CLI, 'train', '--resume', out, '--steps', '5'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^orthornn: resume: argument 'steps' must be more than the 12 steps/);
  });

  it('resume checks the checkpoint against its config before allocating, and U and V for orthogonality', async () => {
    const out = path.join(tmp, 'hostile');
    const trainer = await Trainer.create({ task: 'copy', delay: 5, hidden: 16, batchSize: 8, steps: 6, validEvery: 3, validSize: 16, out });
    try {
      await trainer.run();
    } finally {
      trainer.dispose();
    }
    const file = path.join(out, 'last.safetensors');
    const good = readCheckpoint(file);
    const edit = (change: (c: typeof good) => void) => {
      const c = readCheckpoint(path.join(out, 'good.safetensors'));
      change(c);
      writeCheckpoint(file, c);
    };
    writeCheckpoint(path.join(out, 'good.safetensors'), good);
    edit((c) => (c.config = { ...c.config, hidden: 4096 }));
    await assert.rejects(Trainer.resume(out, { steps: 10 }), (e: Error & { code?: string }) => e.code === 'ERR_ORTHORNN_DATA' && /'W_in'/.test(e.message));
    edit((c) => (c.config = { ...c.config, delay: 100_000 }));
    await assert.rejects(Trainer.resume(out, { steps: 10 }), (e: Error & { code?: string }) => e.code === 'ERR_ORTHORNN_DATA' && /holds a config that orthornn refuses.*'delay' must be ≤ 20000/.test(e.message));
    edit((c) => c.parameters.U.fill(0.5));
    await assert.rejects(Trainer.resume(out, { steps: 10 }), (e: Error & { code?: string }) => e.code === 'ERR_ORTHORNN_NUMERIC' && /factor U is not orthogonal/.test(e.message));
    edit(() => undefined);
    (await Trainer.resume(out, { steps: 10 })).dispose();
  });

  it('a configuration whose training step would not fit in half the memory is refused before anything is allocated', async () => {
    await assert.rejects(Trainer.create({ task: 'copy', delay: 20_000, hidden: 8192, batchSize: 10_000, out: path.join(tmp, 'huge') }),
      (e: Error & { code?: string }) => e.code === 'ERR_ORTHORNN_RANGE' && /'batchSize' must be small enough that a step's activations fit/.test(e.message));
    assert.ok(!existsSync(path.join(tmp, 'huge')), 'no run folder');
  });

  it('truncateMetrics keeps what was written up to the checkpoint: no later steps, no test records, no torn last line', () => {
    const file = path.join(tmp, 'metrics.jsonl');
    const rec = (type: string, step: number) => JSON.stringify({ type, step, time: step });
    writeFileSync(file, [rec('train', 1), rec('valid', 2), rec('train', 2), rec('test', 2), rec('train', 3)].join('\n') + '\n{"type":"tr');
    truncateMetrics(file, 2);
    assert.equal(readFileSync(file, 'utf8'), [rec('train', 1), rec('valid', 2), rec('train', 2)].join('\n') + '\n');
    writeFileSync(file, `${rec('train', 1)}\nnot json\n${rec('train', 2)}\n`);
    assert.throws(() => truncateMetrics(file, 2), (e: Error & { code?: string }) => e.code === 'ERR_ORTHORNN_DATA' && /line 2 is not a JSON record/.test(e.message));
  });

  it('the CLI prints one line for file-system errors: --out on a file, config.json a folder', () => {
    const file = path.join(tmp, 'a-file');
    writeFileSync(file, 'x');
    const tiny = ['--task', 'copy', '--delay', '5', '--hidden', '16', '--steps', '2', '--plot-format', 'none', '--quiet'];
    const r1 = spawnSync(process.execPath, [...CLI, 'train', ...tiny, '--out', file], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r1.status, 1);
    assert.match(r1.stderr, /^orthornn: .*a-file/);
    assert.equal(r1.stderr.trim().split('\n').length, 1, r1.stderr);
    const dir = path.join(tmp, 'cfgdir');
    rmSync(dir, { recursive: true, force: true });
    spawnSync('mkdir', ['-p', path.join(dir, 'config.json')]);
    const r2 = spawnSync(process.execPath, [...CLI, 'train', ...tiny, '--out', dir], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r2.status, 1);
    assert.match(r2.stderr, /^orthornn: cannot write '.*config\.json'/);
    assert.equal(r2.stderr.trim().split('\n').length, 1, r2.stderr);
    const r3 = spawnSync(process.execPath, [...CLI, 'train', ...tiny, '--out', dir, '--debug'], { cwd: ROOT, encoding: 'utf8' });
    assert.match(r3.stderr, /\n\s+at /, '--debug shows the stack');
  });
});
