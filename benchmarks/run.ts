/**
 * Benchmarks: `npm run bench [-- --quick] [-- --json FILE]`.
 *
 * Prints one table per suite and writes every record, with a header describing the machine,
 * to a JSON file. A suite is an async function returning records; add new ones to `suites`.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { backends, Context, ElmanRNN, memory, memoryOf, ops, type BackendInfo, type FloatDType, type Tensor } from '../lib/index';

const USAGE = `Usage: npm run bench -- [options]   (or: npx tsx benchmarks/run.ts [options])

Options:
  --quick        seconds-long smoke run (fewer sizes and runs), for CI
  --json FILE    where to write the JSON results (default: bench-results/bench.json)
  -h, --help     show this help`;

// ---------------------------------------------------------------------------------------------
// Records and suites

interface Header {
  date: string;
  node: string;
  gitCommit: string | null;
  hostname: string;
  cpuModel: string | null;
  quick: boolean;
  env: { OPENBLAS_CORETYPE: string | null; OPENBLAS_NUM_THREADS: string | null };
}

interface GemmRecord {
  suite: 'gemm';
  backend: string;
  device: string;
  dtype: FloatDType;
  n: number;
  /** Per gemm op. */
  medianMs: number;
  minMs: number;
  maxMs: number;
  /** 2n³ / median time. */
  gflops: number;
  /** Timed runs (each of several ops); not counting warm-up and calibration. */
  runs: number;
}

interface TrainStepRecord {
  suite: 'trainStep';
  backend: string;
  device: string;
  dtype: FloatDType;
  case: string;
  n: number;
  B: number;
  T: number;
  scored: 'all' | 'last';
  /** One training step: forward, loss, BPTT, Cayley steps on U and V, SGD on the rest. */
  medianMs: number;
  minMs: number;
  maxMs: number;
  runs: number;
  /** T·B / step time. */
  sequenceStepsPerSecond: number;
  /** The DESIGN §5 flop count (6·T·B·n² recurrent + input/output GEMMs + 6n³) / median time. */
  gflops: number;
  /** gflops over the same run's float32 square-GEMM rate at this n (null without one). */
  fractionOfGemmCeiling: number | null;
  /** Bytes held on the device after the timed steps (parameters, gradients, workspace, batch). */
  memoryBytes: number;
}

/** Union of every suite's record type. */
type BenchRecord = GemmRecord | TrainStepRecord;

interface SuiteEnv {
  /** The backends to run on (available ones only). */
  backends: readonly BackendInfo[];
  quick: boolean;
  /** Records of the suites that ran before (the GEMM ceiling for later suites). */
  earlier: readonly BenchRecord[];
}

type Suite = (env: SuiteEnv) => Promise<BenchRecord[]>;

// ---------------------------------------------------------------------------------------------
// Timing

