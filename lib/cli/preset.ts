/**
 * `orthornn sweep --preset NAME [--budget reduced|full]`: one of the paper's experiments
 * (lib/train/presets.ts) as a sweep, then its results: `results.md` (the table with the paper's
 * numbers beside ours, the command, budget, seeds and wall times), `results.json`, and a
 * comparison figure of the runs' validation curves (each run also keeps its own figures).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import Table from 'cli-table3';
import { rangeError } from '../errors';
import { comparison, type ComparableMetric } from '../plot/figures';
import { readRun, type Run } from '../plot/read';
import { renderSpec } from '../plot/render';
import { flagOf, type TrainConfig } from '../train/config';
import { presetNamed, presetRuns, type Budget, type Preset, type PresetMetric } from '../train/presets';
import type { SweepRun } from './sweep';
import { sweepRuns } from './sweep';

export interface PresetResult {
  label: string;
  dir: string;
  status: SweepRun['status'];
  seconds: number;
  /** The preset's metric for this run (null when it has none: failed, or not solved). */
  ours: number | null;
  /** What `ours` means when it is null or needs a word: 'not solved in 3000 steps'. */
  note?: string;
  paper?: number;
  steps?: number;
}

const METRIC_TITLES: Record<PresetMetric, string> = {
  testAccuracy: 'test accuracy % (best-validation weights)',
  testBitsPerChar: 'test bits per character (best-validation weights)',
  stepsToSolve: 'steps until a validation recalls every symbol',
  bestValidMse: 'best validation MSE (baseline 1/6 ≈ 0.1667)',
};

const CURVES: Record<PresetMetric, ComparableMetric> = {
  testAccuracy: 'accuracy',
  testBitsPerChar: 'bitsPerChar',
  stepsToSolve: 'accuracy',
  bestValidMse: 'mse',
};

/** The preset's metric of one finished run. */
export function presetMetric(metric: PresetMetric, run: Run, budgetSteps: number | undefined): { value: number | null; note?: string } {
  const test = run.test.at(-1);
  switch (metric) {
    case 'testAccuracy':
      return test?.accuracy !== undefined ? { value: 100 * test.accuracy } : { value: null, note: 'no test record' };
    case 'testBitsPerChar':
      return test?.bitsPerChar !== undefined ? { value: test.bitsPerChar } : { value: null, note: 'no test record' };
    case 'stepsToSolve': {
      const solved = run.valid.find((r) => r.accuracy !== undefined && r.accuracy >= 1);
      if (solved) return { value: solved.step };
      const best = Math.max(...run.valid.map((r) => r.accuracy ?? 0), 0);
      return { value: null, note: `not solved${budgetSteps ? ` in ${budgetSteps} steps` : ''} (best recall ${(100 * best).toFixed(1)}%)` };
    }
    case 'bestValidMse': {
      const values = run.valid.map((r) => r.mse ?? NaN).filter(Number.isFinite);
      return values.length ? { value: Math.min(...values) } : { value: null, note: 'no validation record' };
    }
  }
}

/** A row's 'paper' cell, and its 'ours' cell for a run that finished (the value, or why there is none). */
function paperCell(metric: PresetMetric, r: PresetResult): string {
  return r.paper === undefined ? '–' : formatValue(metric, r.paper);
}
function oursCell(metric: PresetMetric, r: PresetResult): string {
  return r.ours === null ? (r.note ?? '–') : formatValue(metric, r.ours);
}

function formatValue(metric: PresetMetric, v: number): string {
  if (metric === 'testAccuracy') return v.toFixed(2);
  if (metric === 'testBitsPerChar') return v.toFixed(3);
  if (metric === 'stepsToSolve') return String(v);
  return v.toPrecision(4);
}

/** The checkout's commit (with '+changes' when the tree differs from it), or null outside git. */
export function commitOf(): string | null {
  const head = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: path.join(__dirname, '..', '..'), encoding: 'utf8' });
  if (head.status !== 0) return null;
  const dirty = spawnSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: path.join(__dirname, '..', '..'), encoding: 'utf8' });
  return `${head.stdout.trim()}${dirty.status === 0 && dirty.stdout.trim() !== '' ? '+changes' : ''}`;
}

/** The command line that reproduces the sweep (the options the user gave, the preset, the budget). */
function commandLine(preset: Preset, budget: Budget, given: Partial<TrainConfig>, jobs: number | undefined): string {
  const flags = Object.entries(given).flatMap(([k, v]) => [flagOf(k), String(v)]);
  return ['orthornn sweep --preset', preset.name, '--budget', budget, ...(jobs ? ['--jobs', String(jobs)] : []), ...flags].join(' ');
}

