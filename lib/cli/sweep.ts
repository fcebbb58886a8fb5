/**
 * `orthornn sweep`: every combination of a grid of training options, run as separate
 * `orthornn train` processes a few at a time (each with its share of the cores), then one
 * summary table of the best validation and the test metrics per run.
 */
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Table from 'cli-table3';
import { rangeError } from '../errors';
import { flagOf, OPTIONS, parseOption, resolveConfig, type TrainConfig } from '../train/config';
import { readRun, type Run } from '../plot/read';
import { runFolderState } from '../train/run-folder';
import type { EvalRecord } from '../train/records';
import { headlineMetric } from './train';

export interface SweepRun {
  name: string;
  values: Partial<TrainConfig>;
  dir: string;
  status: 'ok' | 'failed';
  exitCode: number | null;
  seconds: number;
  steps?: number;
  best?: EvalRecord;
  test?: EvalRecord;
  error?: string;
}

/** Parses `key=v1,v2` entries into the list of combinations (in order, the last key varying fastest). */
export function expandGrid(entries: string[]): Partial<TrainConfig>[] {
  let combos: Record<string, unknown>[] = [{}];
  const seen = new Set<string>();
  for (const entry of entries) {
    const eq = entry.indexOf('=');
    if (eq < 1) throw rangeError('sweep', '--grid', "entries 'key=value1,value2,…'", JSON.stringify(entry));
    const key = entry.slice(0, eq).trim();
    if (!(key in OPTIONS)) throw rangeError('sweep', '--grid', `keys among ${Object.keys(OPTIONS).join(', ')}`, `unknown key '${key}'`);
    if (key === 'out') throw rangeError('sweep', '--grid', 'training options other than out (each run gets its own folder)', "'out'");
    if (seen.has(key)) throw rangeError('sweep', '--grid', 'each key once', `'${key}' twice`);
    seen.add(key);
    const values = entry.slice(eq + 1).split(',').map((v) => parseOption(key, v.trim()));
    if (values.length === 0 || entry.slice(eq + 1).trim() === '') throw rangeError('sweep', '--grid', `values for '${key}'`, 'none');
    combos = combos.flatMap((c) => values.map((v) => ({ ...c, [key]: v })));
  }
  return combos as Partial<TrainConfig>[];
}

/** A run's folder name: its grid values, e.g. 'margin-0.1_seed-2'. */
export function runName(values: Partial<TrainConfig>): string {
  const parts = Object.entries(values).map(([k, v]) => `${k}-${String(v)}`);
  return (parts.join('_') || 'run').replace(/[^A-Za-z0-9._=-]/g, '_');
}

function flagsOf(options: Partial<TrainConfig>): string[] {
  return Object.entries(options).flatMap(([k, v]) => [flagOf(k), String(v)]);
}

/**
 * A finished run's row of the summary, read from its folder: the best validation and test
 * records and the last step. `ok` needs exit code 0 and no error; a failed run keeps `error`.
 */
export async function sweepRunOf(name: string, values: Partial<TrainConfig>, dir: string, end: { exitCode: number | null; seconds: number; error?: string }): Promise<SweepRun> {
  let run: Run | undefined;
  try {
    run = await readRun('sweep', dir);
  } catch {
    // no metrics, or a torn file: the run failed anyway
  }
  const records = run ? [...run.train, ...run.valid, ...run.test, ...run.gradientNorms] : [];
  const test = run?.test.at(-1);
  const best = test ? run!.valid.find((v) => v.step === test.step) : undefined;
  const steps = records.reduce((m, r) => Math.max(m, r.step), 0) || undefined;
  const ok = end.exitCode === 0 && !end.error;
  return { name, values, dir, status: ok ? 'ok' : 'failed', exitCode: end.exitCode, seconds: end.seconds, steps, best, test, error: ok ? undefined : end.error };
}

/** Runs one child `orthornn train` (or `train --resume` of its folder); resolves with its summary (never rejects). */
function runOne(base: Partial<TrainConfig>, values: Partial<TrainConfig>, dir: string, threads: number, plotFormat: string, resume = false): Promise<SweepRun> {
  const name = path.basename(dir);
  mkdirSync(dir, { recursive: true });
  const log = createWriteStream(path.join(dir, 'train.log'), { flags: resume ? 'a' : 'w' });
  const script = path.join(__dirname, `main${path.extname(__filename)}`);
  const how = resume ? ['--resume', dir] : flagsOf({ ...base, ...values, out: dir });
  const args = [...process.execArgv, script, 'train', '--quiet', '--plot-format', plotFormat, ...how];
  const env = { ...process.env, ORTHORNN_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout.pipe(log, { end: false });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      log.write(chunk);
    });
    const finish = async (exitCode: number | null, error?: string) => {
      log.end();
      const seconds = (performance.now() - started) / 1000;
      resolve(await sweepRunOf(name, values, dir, { exitCode, seconds, error: error ?? (exitCode === 0 ? undefined : stderr.trim().split('\n').pop()) }));
    };
    child.on('error', (err) => void finish(null, err.message));
    child.on('close', (code) => void finish(code));
  });
}

