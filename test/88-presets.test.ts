/**
 * 88: the paper's experiments as sweep presets: every preset's runs are valid configurations at
 * both budgets, the user's options and a row's defining options combine as documented, the
 * results' metrics are read off the records as documented, and `orthornn sweep --preset` runs
 * a preset end to end (shrunk by command-line options) and writes results.md, results.json and
 * the comparison figure.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { presetMetric, resultsMarkdown } from '../lib/cli/preset';
import type { Run } from '../lib/plot/read';
import { resolveConfig } from '../lib/train/config';
import { PRESETS, presetNamed, presetRuns } from '../lib/train/presets';
import type { EvalRecord } from '../lib/train/records';
import { until } from './helpers';

const ROOT = path.join(__dirname, '..');

function cli(args: string[]) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'lib/cli/main.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 240_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function valid(step: number, m: Partial<EvalRecord>): EvalRecord {
  return { type: 'valid', step, time: step, sequences: 10, loss: 1, ...m };
}

function runOf(validRecords: EvalRecord[], test?: Partial<EvalRecord>): Run {
  return { dir: 'x', config: {}, train: [], valid: validRecords, test: test ? [{ ...valid(99, test), type: 'test' }] : [], gradientNorms: [] };
}

describe('88 presets: the paper experiments as sweeps', function () {
  this.timeout(300_000);

  it('every preset, at every budget, is a list of valid configurations with distinct run names', () => {
    assert.ok(Object.keys(PRESETS).length >= 10);
    for (const preset of Object.values(PRESETS)) {
      for (const budget of ['reduced', 'medium', 'full'] as const) {
        const runs = presetRuns(preset, budget, { dataDir: '/data' });
        const expected = budget === 'medium' ? preset.rows.reduce((s, r) => s + (r.seeds ?? 1), 0) : preset.rows.length;
        assert.equal(runs.length, expected, `${preset.name} ${budget}`);
        assert.equal(new Set(runs.map((r) => r.name)).size, runs.length, `${preset.name}: run names`);
        for (const r of runs) assert.doesNotThrow(() => resolveConfig({ ...r.values, out: 'x' }), `${preset.name} ${budget} ${r.label}`);
      }
    }
  });

  it("the MNIST presets carry the paper's table, row by row", () => {
    const mnist = presetNamed('mnist-margins').rows.map((r) => [r.label, r.paper]);
    assert.deepEqual(mnist, [
      ['m = 0', 77.18], ['m = 0.001', 79.26], ['m = 0.01', 85.47], ['m = 0.1', 94.1], ['m = 1', 93.84],
      ['none (free W)', 93.24], ['none, Glorot init', 66.71], ['none, identity init', undefined], ['LSTM', 97.3],
    ]);
    assert.deepEqual(presetNamed('pmnist-margins').rows.map((r) => r.paper), [83.56, 84.59, 89.63, 91.44, 90.83, 90.51, 79.33, undefined, 92.62]);
  });

  it("the user's options win over the preset's base and budget; a row's defining options win over the user's", () => {
    const preset = presetNamed('copy-200-margins');
    const runs = presetRuns(preset, 'reduced', { steps: 7, lr: 0.5, margin: 0.3, seed: 4 });
    assert.equal(runs[0].values.steps, 7);
    assert.equal(runs[0].values.lr, 0.5);
    assert.equal(runs[0].values.seed, 4);
    assert.equal(runs[0].values.margin, 0, 'the row m = 0 keeps its margin');
    assert.equal(runs[5].values.model, 'plain');
    assert.equal(presetRuns(preset, 'reduced')[0].values.epochs, preset.budgets.reduced.epochs);
    assert.equal(presetRuns(preset, 'full')[0].values.epochs, 500);
    assert.equal(runs[0].values.epochs, undefined, "the user's steps replace the budget's epochs");
    const mnist = presetRuns(presetNamed('mnist-margins'), 'reduced', { steps: 20 });
    assert.equal(mnist[0].values.epochs, undefined, "the user's steps replace the budget's epochs");
    assert.doesNotThrow(() => resolveConfig({ ...mnist[8].values, out: 'x' }), 'the LSTM row drops the options an LSTM refuses');
    const lstm = presetRuns(presetNamed('mnist-margins'), 'reduced')[8];
    assert.equal(lstm.label, 'LSTM (epochs 0.5)');
    assert.equal(lstm.values.epochs, 0.5);
    assert.equal(presetRuns(presetNamed('mnist-margins'), 'full')[8].values.epochs, 150);
    assert.equal(presetRuns(presetNamed('mnist-margins'), 'full')[8].label, 'LSTM (epochs 150)');
  });

  // The paper's protocol per task (docs/results.md, "The protocol"), written out here independently of the presets.
  const PROTOCOL = {
    dataset: { optimizer: 'rmsprop', rmsprop: 'lasagne', lr: 1e-3, cayleyLr: 1e-3, batchSize: 50, epochs: 120, clipPreactivation: 100, weightDecay: 1e-4, hidden: 128, activation: 'tanh' },
    lstm: { optimizer: 'rmsprop', rmsprop: 'lasagne', lr: 1e-4, batchSize: 50, epochs: 150, clipNorm: 1, hidden: 128, lstmInit: 'paper' },
    copy: { optimizer: 'rmsprop', rmsprop: 'lasagne', lr: 1e-4, cayleyLr: 1e-6, batchSize: 50, clipPreactivation: 100, weightDecay: 1e-4, hidden: 128, activation: 'identity' },
    adding: { optimizer: 'rmsprop', rmsprop: 'lasagne', lr: 1e-4, cayleyLr: 1e-6, batchSize: 50, epochs: 2000, clipPreactivation: 100, weightDecay: 1e-4, hidden: 128, activation: 'relu', length: 1000 },
  } as const;

  it("every preset's full budget is the paper's protocol: lrs, batch, epochs, clipping, decay, optimiser variant", () => {
    const checked = new Set<string>();
    for (const preset of Object.values(PRESETS)) {
      for (const run of presetRuns(preset, 'full', { dataDir: '/data' })) {
        const c = resolveConfig({ ...run.values, out: 'x' });
        const where = `${preset.name} ${run.label}`;
        const expect = (protocol: Record<string, unknown>) => {
          for (const [key, value] of Object.entries(protocol)) {
            if (key === 'cayleyLr' && c.model !== 'svd') continue;
            assert.equal(c[key as keyof typeof c], value, `${where}: ${key}`);
          }
          checked.add(preset.name);
        };
        if (c.task === 'mnist' || c.task === 'pmnist') {
          if (c.model === 'lstm') {
            expect(PROTOCOL.lstm);
            assert.equal(c.clipPreactivation, 0, `${where}: no element-wise clip`);
            assert.equal(c.weightDecay, 0, `${where}: no decay`);
          } else {
            expect(PROTOCOL.dataset);
            assert.equal(c.clipNorm, 0, `${where}: no norm clip`);
          }
          assert.equal(c.spectrumLr, 0, `${where}: the spectrum at lr / 2m`);
        } else if (c.task === 'copy') {
          expect(PROTOCOL.copy);
        } else if (c.task === 'adding') {
          expect(PROTOCOL.adding);
        } else {
          assert.equal(c.task, 'ptb');
          assert.equal(c.batchSize, 50, `${where}: batch`);
          assert.equal(c.rmsprop, 'lasagne', `${where}: optimiser`);
        }
      }
      assert.ok(preset.departures.length > 0, `${preset.name} lists its departures`);
    }
    assert.ok(['mnist-margins', 'pmnist-margins', 'copy-200-margins', 'adding-margins', 'pmnist-spectrum', 'copy-gradient-norms'].every((n) => checked.has(n)));
  });

  it('the medium budget runs the rows that carry the findings (m = 0, m = 0.1, Glorot) at three seeds from the given one', () => {
    for (const name of ['mnist-margins', 'pmnist-margins']) {
      const runs = presetRuns(presetNamed(name), 'medium', { seed: 5 });
      const seedsOf = (row: string) => runs.filter((r) => r.row === row).map((r) => r.values.seed);
      assert.deepEqual(seedsOf('m = 0'), [5, 6, 7]);
      assert.deepEqual(seedsOf('m = 0.1'), [5, 6, 7]);
      assert.deepEqual(seedsOf('none, Glorot init'), [5, 6, 7]);
      assert.deepEqual(seedsOf('m = 0.01'), [5]);
      assert.equal(runs.length, 15);
      assert.equal(new Set(runs.map((r) => r.name)).size, 15);
      assert.ok(runs.every((r) => r.values.epochs === presetNamed(name).budgets.medium.epochs), 'the LSTM at the Elman rows\' budget');
      assert.equal(runs.find((r) => r.row === 'm = 0.1')!.label, 'm = 0.1, seed 5');
    }
  });

  it('an unknown preset is a RangeError naming --preset and the presets', () => {
    assert.throws(() => presetNamed('mnist'), (e: unknown) => e instanceof RangeError && /--preset/.test(e.message) && /mnist-margins/.test(e.message));
  });

  it('the metrics: test accuracy and bits per character, steps to solve (or how far it got), best validation MSE', () => {
    assert.equal(presetMetric('testAccuracy', runOf([], { accuracy: 0.9123 }), undefined).value, 91.23);
    assert.equal(presetMetric('testAccuracy', runOf([]), undefined).value, null);
    assert.equal(presetMetric('testBitsPerChar', runOf([], { bitsPerChar: 1.5 }), undefined).value, 1.5);
    const copy = runOf([valid(100, { accuracy: 0.5 }), valid(200, { accuracy: 1 }), valid(300, { accuracy: 1 })]);
    assert.equal(presetMetric('stepsToSolve', copy, 300).value, 200);
    const unsolved = presetMetric('stepsToSolve', runOf([valid(100, { accuracy: 0.25 }), valid(200, { accuracy: 0.75 })]), 200);
    assert.equal(unsolved.value, null);
    assert.match(unsolved.note ?? '', /not solved in 200 steps \(best recall 75\.0%\)/);
    assert.equal(presetMetric('bestValidMse', runOf([valid(1, { mse: 0.2 }), valid(2, { mse: 0.05 }), valid(3, { mse: 0.1 })]), undefined).value, 0.05);
  });

  it("results.md: the paper's column where the preset has one, ours, steps and wall time per run", () => {
    const preset = presetNamed('mnist-margins');
    const md = resultsMarkdown(preset, 'reduced', [
      { label: 'm = 0', dir: 'a', status: 'ok', seconds: 12, ours: 50.5, paper: 77.18, steps: 500 },
      { label: 'LSTM', dir: 'b', status: 'failed', seconds: 1, ours: null, note: 'exit 1', paper: 97.3 },
    ], { command: 'orthornn sweep --preset mnist-margins', dir: 'runs/x', seconds: 13, seed: 0, overrides: [], commit: 'abc1234', figure: 'comparison.svg' });
    assert.match(md, /Command: `orthornn sweep --preset mnist-margins` at commit abc1234/);
    assert.match(md, /^# mnist-margins \(reduced budget\)/);
    assert.match(md, /\| run \| paper \| ours: test accuracy %/);
    assert.match(md, /\| m = 0 \| 77\.18 \| 50\.50 \| 500 \| 12 \|/);
    assert.match(md, /\| LSTM \| 97\.30 \| failed: exit 1 \| – \| 1 \|/);
    assert.match(md, /!\[validation curves\]\(comparison\.svg\)/);
    assert.match(md, /Departures from the paper's protocol: An epoch is a pass over a seeded permutation/);
    assert.doesNotMatch(md, /over its seeds/, 'one seed per row: no seed table');
  });

  it('results.md: a row run at several seeds gets its mean ± sample standard deviation and range', () => {
    const preset = presetNamed('mnist-margins');
    const run = (seed: number, ours: number | null, status: 'ok' | 'failed' = 'ok') => ({ label: `m = 0.1, seed ${seed}`, row: 'm = 0.1', seed, dir: 'a', status, seconds: 1, ours, paper: 94.1, steps: 10 });
    const md = resultsMarkdown(preset, 'medium', [run(0, 60), run(1, 70), run(2, 80), run(3, null, 'failed'), { label: 'm = 1', row: 'm = 1', dir: 'b', status: 'ok', seconds: 1, ours: 50, paper: 93.84, steps: 10 }],
      { command: 'c', dir: 'runs/x', seconds: 5, seed: 0, overrides: [], commit: null });
    assert.match(md, /\| m = 0\.1 \| 94\.10 \| 3 of 4 \| 70\.00 ± 10\.00 \| 60\.00 – 80\.00 \|/);
    assert.match(md, /\| m = 1 \| 93\.84 \| 1 of 1 \| 50\.00 ± 0\.00 \| 50\.00 – 50\.00 \|/);
    assert.match(md, /rows with several seeds count up from it/);
    assert.match(md, /; 5 runs in 5 s wall\./);
    const continued = resultsMarkdown(preset, 'medium', [run(0, 60)], { command: 'c', dir: 'runs/x', seconds: 943, seed: 0, overrides: [], commit: null, continued: true });
    assert.match(continued, /; 1 runs, 943 s wall in its last invocation \(continued with --continue: each run's own time is in the table\)\./);
  });

  it('sweep --continue keeps finished runs, resumes an interrupted one from its checkpoint and starts one that never began', async () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-continue-'));
    try {
      const out = path.join(tmp, 'sweep');
      const args = ['sweep', '--task', 'copy', '--delay', '5', '--hidden', '8', '--batch-size', '4', '--steps', '4000', '--valid-every', '200', '--valid-size', '8', '--checkpoint-every', '200', '--plot-format', 'none', '--jobs', '1', '--out', out];
      const first = cli([...args.map((a) => (a === '4000' ? '400' : a)), '--grid', 'seed=1']);
      assert.equal(first.code, 0, first.stderr);
      // A second run, interrupted (SIGINT to the sweep's process group) once it has a checkpoint.
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'lib/cli/main.ts'), ...args, '--grid', 'seed=2', '--continue'], { cwd: ROOT, detached: true, stdio: 'ignore' });
      const checkpoint = path.join(out, 'seed-2', 'last.safetensors');
      await until('the second run\'s checkpoint', () => existsSync(checkpoint));
      process.kill(-child.pid!, 'SIGINT');
      await new Promise((r) => child.on('exit', r));
      const interruptedAt = readFileSync(path.join(out, 'seed-2', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; type: string });
      assert.ok(!interruptedAt.some((r) => r.type === 'test'), 'interrupted before its end');
      // Continuing the whole grid: seed 1 is kept, seed 2 resumed to its end, seed 3 started.
      const again = cli([...args, '--grid', 'seed=1,2,3', '--continue']);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /seed-1: ok \(finished before\)/);
      assert.match(again.stdout, /seed-2: ok \(resumed\)/);
      assert.match(again.stdout, /seed-3: ok, test/);
      const records = readFileSync(path.join(out, 'seed-2', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; type: string });
      const steps = records.filter((r) => r.type === 'train').map((r) => r.step);
      assert.equal(new Set(steps).size, steps.length, 'no step recorded twice');
      assert.equal(Math.max(...steps), 4000);
      assert.equal(records.filter((r) => r.type === 'test').length, 1);
      const noOut = cli(['sweep', '--grid', 'seed=1', '--continue']);
      assert.equal(noOut.code, 1);
      assert.match(noOut.stderr, /--continue.*given with --out/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('orthornn sweep --preset: a shrunk copy preset end to end writes its results and figure; misuse is one clear line', () => {
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-preset-'));
    try {
      const out = path.join(tmp, 'copy');
      const r = cli(['sweep', '--preset', 'copy-200-margins', '--delay', '5', '--hidden', '8', '--batch-size', '4', '--steps', '6', '--valid-every', '3', '--valid-size', '8', '--jobs', '2', '--out', out]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /copy-200-margins, reduced budget/);
      assert.match(r.stdout, /not solved in 6 steps|^\s*│ m = 0 +│ – +│ \d+/m);
      const json = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8'));
      assert.equal(json.results.length, 6);
      assert.deepEqual(json.given, { delay: 5, hidden: 8, batchSize: 4, steps: 6, validEvery: 3, validSize: 8 });
      const md = readFileSync(path.join(out, 'results.md'), 'utf8');
      assert.match(md, /overridden on the command line: delay 5, hidden 8, batchSize 4, steps 6, validEvery 3, validSize 8/);
      assert.match(md, /`orthornn sweep --preset copy-200-margins --budget reduced --jobs 2 --delay 5/);
      assert.ok(existsSync(path.join(out, 'comparison.svg')));
      assert.ok(existsSync(path.join(out, '06-none-free-W', 'metrics.jsonl')));

      const both = cli(['sweep', '--preset', 'copy-200-margins', '--grid', 'margin=0,1']);
      assert.equal(both.code, 1);
      assert.match(both.stderr, /^orthornn: .*--grid.*no --grid with --preset/);
      const budget = cli(['sweep', '--grid', 'margin=0', '--budget', 'full']);
      assert.equal(budget.code, 1);
      assert.match(budget.stderr, /--budget.*only with --preset/);
      const unknown = cli(['sweep', '--preset', 'nope']);
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /--preset.*copy-200-margins/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
