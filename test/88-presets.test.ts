/**
 * 88: the paper's experiments as sweep presets: every preset's runs are valid configurations at
 * both budgets, the user's options and a row's defining options combine as documented, the
 * results' metrics are read off the records as documented, and `orthornn sweep --preset` runs
 * a preset end to end (shrunk by command-line options) and writes results.md, results.json and
 * the comparison figure.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { presetMetric, resultsMarkdown } from '../lib/cli/preset';
import type { Run } from '../lib/plot/read';
import { resolveConfig } from '../lib/train/config';
import { PRESETS, presetNamed, presetRuns } from '../lib/train/presets';
import type { EvalRecord } from '../lib/train/records';

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

  it('every preset, at both budgets, is a list of valid configurations with distinct run names', () => {
    assert.ok(Object.keys(PRESETS).length >= 10);
    for (const preset of Object.values(PRESETS)) {
      for (const budget of ['reduced', 'full'] as const) {
        const runs = presetRuns(preset, budget, { dataDir: '/data' });
        assert.equal(runs.length, preset.rows.length, preset.name);
        assert.equal(new Set(runs.map((r) => r.name)).size, runs.length, `${preset.name}: run names`);
        for (const r of runs) assert.doesNotThrow(() => resolveConfig({ ...r.values, out: 'x' }), `${preset.name} ${budget} ${r.label}`);
      }
    }
  });

  it('the MNIST presets carry the paper table of DESIGN §3, row by row', () => {
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
    assert.equal(presetRuns(preset, 'reduced')[0].values.steps, preset.budgets.reduced.steps);
    assert.equal(presetRuns(preset, 'full')[0].values.steps, preset.budgets.full.steps);
    const mnist = presetRuns(presetNamed('mnist-margins'), 'reduced', { steps: 20 });
    assert.equal(mnist[0].values.epochs, undefined, "the user's steps replace the budget's epochs");
    assert.doesNotThrow(() => resolveConfig({ ...mnist[8].values, out: 'x' }), 'the LSTM row drops the options an LSTM refuses');
    const lstm = presetRuns(presetNamed('mnist-margins'), 'reduced')[8];
    assert.equal(lstm.label, 'LSTM (epochs 0.5)');
    assert.equal(lstm.values.epochs, 0.5);
    assert.equal(presetRuns(presetNamed('mnist-margins'), 'full')[8].values.epochs, 100);
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