export function summaryTable(runs: SweepRun[], keys: string[]): string {
  const table = new Table({ head: [...keys, 'status', 'steps', 'best valid', 'test', 'seconds'], style: { head: [], border: [] } });
  for (const r of runs) {
    table.push([...keys.map((k) => String(r.values[k as keyof TrainConfig])), r.status === 'ok' ? 'ok' : `failed: ${r.error ?? `exit ${r.exitCode}`}`.slice(0, 60),
      String(r.steps ?? '–'), headlineMetric(r.best, 2), headlineMetric(r.test, 2), r.seconds.toFixed(1)]);
  }
  return table.toString();
}

export interface SweepOptions {
  jobs?: number;
  threads?: number;
  plotFormat?: 'svg' | 'png' | 'none';
  log?: (line: string) => void;
  /** Continue the sweep already in `base.out`: finished runs are kept, interrupted ones resumed. */
  continue?: boolean;
}

export async function sweep(base: Partial<TrainConfig>, grid: string[], options: SweepOptions = {}): Promise<{ dir: string; runs: SweepRun[]; table: string }> {
  const combos = expandGrid(grid);
  const { dir, runs } = await sweepRuns(base, combos.map((values) => ({ name: runName(values), values })), options);
  return { dir, runs, table: writeSweepSummary(dir, base, grid, runs) };
}

/** Writes a grid sweep's summary.json and summary.txt into its folder; returns the table. */
export function writeSweepSummary(dir: string, base: Partial<TrainConfig>, grid: string[], runs: SweepRun[]): string {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.values)))];
  const table = summaryTable(runs, keys);
  writeFileSync(path.join(dir, 'summary.json'), `${JSON.stringify({ base: withoutOut(base), grid, runs }, null, 2)}\n`);
  writeFileSync(path.join(dir, 'summary.txt'), `${table}\n`);
  return table;
}

export function withoutOut(base: Partial<TrainConfig>): Partial<TrainConfig> {
  const { out: _out, ...rest } = base;
  return rest;
}

/**
 * Runs named configurations (each over `base`) as separate `orthornn train` processes, `jobs`
 * at a time, each in `<base.out or runs/sweep-…>/<name>`.
 */
export async function sweepRuns(base: Partial<TrainConfig>, combos: { name: string; values: Partial<TrainConfig> }[], options: SweepOptions = {}): Promise<{ dir: string; runs: SweepRun[] }> {
  // Every combination must be a valid configuration before anything starts.
  for (const c of combos) resolveConfig({ ...base, ...c.values, out: 'x' });
  const cores = Math.max(1, os.availableParallelism());
  const jobs = Math.min(combos.length, options.jobs ?? Math.max(1, Math.floor(cores / 2)));
  const threads = options.threads ?? Math.max(1, Math.floor(cores / jobs));
  if (options.continue && !base.out) throw rangeError('sweep', '--continue', 'given with --out, the folder of the sweep to continue', 'no --out');
  const dir = base.out || path.join('runs', `sweep-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  const rest = withoutOut(base);
  if (options.continue && !existsSync(dir)) throw rangeError('sweep', '--out', 'the folder of a sweep to continue', `'${dir}', which does not exist`);
  mkdirSync(dir, { recursive: true });
  const log = options.log ?? (() => {});
  log(`sweep of ${combos.length} runs, ${jobs} at a time with ${threads} thread(s) each → ${dir}`);
  const runs: SweepRun[] = new Array(combos.length);
  let next = 0;
  const worker = async () => {
    while (next < combos.length) {
      const i = next++;
      const runDir = path.join(dir, combos[i].name);
      const state = options.continue ? runFolderState(runDir) : 'fresh';
      let r: SweepRun;
      if (state === 'finished') {
        // Its wall time is the trainer's own clock (a resumed run's goes on across processes).
        const done = await sweepRunOf(combos[i].name, combos[i].values, runDir, { exitCode: 0, seconds: 0 });
        r = { ...done, seconds: done.test?.time ?? 0 };
      } else {
        if (state === 'fresh' && options.continue) rmSync(runDir, { recursive: true, force: true });
        r = await runOne(rest, combos[i].values, runDir, threads, options.plotFormat ?? 'svg', state === 'resumable');
        if (state === 'resumable' && r.test) r.seconds = r.test.time;
      }
      runs[i] = r;
      const how = state === 'finished' ? ' (finished before)' : state === 'resumable' ? ' (resumed)' : '';
      log(`[${runs.filter(Boolean).length}/${combos.length}] ${r.name}: ${r.status}${how}${r.status === 'ok' ? `, test ${headlineMetric(r.test, 2)}` : ` (${r.error})`} in ${r.seconds.toFixed(1)} s`);
    }
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  return { dir, runs };
}

export async function sweepCommand(base: Partial<TrainConfig>, flags: Record<string, unknown>): Promise<void> {
  const grid = (flags.grid as string[] | undefined) ?? [];
  if (flags.budget !== undefined) throw rangeError('sweep', '--budget', 'only with --preset', String(flags.budget));
  if (grid.length === 0) throw rangeError('sweep', '--grid', 'at least one key=values entry (or --preset NAME)', 'none');
  const { dir, runs, table } = await sweep(base, grid, { jobs: flags.jobs as number | undefined, threads: flags.threads as number | undefined, plotFormat: flags.plotFormat as 'svg' | 'png' | 'none', log: (l) => process.stdout.write(`${l}\n`), continue: flags.continue === true });
  process.stdout.write(`${table}\nsummary: ${path.join(dir, 'summary.json')}\n`);
  if (runs.some((r) => r.status !== 'ok')) process.exitCode = 1;
}
