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
import { MAX_MEMBERS, sharedKeyOf } from '../train/group';
import { checkpointStep, runFolderState } from '../train/run-folder';
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
  /** Train compatible runs as one group each (`orthornn group`): one process, one batch per step for all. */
  group?: boolean;
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

/** A process of a sweep: one run, or several compatible ones trained as a group; fresh or resumed. */
interface Unit {
  members: number[];
  resume: boolean;
}

/**
 * The processes that train the runs not finished yet. Without `group`, one per run. With it,
 * runs that can train as one group (lib/train/group.ts: the same shared keys) and stand at the
 * same place (all fresh, or resumable from checkpoints of the same step) share one.
 */
function unitsOf(configs: TrainConfig[], pending: number[], states: ('resumable' | 'fresh')[], dirs: string[], group: boolean): Unit[] {
  if (!group) return pending.map((i) => ({ members: [i], resume: states[i] === 'resumable' }));
  const units: Unit[] = [];
  const filling = new Map<string, Unit>();
  for (const i of pending) {
    const resume = states[i] === 'resumable';
    const key = `${sharedKeyOf(configs[i])} ${resume ? checkpointStep(path.join(dirs[i], 'last.safetensors')) : 'fresh'}`;
    let unit = filling.get(key);
    if (!unit || unit.members.length === MAX_MEMBERS) {
      unit = { members: [], resume };
      filling.set(key, unit);
      units.push(unit);
    }
    unit.members.push(i);
  }
  return units;
}

/** Runs one unit as a child process (`orthornn train`, or `orthornn group` for several runs); resolves with its runs' summaries (never rejects). */
function runUnit(dir: string, base: Partial<TrainConfig>, combos: { name: string; values: Partial<TrainConfig> }[], unit: Unit, threads: number, plotFormat: string): Promise<SweepRun[]> {
  const dirs = unit.members.map((i) => path.join(dir, combos[i].name));
  for (const d of dirs) mkdirSync(d, { recursive: true });
  const logs = dirs.map((d) => createWriteStream(path.join(d, 'train.log'), { flags: unit.resume ? 'a' : 'w' }));
  const script = path.join(__dirname, `main${path.extname(__filename)}`);
  let how: string[];
  if (unit.members.length === 1) {
    const only = unit.members[0];
    how = ['train', ...(unit.resume ? ['--resume', dirs[0]] : flagsOf({ ...base, ...combos[only].values, out: dirs[0] }))];
  } else if (unit.resume) {
    how = ['group', '--resume', ...dirs];
  } else {
    // The members' file, beside their folders: what `orthornn group` reads.
    const file = path.join(dir, `group-${combos[unit.members[0]].name}.json`);
    writeFileSync(file, `${JSON.stringify(unit.members.map((i, k) => ({ ...base, ...combos[i].values, out: dirs[k] })), null, 2)}\n`);
    how = ['group', file];
  }
  const args = [...process.execArgv, script, ...how, '--quiet', '--plot-format', plotFormat];
  const env = { ...process.env, ORTHORNN_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => logs.forEach((l) => l.write(chunk)));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      logs.forEach((l) => l.write(chunk));
    });
    const finish = async (exitCode: number | null, error?: string) => {
      for (const l of logs) l.end();
      const seconds = (performance.now() - started) / 1000;
      const why = error ?? (exitCode === 0 ? undefined : stderr.trim().split('\n').pop());
      resolve(await Promise.all(unit.members.map(async (i, k) => {
        const r = await sweepRunOf(combos[i].name, combos[i].values, dirs[k], { exitCode, seconds, error: why });
        // A resumed run's, or a group member's, wall time is the trainer's own clock (it goes on
        // across processes, and ends where the member ended).
        if (r.test && (unit.resume || unit.members.length > 1)) r.seconds = r.test.time;
        return r;
      })));
    };
    child.on('error', (err) => void finish(null, err.message));
    child.on('close', (code) => void finish(code));
  });
}

/**
 * Runs named configurations (each over `base`) as separate `orthornn train` processes, `jobs`
 * at a time, each in `<base.out or runs/sweep-…>/<name>`; with `group`, compatible runs as one
 * `orthornn group` process each.
 */
