/**
 * The benchmarks' harness: what every record carries, the timing (one call, repeated calls,
 * calibrated batches, the settle-and-warm-up between alternating sides), the fixed-width
 * tables, the machine probe, and what a suite is. The suites (benchmarks/suites/*.ts) and the
 * entry points (run.ts, gpu.ts) build on it.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BackendInfo, FloatDType } from '../lib/index';
import { shortened, TRAIN_CASES, type TrainCase } from './cases';
import type { TorchPeer } from './peer';

// ---------------------------------------------------------------------------------------------
// Records

export interface Machine {
  /** From /proc/cpuinfo where there is one. */
  cpuModel: string | null;
  /** CPUs this process may use (os.availableParallelism()): our thread count and the peer's. */
  cores: number;
  /** The vector extensions that decide GEMM speed. */
  simd: string[];
}

/** What every record carries, so records from many runs can be pooled. */
export interface Provenance {
  commit: string | null;
  machine: string;
}

/** Milliseconds per op (what the op is, each record says), over `runs` timed runs. */
export interface Timing {
  medianMs: number;
  minMs: number;
  maxMs: number;
  runs: number;
}

/** Timings of one suite on one backend. */
export interface Measurement extends Provenance, Timing {
  backend: string;
  device: string;
  dtype: FloatDType;
}

/** A suite's records all name their suite. */
export interface SuiteRecord {
  suite: string;
}

export interface SuiteEnv {
  /** The backends to run on (available ones only). */
  backends: readonly BackendInfo[];
  quick: boolean;
  /** Records of the suites that ran before (the GEMM ceiling for later suites). */
  earlier: readonly SuiteRecord[];
  peer: TorchPeer | null;
  provenance: Provenance;
  /** Only the training cases whose name contains this. */
  only: string | null;
}

export type Suite<R extends SuiteRecord = SuiteRecord> = (env: SuiteEnv) => Promise<R[]>;

// ---------------------------------------------------------------------------------------------
// Timing

export interface MeasureOptions {
  /** Timed calls at least (default 5). */
  minRuns?: number;
  /** Keep calling until this much time has been spent in timed calls (default 0.5). */
  minSeconds?: number;
  /** Untimed calls first (default 1). */
  warmup?: number;
  /** Hard cap on timed calls, so a very fast `fn` cannot loop for long (default 10000). */
  maxRuns?: number;
}

/** Seconds per call of `fn`. */
export interface Stats {
  median: number;
  min: number;
  max: number;
  runs: number;
}

export async function timeOnce(fn: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

export async function measure(fn: () => Promise<void>, options: MeasureOptions = {}): Promise<Stats> {
  const { minRuns = 5, minSeconds = 0.5, warmup = 1, maxRuns = 10_000 } = options;
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  let total = 0;
  while (times.length < maxRuns && (times.length < minRuns || total < minSeconds)) {
    const t = await timeOnce(fn);
    times.push(t);
    total += t;
  }
  return statsOf(times);
}

export function statsOf(times: readonly number[]): Stats {
  const sorted = [...times].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  return { median, min: sorted[0], max: sorted[sorted.length - 1], runs: sorted.length };
}

/**
 * How many repetitions of `step` one timed run should hold so that it lasts about
 * `targetSeconds`: a single cheap op would mostly time the queue round trip of `sync()`.
 * Doubles from 1, so it also serves as warm-up.
 */
export async function calibrate(batch: (reps: number) => Promise<void>, targetSeconds: number, maxReps = 4096): Promise<number> {
  let reps = 1;
  while (reps < maxReps) {
    const t = await timeOnce(() => batch(reps));
    if (t >= targetSeconds) break;
    // Jump close to the target when far below it, rather than doubling many times.
    reps = Math.min(maxReps, Math.max(reps * 2, Math.ceil((reps * targetSeconds) / Math.max(t, 1e-6) / 2)));
  }
  return reps;
}

export const FLOAT_DTYPES: readonly FloatDType[] = ['float32', 'float64'];

/** Learning rate of every timed step (small: the timed steps must not diverge). */
export const LR = 1e-3;
export const MARGIN = 0.1;

export function casesFor(quick: boolean, only: string | null): TrainCase[] {
  return TRAIN_CASES.filter((c) => only === null || c.name.includes(only)).map((c) => (quick ? shortened(c) : c));
}

export const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

/**
 * Pause at each switch between our steps and the peer's, then untimed steps for at least
 * WARM_UP_MS. OpenBLAS's threads (ours, and the peer's: PyTorch uses the system BLAS)
 * busy-wait for about 2^28 cycles (~0.1 s) after each call before they sleep: without the
 * pause each side's first steps would share the cores with the other's spinning threads.
 * After the pause this machine needs tens of milliseconds of work to come back to full
 * speed (measured: copy steps of 12–22 ms for about 40 ms after a 250 ms pause against
 * 10.7 ms back to back, 10.5 ms after 30 ms pauses), so one untimed step was not enough for
 * a step of 10 ms. Neither happens to a user training with one of them.
 */
export const SETTLE_MS = 250;
export const WARM_UP_MS = 100;
export const settle = () => new Promise<void>((resolve) => setTimeout(resolve, SETTLE_MS));
/** At least one untimed step, and more until WARM_UP_MS have passed. */
export const warmUp = async (step: () => Promise<void>) => {
  const end = performance.now() + WARM_UP_MS;
  do await step();
  while (performance.now() < end);
};
/**
 * This process's peak resident memory: Linux's VmHWM, its own. (getrusage's maxrss also counts
 * the pages it had at its fork, those of whatever spawned it.)
 */
export const peakRssBytes = (): number => {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]) * 1024;
  } catch {
    // no /proc: getrusage's figure, an upper bound
  }
  return process.resourceUsage().maxRSS * 1024;
};
export const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

// ---------------------------------------------------------------------------------------------
// Output and the machine

export interface Column<R> {
  header: string;
  width: number;
  value: (row: R) => string;
  /** Default 'right' (numbers). */
  align?: 'left' | 'right';
}

/** Fixed-width columns, so that rows can be printed as soon as they are measured. */
export class Table<R> {
  private readonly widths: number[];

  constructor(private readonly columns: readonly Column<R>[]) {
    this.widths = columns.map((c) => Math.max(c.width, c.header.length));
  }

  printHeader(): void {
    console.log(this.line(this.columns.map((c) => c.header)));
    console.log(this.widths.map((w) => '-'.repeat(w)).join('  '));
  }

  printRow(row: R): void {
    console.log(this.line(this.columns.map((c) => c.value(row))));
  }

  private line(cells: string[]): string {
    return cells
      .map((cell, i) => (this.columns[i].align === 'left' ? cell.padEnd(this.widths[i]) : cell.padStart(this.widths[i])))
      .join('  ')
      .trimEnd();
  }
}

export function gitCommit(): string | null {
  try {
    const out = execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: path.resolve(__dirname, '..'),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    return out.trim() || null;
  } catch {
    return null; // not a git checkout, or git not installed
  }
}

export function machine(): Machine {
  let cpuModel: string | null = os.cpus()[0]?.model ?? null;
  let simd: string[] = [];
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    cpuModel = /^model name\s*:\s*(.*)$/m.exec(info)?.[1].trim() ?? cpuModel;
    const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? '').split(/\s+/));
    simd = ['avx2', 'fma', 'avx512f', 'avx512_bf16', 'avx512_fp16', 'amx_tile'].filter((f) => flags.has(f));
  } catch {
    // not Linux: the model from os.cpus() and no flags
  }
  return { cpuModel, cores: os.availableParallelism(), simd };
}