interface MeasureOptions {
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
interface Stats {
  median: number;
  min: number;
  max: number;
  runs: number;
}

async function timeOnce(fn: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function measure(fn: () => Promise<void>, options: MeasureOptions = {}): Promise<Stats> {
  const { minRuns = 5, minSeconds = 0.5, warmup = 1, maxRuns = 10_000 } = options;
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  let total = 0;
  while (times.length < maxRuns && (times.length < minRuns || total < minSeconds)) {
    const t = await timeOnce(fn);
    times.push(t);
    total += t;
  }
  times.sort((a, b) => a - b);
  const mid = times.length >> 1;
  const median = times.length % 2 ? times[mid] : (times[mid - 1] + times[mid]) / 2;
  return { median, min: times[0], max: times[times.length - 1], runs: times.length };
}

/**
 * How many repetitions of `step` one timed run should hold so that it lasts about
 * `targetSeconds`: a single cheap op would mostly time the queue round trip of `sync()`.
 * Doubles from 1, so it also serves as warm-up.
 */
async function calibrate(batch: (reps: number) => Promise<void>, targetSeconds: number, maxReps = 4096): Promise<number> {
  let reps = 1;
  while (reps < maxReps) {
    const t = await timeOnce(() => batch(reps));
    if (t >= targetSeconds) break;
    // Jump close to the target when far below it, rather than doubling many times.
    reps = Math.min(maxReps, Math.max(reps * 2, Math.ceil((reps * targetSeconds) / Math.max(t, 1e-6) / 2)));
  }
  return reps;
}

// ---------------------------------------------------------------------------------------------
// Suites

const FLOAT_DTYPES: readonly FloatDType[] = ['float32', 'float64'];

const gemmSuite: Suite = async ({ backends, quick }) => {
  const sizes = quick ? [128, 512] : [128, 512, 1024];
  const timing: MeasureOptions = quick ? { minRuns: 5, minSeconds: 0.05 } : { minRuns: 5, minSeconds: 0.5 };
  const batchSeconds = quick ? 0.005 : 0.02;

  const table = new Table<GemmRecord & { reps: number }>([
    { header: 'backend', width: 7, value: (r) => r.backend, align: 'left' },
    { header: 'dtype', width: 7, value: (r) => r.dtype, align: 'left' },
    { header: 'n', width: 5, value: (r) => String(r.n) },
    { header: 'ops/run', width: 7, value: (r) => String(r.reps) },
    { header: 'runs', width: 5, value: (r) => String(r.runs) },
    { header: 'median ms', width: 10, value: (r) => r.medianMs.toFixed(3) },
    { header: 'min ms', width: 10, value: (r) => r.minMs.toFixed(3) },
    { header: 'max ms', width: 10, value: (r) => r.maxMs.toFixed(3) },
    { header: 'GFLOP/s', width: 8, value: (r) => r.gflops.toFixed(1) },
  ]);
  console.log('\nGEMM: C = A·B, square n×n, per-op times (medians of timed runs)');
  table.printHeader();

  const records: GemmRecord[] = [];
  for (const info of backends) {
    const ctx = new Context({ device: info.name, seed: 1 });
    try {
      for (const dtype of FLOAT_DTYPES) {
        if (!ctx.supports('gemm', dtype)) {
          console.log(`  (${info.name} does not support gemm in ${dtype}: skipped)`);
          continue;
        }
        for (const n of sizes) {
          const tensors: Tensor[] = [];
          try {
            const a = ctx.randn([n, n], { dtype });
            tensors.push(a);
            const b = ctx.randn([n, n], { dtype });
            tensors.push(b);
            const out = ctx.zeros([n, n], { dtype });
            tensors.push(out);
            await ctx.sync();

            const batch = async (reps: number) => {
              for (let i = 0; i < reps; i++) ops.gemm(a, b, { out });
              await ctx.sync();
            };
            await batch(1); // first touch, BLAS thread start-up
            const reps = await calibrate(batch, batchSeconds);
            const s = await measure(() => batch(reps), timing);
            const perOp = (x: number) => (x / reps) * 1e3;
            const record: GemmRecord = {
              suite: 'gemm',
              backend: info.name,
              device: info.device,
              dtype,
              n,
              medianMs: perOp(s.median),
              minMs: perOp(s.min),
              maxMs: perOp(s.max),
              gflops: (2 * n ** 3) / (s.median / reps) / 1e9,
              runs: s.runs,
            };
            records.push(record);
            table.printRow({ ...record, reps });
          } finally {
            for (const t of tensors) t.dispose();
          }
        }
      }
    } finally {
      ctx.dispose();
    }
  }
  return records;
};

interface TrainCase {
  name: string;
  n: number;
  B: number;
  T: number;
  d: number;
  k: number;
  score: 'all' | 'last';
}

/** The standard cases: copy (T = 200 + 20), sequential MNIST, and two larger models. */
const TRAIN_CASES: readonly TrainCase[] = [
  { name: 'copy n128 B32 T220', n: 128, B: 32, T: 220, d: 10, k: 10, score: 'all' },
  { name: 'mnist n128 B64 T784 last', n: 128, B: 64, T: 784, d: 1, k: 10, score: 'last' },
  { name: 'n512 B32 T200', n: 512, B: 32, T: 200, d: 10, k: 10, score: 'all' },
  { name: 'n1024 B16 T100', n: 1024, B: 16, T: 100, d: 10, k: 10, score: 'all' },
];

/** DESIGN §5: recurrent products forward and backward, input and output GEMMs, W and the Cayley solves. */
function designFlops(c: TrainCase): number {
  const rows = c.score === 'last' ? c.B : c.T * c.B;
  return 6 * c.T * c.B * c.n ** 2 + 4 * c.T * c.B * c.n * c.d + 6 * rows * c.n * c.k + 6 * c.n ** 3;
}

const trainStepSuite: Suite = async ({ backends, quick, earlier }) => {
  const dtype: FloatDType = 'float32';
  const table = new Table<TrainStepRecord>([
    { header: 'backend', width: 7, value: (r) => r.backend, align: 'left' },
    { header: 'case', width: 24, value: (r) => r.case, align: 'left' },
    { header: 'runs', width: 4, value: (r) => String(r.runs) },
    { header: 'median ms', width: 9, value: (r) => r.medianMs.toFixed(1) },
    { header: 'min ms', width: 8, value: (r) => r.minMs.toFixed(1) },
    { header: 'max ms', width: 8, value: (r) => r.maxMs.toFixed(1) },
    { header: 'seq steps/s', width: 11, value: (r) => r.sequenceStepsPerSecond.toFixed(0) },
    { header: 'GFLOP/s', width: 7, value: (r) => r.gflops.toFixed(1) },
    { header: 'of GEMM', width: 7, value: (r) => (r.fractionOfGemmCeiling === null ? '-' : `${(100 * r.fractionOfGemmCeiling).toFixed(0)}%`) },
    { header: 'MiB', width: 6, value: (r) => (r.memoryBytes / 2 ** 20).toFixed(1) },
  ]);
  console.log(`\nTraining step (${dtype}, svd m = 0.1, tanh): forward + loss + BPTT + Cayley on U and V + SGD on the rest`);
  if (quick) console.log('(quick: T divided by 10, 3 timed steps)');
  table.printHeader();
  const records: TrainStepRecord[] = [];
  for (const info of backends) {
    const ctx = new Context({ device: info.name, seed: 1 });
    try {
      if (!ctx.supports('biasActivation', dtype)) {
        console.log(`  (${info.name} cannot run the RNN step yet: skipped)`);
        continue;
      }
      for (const base of TRAIN_CASES) {
        const c = quick ? { ...base, T: Math.ceil(base.T / 10) } : base;
        const model = await ElmanRNN.create({ inputSize: c.d, hiddenSize: c.n, outputSize: c.k, margin: 0.1, context: ctx, seed: 1 });
        const rows = c.score === 'last' ? c.B : c.T * c.B;
        const x = ctx.randn([c.T, c.B, c.d], { dtype });
        const targets = ctx.tensor(Int32Array.from({ length: rows }, (_, i) => i % c.k), c.score === 'last' ? [c.B] : [c.T, c.B]);
        const lr = 1e-3;
        const step = async () => {
          const { gradients: g } = await model.lossAndGradients({ x, targets, score: c.score });
          ops.cayleyStep(model.parameters.U, g.U, lr);
          ops.cayleyStep(model.parameters.V, g.V, lr);
          for (const name of ['W_in', 'b', 'p', 'W_out', 'c']) ops.axpby(-lr, g[name], 1, model.parameters[name], { out: model.parameters[name] });
          await ctx.sync();
        };
        try {
          const s = await measure(step, quick ? { minRuns: 3, minSeconds: 0, warmup: 1 } : { minRuns: 10, minSeconds: 1, warmup: 2, maxRuns: 50 });
          const ceiling = earlier.find((r): r is GemmRecord => r.suite === 'gemm' && r.backend === info.name && r.dtype === dtype && r.n === c.n);
          const gflops = designFlops(c) / s.median / 1e9;
          const record: TrainStepRecord = {
            suite: 'trainStep', backend: info.name, device: info.device, dtype, case: c.name + (quick ? ' (T/10)' : ''),
            n: c.n, B: c.B, T: c.T, scored: c.score,
            medianMs: s.median * 1e3, minMs: s.min * 1e3, maxMs: s.max * 1e3, runs: s.runs,
            sequenceStepsPerSecond: (c.T * c.B) / s.median, gflops,
            fractionOfGemmCeiling: ceiling ? gflops / ceiling.gflops : null,
            memoryBytes: memoryOf(ctx.device).bytes,
          };
          records.push(record);
          table.printRow(record);
        } finally {
          model.dispose();
          x.dispose();
          targets.dispose();
        }
      }
    } finally {
      ctx.dispose();
    }
  }
  return records;
};

const suites: readonly Suite[] = [gemmSuite, trainStepSuite];

// ---------------------------------------------------------------------------------------------
// Output

interface Column<R> {
  header: string;
  width: number;
  value: (row: R) => string;
  /** Default 'right' (numbers). */
  align?: 'left' | 'right';
}

/** Fixed-width columns, so that rows can be printed as soon as they are measured. */
class Table<R> {
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

function gitCommit(): string | null {
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

function header(quick: boolean): Header {
  return {
    date: new Date().toISOString(),
    node: process.version,
    gitCommit: gitCommit(),
    hostname: os.hostname(),
    cpuModel: os.cpus()[0]?.model ?? null,
    quick,
    env: {
      OPENBLAS_CORETYPE: process.env.OPENBLAS_CORETYPE ?? null,
      OPENBLAS_NUM_THREADS: process.env.OPENBLAS_NUM_THREADS ?? null,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Main

interface Args {
  quick: boolean;
  json: string;
  help: boolean;
}

/** The parsed arguments, or the exit code after a usage error. */
function parse(argv: string[]): Args | number {
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: 'boolean', default: false },
        json: { type: 'string', default: 'bench-results/bench.json' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    return { quick: values.quick, json: values.json, help: values.help };
  } catch (err) {
    // parseArgs reports unknown options, missing values and positionals as ERR_PARSE_ARGS_*.
    if (err instanceof Error && String((err as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS')) {
      console.error(`error: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    throw err;
  }
}

async function main(): Promise<number> {
  const args = parse(process.argv.slice(2));
  if (typeof args === 'number') return args;
  if (args.help) {
    console.log(USAGE);
    return 0;
  }

  const all = backends();
  const available = all.filter((b) => b.available);
  const skipped = all.filter((b) => !b.available);
  const head = header(args.quick);

  console.log(`orthornn benchmarks${args.quick ? ' (quick)' : ''}: node ${head.node}, commit ${head.gitCommit ?? 'unknown'}, host ${head.hostname}`);
  for (const b of available) console.log(`backend ${b.name}: ${b.device}`);
  if (skipped.length) {
    const why = skipped.map((b) => `${b.name} (${b.compiled ? (b.reason ?? 'unavailable') : 'not compiled into this build'})`);
    console.log(`skipped backends: ${why.join(', ')}`);
  }
  console.log(
    `OPENBLAS_CORETYPE=${head.env.OPENBLAS_CORETYPE ?? '(unset)'} OPENBLAS_NUM_THREADS=${head.env.OPENBLAS_NUM_THREADS ?? '(unset)'}`,
  );

  const records: BenchRecord[] = [];
  for (const suite of suites) records.push(...(await suite({ backends: available, quick: args.quick, earlier: records })));

  const leaked = memory().filter((m) => m.tensors > 0);
  if (leaked.length) console.error(`warning: tensors still live after the benchmarks: ${JSON.stringify(leaked)}`);

  mkdirSync(path.dirname(path.resolve(args.json)), { recursive: true });
  writeFileSync(args.json, JSON.stringify({ header: head, records }, null, 2) + '\n');
  console.log(`\nwrote ${records.length} records to ${args.json}`);
  return 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  },
);