export async function sweepRuns(base: Partial<TrainConfig>, combos: { name: string; values: Partial<TrainConfig> }[], options: SweepOptions = {}): Promise<{ dir: string; runs: SweepRun[] }> {
  // Every combination must be a valid configuration before anything starts.
  const configs = combos.map((c) => resolveConfig({ ...base, ...c.values, out: 'x' }));
  if (options.continue && !base.out) throw rangeError('sweep', '--continue', 'given with --out, the folder of the sweep to continue', 'no --out');
  const dir = base.out || path.join('runs', `sweep-${new Date().toISOString().replace(/[:.]/g, '-')}`);
  const rest = withoutOut(base);
  if (options.continue && !existsSync(dir)) throw rangeError('sweep', '--out', 'the folder of a sweep to continue', `'${dir}', which does not exist`);
  mkdirSync(dir, { recursive: true });
  const log = options.log ?? (() => {});
  const dirs = combos.map((c) => path.join(dir, c.name));
  const states = dirs.map((d) => (options.continue ? runFolderState(d) : 'fresh'));
  const runs: SweepRun[] = new Array(combos.length);
  const report = (i: number, how: string) => {
    const r = runs[i];
    log(`[${runs.filter(Boolean).length}/${combos.length}] ${r.name}: ${r.status}${how}${r.status === 'ok' ? `, test ${headlineMetric(r.test, 2)}` : ` (${r.error})`} in ${r.seconds.toFixed(1)} s`);
  };
  const pending: number[] = [];
  for (const [i, state] of states.entries()) {
    if (state !== 'finished') {
      pending.push(i);
      if (state === 'fresh' && options.continue) rmSync(dirs[i], { recursive: true, force: true });
    }
  }
  const units = unitsOf(configs, pending, states as ('resumable' | 'fresh')[], dirs, options.group === true);
  const cores = Math.max(1, os.availableParallelism());
  const jobs = Math.max(1, Math.min(units.length, options.jobs ?? Math.max(1, Math.floor(cores / 2))));
  const threads = options.threads ?? Math.max(1, Math.floor(cores / jobs));
  const grouped = units.filter((u) => u.members.length > 1);
  log(`sweep of ${combos.length} runs, ${jobs} at a time with ${threads} thread(s) each${options.group ? `, ${grouped.length === 0 ? 'no runs' : `${grouped.reduce((n, u) => n + u.members.length, 0)} of them in ${grouped.length} group(s)`} trained together` : ''} → ${dir}`);
  for (const u of grouped) log(`group of ${u.members.length}${u.resume ? ' (resumed)' : ''}: ${u.members.map((i) => combos[i].name).join(', ')} (one process, one batch per step for all)`);
  for (const [i, state] of states.entries()) {
    if (state !== 'finished') continue;
    // Its wall time is the trainer's own clock (a resumed run's goes on across processes).
    const done = await sweepRunOf(combos[i].name, combos[i].values, dirs[i], { exitCode: 0, seconds: 0 });
    runs[i] = { ...done, seconds: done.test?.time ?? 0 };
    report(i, ' (finished before)');
  }
  let next = 0;
  const worker = async () => {
    while (next < units.length) {
      const unit = units[next++];
      const done = await runUnit(dir, rest, combos, unit, threads, options.plotFormat ?? 'svg');
      unit.members.forEach((i, k) => {
        runs[i] = done[k];
        report(i, `${unit.resume ? ' (resumed)' : ''}${unit.members.length > 1 ? ' (in a group)' : ''}`);
      });
    }
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  return { dir, runs };
}

/** `--group` / `--no-group`; unset, runs are grouped on a CUDA device (docs/gpu.md) and not on the CPU. */
export function groupFlag(base: Partial<TrainConfig>, flags: Record<string, unknown>): boolean {
  return typeof flags.group === 'boolean' ? flags.group : (base.device ?? 'cpu').startsWith('cuda');
}

export async function sweepCommand(base: Partial<TrainConfig>, flags: Record<string, unknown>): Promise<void> {
  const grid = (flags.grid as string[] | undefined) ?? [];
  if (flags.budget !== undefined) throw rangeError('sweep', '--budget', 'only with --preset', String(flags.budget));
  if (grid.length === 0) throw rangeError('sweep', '--grid', 'at least one key=values entry (or --preset NAME)', 'none');
  const { dir, runs, table } = await sweep(base, grid, { jobs: flags.jobs as number | undefined, threads: flags.threads as number | undefined, plotFormat: flags.plotFormat as 'svg' | 'png' | 'none', log: (l) => process.stdout.write(`${l}\n`), continue: flags.continue === true, group: groupFlag(base, flags) });
  process.stdout.write(`${table}\nsummary: ${path.join(dir, 'summary.json')}\n`);
  if (runs.some((r) => r.status !== 'ok')) process.exitCode = 1;
}