export function resultsMarkdown(preset: Preset, budget: Budget, results: PresetResult[], info: { command: string; dir: string; seconds: number; seed: number; overrides: string[]; commit: string | null; figure?: string }): string {
  const hasPaper = results.some((r) => r.paper !== undefined);
  const head = ['run', ...(hasPaper ? ['paper'] : []), `ours: ${METRIC_TITLES[preset.metric]}`, 'steps', 'wall s'];
  const lines = [
    `# ${preset.name} (${budget} budget)`,
    '',
    preset.description + '.',
    '',
    `- Command: \`${info.command}\`${info.commit ? ` at commit ${info.commit}` : ''}`,
    `- Budget: ${budget} (${Object.entries(preset.budgets[budget]).map(([k, v]) => `${k} ${v}`).join(', ')})${info.overrides.length ? `; overridden on the command line: ${info.overrides.join(', ')}` : ''}; seed ${info.seed}; ${results.length} runs in ${info.seconds.toFixed(0)} s wall.`,
    `- Shared options: ${Object.entries(preset.base).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    `- To compare with: ${preset.paperFinding}.`,
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
  ];
  for (const r of results) {
    const ours = r.status !== 'ok' ? `failed${r.note ? `: ${r.note}` : ''}` : oursCell(preset.metric, r);
    lines.push(`| ${[r.label, ...(hasPaper ? [paperCell(preset.metric, r)] : []), ours, String(r.steps ?? '–'), r.seconds.toFixed(0)].join(' | ')} |`);
  }
  if (info.figure) lines.push('', `![validation curves](${info.figure})`);
  lines.push('', `Each run's folder under \`${info.dir}\` holds its config, metrics and figures.`, '');
  return lines.join('\n');
}

/** A preset sweep before it runs: the preset, budget, the user's options and the runs. */
export interface PresetPlan {
  preset: Preset;
  budget: Budget;
  /** The training options given on the command line (no `out`). */
  user: Partial<TrainConfig>;
  runs: ReturnType<typeof presetRuns>;
}

/** Checks `sweep --preset` flags and lists the preset's runs at the budget, with the user's options over them. */
export function presetPlan(name: string, given: Partial<TrainConfig>, flags: Record<string, unknown>): PresetPlan {
  if (((flags.grid as string[] | undefined) ?? []).length > 0) throw rangeError('sweep', '--grid', 'no --grid with --preset (the preset is the grid)', (flags.grid as string[]).join(' '));
  const preset = presetNamed(name);
  const budget = (flags.budget ?? 'reduced') as Budget;
  if (budget !== 'reduced' && budget !== 'full') throw rangeError('sweep', '--budget', "'reduced' or 'full'", String(budget));
  const { out: _out, ...user } = given;
  return { preset, budget, user, runs: presetRuns(preset, budget, user) };
}

export async function presetCommand(name: string, given: Partial<TrainConfig>, flags: Record<string, unknown>): Promise<void> {
  const plan = presetPlan(name, given, flags);
  const { preset, budget, runs } = plan;
  const dir = given.out || path.join('runs', `${preset.name}-${budget}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  const plotFormat = (flags.plotFormat as 'svg' | 'png' | 'none' | undefined) ?? 'svg';
  const log = (l: string) => process.stdout.write(`${l}\n`);
  log(`${preset.name}, ${budget} budget: ${preset.description}`);
  const commit = commitOf();  // the code the runs start with
  const started = performance.now();
  const { runs: done } = await sweepRuns({ out: dir }, runs.map((r) => ({ name: r.name, values: r.values })), {
    jobs: flags.jobs as number | undefined,
    threads: flags.threads as number | undefined,
    plotFormat,
    log,
  });
  const seconds = (performance.now() - started) / 1000;
  await writePresetResults(plan, done, { dir, seconds, commit, plotFormat, jobs: flags.jobs as number | undefined, log });
  if (done.some((r) => r.status !== 'ok')) process.exitCode = 1;
}

/**
 * A preset sweep's results from its finished runs (in the plan's order): `results.md`,
 * `results.json` and the comparison figure in `dir`, and the table printed through `log`.
 */
export async function writePresetResults(plan: PresetPlan, done: SweepRun[], info: { dir: string; seconds: number; commit: string | null; plotFormat: 'svg' | 'png' | 'none'; jobs?: number; log: (line: string) => void }): Promise<void> {
  const { preset, budget, user, runs } = plan;
  const { dir, seconds, commit, plotFormat, log } = info;
  const results: PresetResult[] = [];
  const curves: { label: string; run: Run }[] = [];
  for (let i = 0; i < runs.length; i++) {
    const r = done[i];
    const result: PresetResult = { label: runs[i].label, dir: r.dir, status: r.status, seconds: r.seconds, ours: null, paper: runs[i].paper, steps: r.steps };
    if (r.status === 'ok') {
      const run = await readRun('sweep', r.dir);
      const m = presetMetric(preset.metric, run, runs[i].values.steps || undefined);
      result.ours = m.value;
      result.note = m.note;
      curves.push({ label: runs[i].label, run });
    } else {
      result.note = r.error;
    }
    results.push(result);
  }
  let figure: string | undefined;
  if (plotFormat !== 'none') {
    const baseline = preset.metric === 'bestValidMse' ? { value: 1 / 6, label: 'baseline 1/6' } : undefined;
    const spec = comparison(curves, CURVES[preset.metric], `${preset.name} (${budget} budget)`, 640, baseline);
    if (spec) {
      figure = `comparison.${plotFormat}`;
      await writeFile(path.join(dir, figure), await renderSpec(spec, plotFormat));
    }
  }
  const seed = runs[0]?.values.seed ?? 0;
  const overrides = Object.entries(user).map(([k, v]) => `${k} ${v}`);
  const markdown = resultsMarkdown(preset, budget, results, { command: commandLine(preset, budget, user, info.jobs), dir, seconds, seed, overrides, commit, figure });
  writeFileSync(path.join(dir, 'results.md'), markdown);
  writeFileSync(path.join(dir, 'results.json'), `${JSON.stringify({ preset: preset.name, budget, commit, seconds, seed, given: user, results }, null, 2)}\n`);

  const table = new Table({ head: ['run', 'paper', 'ours', 'steps', 'seconds'], style: { head: [], border: [] } });
  for (const r of results) {
    table.push([r.label, paperCell(preset.metric, r), r.status !== 'ok' ? 'failed' : oursCell(preset.metric, r), String(r.steps ?? '–'), r.seconds.toFixed(1)]);
  }
  log(`${table.toString()}\n${METRIC_TITLES[preset.metric]}\nresults: ${path.join(dir, 'results.md')}`);
}
