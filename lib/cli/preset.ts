/**
 * `orthornn sweep --preset NAME [--budget reduced|medium|full]`: one of the paper's experiments
 * (lib/train/presets.ts) as a sweep, then its results: `results.md` (the table with the paper's
 * numbers beside ours, per row the mean and spread over its seeds, the command, budget, the
 * protocol's departures and wall times), `results.json`, and a comparison figure of the runs'
 * validation curves (each run also keeps its own figures).
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
import { BUDGETS, presetNamed, presetRuns, type Budget, type Preset, type PresetMetric, type PresetRun } from '../train/presets';
import type { SweepRun } from './sweep';
import { groupFlag, sweepRuns } from './sweep';

export interface PresetResult {
  label: string;
  /** The row's label: the runs of one row (its seeds) share it. */
  row?: string;
  seed?: number;
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

/** The runs of each row, in order: a row with several seeds is one group. */
export function rowGroups(results: PresetResult[]): PresetResult[][] {
  const groups = new Map<string, PresetResult[]>();
  for (const r of results) {
    const key = r.row ?? r.label;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  return [...groups.values()];
}

/** Mean, sample standard deviation, min and max of a row's values (the runs that have one). */
export function spread(values: number[]): { mean: number; sd: number; min: number; max: number; n: number } {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, sd, min: Math.min(...values), max: Math.max(...values), n };
}

export function resultsMarkdown(preset: Preset, budget: Budget, results: PresetResult[], info: { command: string; dir: string; seconds: number; seed: number; overrides: string[]; commit: string | null; figure?: string; continued?: boolean }): string {
  const hasPaper = results.some((r) => r.paper !== undefined);
  const head = ['run', ...(hasPaper ? ['paper'] : []), `ours: ${METRIC_TITLES[preset.metric]}`, 'steps', 'wall s'];
  const groups = rowGroups(results);
  const seeded = groups.some((g) => g.length > 1);
  const lines = [
    `# ${preset.name} (${budget} budget)`,
    '',
    preset.description + '.',
    '',
    `- Command: \`${info.command}\`${info.commit ? ` at commit ${info.commit}` : ''}`,
    `- Budget: ${budget} (${Object.entries(preset.budgets[budget]).map(([k, v]) => `${k} ${v}`).join(', ')})${info.overrides.length ? `; overridden on the command line: ${info.overrides.join(', ')}` : ''}; seed ${info.seed}${seeded ? ' (rows with several seeds count up from it)' : ''}; ${results.length} runs${info.continued ? `, ${info.seconds.toFixed(0)} s wall in its last invocation (continued with --continue: each run's own time is in the table)` : ` in ${info.seconds.toFixed(0)} s wall`}.`,
    `- Shared options: ${Object.entries(preset.base).map(([k, v]) => `${k} ${v}`).join(', ')}.`,
    `- To compare with: ${preset.paperFinding}.`,
    `- Departures from the paper's protocol: ${preset.departures.join(' ')}`,
    '',
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
  ];
  for (const r of results) {
    const ours = r.status !== 'ok' ? `failed${r.note ? `: ${r.note}` : ''}` : oursCell(preset.metric, r);
    lines.push(`| ${[r.label, ...(hasPaper ? [paperCell(preset.metric, r)] : []), ours, String(r.steps ?? '–'), r.seconds.toFixed(0)].join(' | ')} |`);
  }
  if (seeded) {
    lines.push('', 'Per row, over its seeds (mean ± sample standard deviation, and the range):', '', `| row | ${hasPaper ? 'paper | ' : ''}seeds | mean ± sd | min – max |`, `|---|${hasPaper ? '---|' : ''}---|---|---|`);
    for (const g of groups) {
      const values = g.filter((r) => r.status === 'ok' && r.ours !== null).map((r) => r.ours!);
      const row = g[0].row ?? g[0].label;
      const cells = values.length === 0 ? ['–', '–']
        : (() => { const s = spread(values); return [`${formatValue(preset.metric, s.mean)} ± ${formatValue(preset.metric, s.sd)}`, `${formatValue(preset.metric, s.min)} – ${formatValue(preset.metric, s.max)}`]; })();
      lines.push(`| ${[row, ...(hasPaper ? [paperCell(preset.metric, g[0])] : []), `${values.length} of ${g.length}`, ...cells].join(' | ')} |`);
    }
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
  runs: PresetRun[];
}

/** Checks `sweep --preset` flags and lists the preset's runs at the budget, with the user's options over them. */
export function presetPlan(name: string, given: Partial<TrainConfig>, flags: Record<string, unknown>): PresetPlan {
  if (((flags.grid as string[] | undefined) ?? []).length > 0) throw rangeError('sweep', '--grid', 'no --grid with --preset (the preset is the grid)', (flags.grid as string[]).join(' '));
  const preset = presetNamed(name);
  const budget = (flags.budget ?? 'reduced') as Budget;
  if (!(BUDGETS as readonly string[]).includes(budget)) throw rangeError('sweep', '--budget', BUDGETS.map((b) => `'${b}'`).join(', '), String(budget));
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
    continue: flags.continue === true,
    group: groupFlag(given, flags),
  });
  const seconds = (performance.now() - started) / 1000;
  await writePresetResults(plan, done, { dir, seconds, commit, plotFormat, jobs: flags.jobs as number | undefined, continued: flags.continue === true, log });
  if (done.some((r) => r.status !== 'ok')) process.exitCode = 1;
}

/**
 * A preset sweep's results from its finished runs (in the plan's order): `results.md`,
 * `results.json` and the comparison figure in `dir`, and the table printed through `log`.
 */
export async function writePresetResults(plan: PresetPlan, done: SweepRun[], info: { dir: string; seconds: number; commit: string | null; plotFormat: 'svg' | 'png' | 'none'; jobs?: number; continued?: boolean; log: (line: string) => void }): Promise<void> {
  const { preset, budget, user, runs } = plan;
  const { dir, seconds, commit, plotFormat, log } = info;
  const results: PresetResult[] = [];
  const curves: { label: string; run: Run }[] = [];
  for (let i = 0; i < runs.length; i++) {
    const r = done[i];
    const result: PresetResult = { label: runs[i].label, row: runs[i].row, seed: runs[i].values.seed, dir: r.dir, status: r.status, seconds: r.seconds, ours: null, paper: runs[i].paper, steps: r.steps };
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
  const markdown = resultsMarkdown(preset, budget, results, { command: commandLine(preset, budget, user, info.jobs), dir, seconds, seed, overrides, commit, figure, continued: info.continued });
  writeFileSync(path.join(dir, 'results.md'), markdown);
  writeFileSync(path.join(dir, 'results.json'), `${JSON.stringify({ preset: preset.name, budget, commit, seconds, seed, given: user, results }, null, 2)}\n`);

  const table = new Table({ head: ['run', 'paper', 'ours', 'steps', 'seconds'], style: { head: [], border: [] } });
  for (const r of results) {
    table.push([r.label, paperCell(preset.metric, r), r.status !== 'ok' ? 'failed' : oursCell(preset.metric, r), String(r.steps ?? '–'), r.seconds.toFixed(1)]);
  }
  log(`${table.toString()}\n${METRIC_TITLES[preset.metric]}\nresults: ${path.join(dir, 'results.md')}`);
}
