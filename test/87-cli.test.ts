import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expandGrid } from '../lib/cli/sweep';
import { loadModel } from '../lib/models/files';

const ROOT = path.join(__dirname, '..');

/** Runs the CLI from its TypeScript source, as `orthornn …`. */
function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'lib/cli/main.ts'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 240_000,
    env: { ...process.env, ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('87 cli: orthornn train, eval, plot, sweep', function () {
  this.timeout(300_000);
  let tmp: string;
  before(() => {
    tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-cli-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  const tiny = ['--task', 'copy', '--delay', '5', '--hidden', '16', '--batch-size', '8', '--valid-every', '20', '--valid-size', '40'];

  it('train: a run folder with config, metrics, checkpoints and the four figures; then --resume continues it', () => {
    const out = path.join(tmp, 'run');
    const r = cli(['train', ...tiny, '--steps', '40', '--out', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /task copy, model svd \(16 units, margin 0\.01, identity, float32\)/);
    assert.match(r.stdout, /test on the best weights: loss [0-9.e-]+, accuracy [0-9.]+%/);
    assert.match(r.stdout, /plots: .*learning-curves\.svg/);
    assert.deepEqual(readdirSync(path.join(out, 'plots')).sort(), ['gradient-norms.svg', 'learning-curves.svg', 'orthogonality.svg', 'singular-values.svg']);
    assert.equal(JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')).hidden, 16);
    const resumed = cli(['train', '--resume', out, '--steps', '60', '--plot-format', 'none']);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout, /resuming .* at step 40/);
    assert.match(resumed.stdout, /after 60 steps/);
    const steps = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    assert.equal(Math.max(...steps), 60);
  });

  it('eval: a run folder (its best weights) or a checkpoint file, as text or JSON', () => {
    const out = path.join(tmp, 'run');
    const text = cli(['eval', out]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /best\.safetensors \(step \d+\), test split, 40 sequences: loss [0-9.e-]+, accuracy/);
    const json = cli(['eval', path.join(out, 'last.safetensors'), '--split', 'valid', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const m = JSON.parse(json.stdout);
    assert.equal(m.step, 60);
    assert.equal(m.split, 'valid');
    assert.ok(m.loss > 0 && m.accuracy >= 0 && m.accuracy <= 1);
  });

  it('export: the run as ONNX and as a model file that loadModel reads', async () => {
    const run = path.join(tmp, 'run');
    const onnx = cli(['export', run]);
    assert.equal(onnx.code, 0, onnx.stderr);
    assert.equal(onnx.stdout.trim(), path.join(run, 'model.onnx'));
    assert.ok(readFileSync(path.join(run, 'model.onnx')).length > 1000);
    const file = path.join(tmp, 'exported.safetensors');
    const model = cli(['export', run, '--format', 'safetensors', '--out', file]);
    assert.equal(model.code, 0, model.stderr);
    const loaded = await loadModel(file);
    assert.equal(loaded.hiddenSize, 16);
    loaded.dispose();
    const bad = cli(['export', run, '--format', 'tflite']);
    assert.equal(bad.code, 1);
  });

  it('plot: PNG figures into a chosen folder', () => {
    const dir = path.join(tmp, 'figs');
    const r = cli(['plot', path.join(tmp, 'run'), '--format', 'png', '--out', dir]);
    assert.equal(r.code, 0, r.stderr);
    for (const f of r.stdout.trim().split('\n')) {
      assert.ok(existsSync(f), f);
      assert.deepEqual([...readFileSync(f).subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47], `${f} is a PNG`);
    }
  });

  it('sweep: every combination in its own folder, two processes at once, and a summary table', () => {
    const out = path.join(tmp, 'sweep');
    const r = cli(['sweep', ...tiny, '--steps', '20', '--plot-format', 'none', '--grid', 'margin=0,0.1', 'seed=1,2', '--jobs', '2', '--out', out]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /sweep of 4 runs, 2 at a time/);
    assert.match(r.stdout, /│ margin │ seed │ status │ steps │ best valid │ test/);
    const summary = JSON.parse(readFileSync(path.join(out, 'summary.json'), 'utf8'));
    assert.deepEqual(summary.runs.map((x: { name: string }) => x.name), ['margin-0_seed-1', 'margin-0_seed-2', 'margin-0.1_seed-1', 'margin-0.1_seed-2']);
    for (const run of summary.runs) {
      assert.equal(run.status, 'ok');
      assert.equal(run.steps, 20);
      assert.equal(JSON.parse(readFileSync(path.join(run.dir, 'config.json'), 'utf8')).margin, run.values.margin);
    }
  });

  it('grids expand in order and refuse unknown keys and bad values', () => {
    assert.deepEqual(expandGrid(['margin=0,1', 'hidden=8']), [{ margin: 0, hidden: 8 }, { margin: 1, hidden: 8 }]);
    assert.throws(() => expandGrid(['margn=0']), /unknown key 'margn'/);
    assert.throws(() => expandGrid(['hidden=a']), /'hidden' must be an integer/);
    assert.throws(() => expandGrid(['out=x']), /'out'/);
    assert.throws(() => expandGrid(['margin']), /key=value/);
  });

  it('bad input: one clear line on stderr and exit code 1, never a stack trace', () => {
    for (const [args, message] of [
      [['train', '--hidden', '0'], /'hidden' must be ≥ 1/],
      [['train', '--lr', 'fast'], /'lr' must be a number/],
      [['train', '--bogus', '1'], /unknown option '--bogus'/],
      [['train', '--task', 'ptb'], /'dataDir'/],
      [['eval', path.join(tmp, 'missing')], /does not exist/],
      [['plot', path.join(tmp, 'missing')], /missing/],
      [['sweep', '--steps', '1'], /--grid/],
    ] as const) {
      const r = cli([...args]);
      assert.equal(r.code, 1, `${args.join(' ')}: exit code ${r.code}, stderr ${r.stderr}`);
      assert.match(r.stderr, message);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  });
});
