/**
 * Benchmarks: `npm run bench [-- --quick] [-- --json FILE] [-- --check]`.
 *
 * Every available backend runs the GEMM ceiling, the Cayley step alone and the standard
 * training-step cases (float32); the PyTorch peer (benchmarks/peers/torch_step.py), when PyTorch
 * is installed, runs the same Cayley steps and training steps alternately with ours in the same
 * run, so the ratios hold under whatever else the machine is doing. One table per suite on
 * stdout; every record, with a header describing the machine, in a JSON file.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { backends, Context, ElmanRNN, LSTM, memory, memoryOf, ops, type BackendInfo, type FloatDType, type Tensor } from '../lib/index';
import { checkCase, GRAD_RTOL, LOSS_RTOL, type CheckRecord } from './check';
import { designFlops, ranVariants, shortened, trainingStep, TRAIN_CASES, type TrainCase } from './cases';
import { TorchPeer } from './peer';
import { serveBenchmark } from './serve';

const USAGE = `Usage: npm run bench -- [options]   (or: npx tsx benchmarks/run.ts [options])

Options:
  --quick        seconds-long smoke run (T divided by 10, few steps), for CI
  --json FILE    where to write the JSON results (default: bench-results/bench.json)
  --check        first check that the PyTorch peer's loss and gradients agree with ours on the
                 same parameters and batch (exit status 1 when they do not)
  --no-peer      do not run the PyTorch peer
  --only TEXT    only the training cases whose name contains TEXT
  --suite serve  instead: the serving benchmark (benchmarks/serve.ts: HTTP predictions while
                 training; JSON default bench-results/serve.json)
  --suite lstm   only the LSTM step against the Elman step at the sequential-MNIST shape
  -h, --help     show this help

The peer needs PyTorch (Debian: python3-torch; npm run setup -- --bench); the interpreter is
ORTHORNN_BENCH_PYTHON, else /usr/bin/python3, else python3 on the PATH.`;

// ---------------------------------------------------------------------------------------------
// Records and suites

interface Machine {
  /** From /proc/cpuinfo where there is one. */
  cpuModel: string | null;
  /** CPUs this process may use (os.availableParallelism()): our thread count and the peer's. */
  cores: number;
  /** The vector extensions that decide GEMM speed. */
  simd: string[];
}

interface Header {
  date: string;
  node: string;
  gitCommit: string | null;
  hostname: string;
  machine: Machine;
  quick: boolean;
  env: { OPENBLAS_CORETYPE: string | null; OPENBLAS_NUM_THREADS: string | null; OPENBLAS_THREAD_TIMEOUT: string | null };
  backends: BackendInfo[];
  /** The PyTorch peer, or why it did not run. */
  peer: { python: string; torch: string; threads: number } | { skipped: string };
}

/** What every record carries, so records from many runs can be pooled. */
interface Provenance {
  commit: string | null;
  machine: string;
}

/** Milliseconds per op (what the op is, each record says), over `runs` timed runs. */
interface Timing {
  medianMs: number;
  minMs: number;
  maxMs: number;
  runs: number;
}

/** Timings of one suite on one backend. */
interface Measurement extends Provenance, Timing {
  backend: string;
  device: string;
  dtype: FloatDType;
}

/** Per gemm op; runs are timed batches of several ops, not counting warm-up and calibration. */
interface GemmRecord extends Measurement {
  suite: 'gemm';
  n: number;
  /** 2n³ / median time. */
  gflops: number;
}

/** One cayleyStep on an n × n matrix. */
interface CayleyRecord extends Measurement {
  suite: 'cayley';
  n: number;
  /** The same step from F = MᵀG (ops.cayleyStepInFrame, as training takes it), timed in the same rounds. */
  inFrameMedianMs: number;
  /** The same step in the PyTorch peer (null without it). */
  peerMedianMs: number | null;
  /** Median over rounds of the peer's mean step / ours in the round: above 1, we are faster. */
  speedup: number | null;
}

/** One training step: forward, loss, BPTT, RMSprop on W_in, b, p, W_out, c, Cayley steps on U and V. */
interface TrainStepRecord extends Measurement {
  suite: 'trainStep';
  case: string;
  n: number;
  B: number;
  T: number;
  scored: 'all' | 'last';
  /** T·B / step time. */
  sequenceStepsPerSecond: number;
  /** The flop count of docs/math.md (M41) (6·T·B·n² recurrent + input/output GEMMs + 6n³) / median time. */
  gflops: number;
  /** gflops over the same run's float32 square-GEMM rate at this n (null without one). */
  fractionOfGemmCeiling: number | null;
  /** Bytes the library holds after the timed steps (memory(): parameters, gradients, workspace, batch). */
  memoryBytes: number;
  /** The process's peak resident set so far (it only grows from case to case). */
  peakRssBytes: number;
  /** The peer's step on the same case, timed alternately with ours (null without it). */
  peer: (Timing & { recurrence: string; peakRssBytes: number }) | null;
  /**
   * Median over rounds of (the peer's mean step / ours) within the round: above 1, we are
   * faster. Each round runs both back to back, so a load that drifts between rounds cancels.
   */
  speedup: number | null;
  /** The peer's fastest step over our fastest: the ratio on a machine with nothing else to do. */
  speedupOfMinimums: number | null;
  /** The implementation of each fused op that ran (ctx.variants(); null: the op did not run). */
  variants: Record<string, string | null>;
}

/** The LSTM's training step against the Elman one's at the sequential-MNIST shape, timed alternately. */
interface LstmStepRecord extends Measurement {
  suite: 'lstmStep';
  T: number;
  B: number;
  n: number;
  /** The Elman (svd) step of the same rounds: forward, BPTT, RMSprop and Cayley steps. */
  elman: Timing;
  /** Median over rounds of the LSTM's mean step / the Elman one's in the same round. */
  ratio: number;
  /** The implementation of each fused op that ran (ctx.variants()). */
  variants: Record<string, string | null>;
}

interface SkippedRecord extends Provenance {
  suite: 'skipped';
  backend: string;
  reason: string;
}

/** Union of every suite's record type. */
type BenchRecord = GemmRecord | CayleyRecord | TrainStepRecord | LstmStepRecord | CheckRecord | SkippedRecord;

interface SuiteEnv {
  /** The backends to run on (available ones only). */
  backends: readonly BackendInfo[];
  quick: boolean;
  /** Records of the suites that ran before (the GEMM ceiling for later suites). */
  earlier: readonly BenchRecord[];
  peer: TorchPeer | null;
  provenance: Provenance;
  /** Only the training cases whose name contains this. */
  only: string | null;
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
  return statsOf(times);
}

function statsOf(times: readonly number[]): Stats {
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

// ---------------------------------------------------------------------------------------------
// Suites

const FLOAT_DTYPES: readonly FloatDType[] = ['float32', 'float64'];

const gemmSuite: Suite = async ({ backends, quick, provenance }) => {
  const sizes = [128, 256, 512, 1024];
  const timing: MeasureOptions = quick ? { minRuns: 3, minSeconds: 0.02 } : { minRuns: 5, minSeconds: 0.5 };
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
  console.log('\nGEMM ceiling: C = A·B, square n×n, per-op times (medians of timed runs)');
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
          if (dtype === 'float64' && (quick || n === 256)) continue;
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
              ...provenance,
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

/** Learning rate of every timed step (small: the timed steps must not diverge). */
const LR = 1e-3;
const MARGIN = 0.1;

const cayleySuite: Suite = async ({ backends, quick, peer, provenance }) => {
  const dtype: FloatDType = 'float32';
  const sizes = quick ? [128, 256] : [128, 256, 512, 1024];
  const rounds = quick ? 2 : 5;
  const table = new Table<CayleyRecord>([
    { header: 'backend', width: 7, value: (r) => r.backend, align: 'left' },
    { header: 'n', width: 5, value: (r) => String(r.n) },
    { header: 'runs', width: 5, value: (r) => String(r.runs) },
    { header: 'median ms', width: 9, value: (r) => r.medianMs.toFixed(3) },
    { header: 'min ms', width: 8, value: (r) => r.minMs.toFixed(3) },
    { header: 'max ms', width: 8, value: (r) => r.maxMs.toFixed(3) },
    { header: 'in frame', width: 8, value: (r) => r.inFrameMedianMs.toFixed(3) },
    { header: 'torch ms', width: 8, value: (r) => (r.peerMedianMs === null ? '-' : r.peerMedianMs.toFixed(3)) },
    { header: 'speedup', width: 7, value: (r) => (r.speedup === null ? '-' : `${r.speedup.toFixed(2)}x`) },
  ]);
  console.log(
    `\nCayley step alone (${dtype}): M ← (I + η/2 A)⁻¹(I − η/2 A)M, A = GMᵀ − MGᵀ, on one n×n matrix; speedup = median over rounds of torch / ours;` +
      `\nin frame = median ms of the same step from F = MᵀG (ops.cayleyStepInFrame, which the training step below takes)`,
  );
  table.printHeader();
  const records: CayleyRecord[] = [];
  for (const info of backends) {
    const ctx = new Context({ device: info.name, seed: 1 });
    try {
      for (const n of sizes) {
        const g0 = ctx.randn([n, n], { dtype });
        const { q: M, r } = ops.qr(g0);
        const G = ops.scale(g0, 0.01);
        const F = ops.gemm(M, G, { transA: true });
        g0.dispose();
        r.dispose();
        try {
          const batch = async (reps: number) => {
            for (let i = 0; i < reps; i++) ops.cayleyStep(M, G, LR);
            await ctx.sync();
          };
          const framed = async (reps: number) => {
            for (let i = 0; i < reps; i++) ops.cayleyStepInFrame(M, F, LR);
            await ctx.sync();
          };
          await batch(1);
          const reps = await calibrate(batch, quick ? 0.005 : 0.05, 256);
          const ours: number[] = [];
          const inFrame: number[] = [];
          const theirs: number[] = [];
          const roundRatios: number[] = [];
          for (let round = 0; round < rounds; round++) {
            const mine: number[] = [];
            if (peer) {
              await settle();
              await batch(1);
            }
            for (let i = 0; i < 2; i++) mine.push((await timeOnce(() => batch(reps))) / reps);
            ours.push(...mine);
            for (let i = 0; i < 2; i++) inFrame.push((await timeOnce(() => framed(reps))) / reps);
            if (peer) {
              await settle();
              const t = await peer.cayley(n, Math.max(2, Math.min(reps, 20)), LR);
              theirs.push(...t);
              roundRatios.push(sum(t) / t.length / (sum(mine) / mine.length));
            }
          }
          const s = statsOf(ours);
          const peerMedian = theirs.length ? statsOf(theirs).median : null;
          const record: CayleyRecord = {
            suite: 'cayley', ...provenance, backend: info.name, device: info.device, dtype, n,
            medianMs: s.median * 1e3, minMs: s.min * 1e3, maxMs: s.max * 1e3, runs: s.runs,
            inFrameMedianMs: statsOf(inFrame).median * 1e3,
            peerMedianMs: peerMedian === null ? null : peerMedian * 1e3,
            speedup: roundRatios.length ? statsOf(roundRatios).median : null,
          };
          records.push(record);
          table.printRow(record);
        } finally {
          for (const t of [M, G, F]) t.dispose();
        }
      }
    } finally {
      ctx.dispose();
    }
  }
  return records;
};

function casesFor(quick: boolean, only: string | null): TrainCase[] {
  return TRAIN_CASES.filter((c) => only === null || c.name.includes(only)).map((c) => (quick ? shortened(c) : c));
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

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
const SETTLE_MS = 250;
const WARM_UP_MS = 100;
const settle = () => new Promise<void>((resolve) => setTimeout(resolve, SETTLE_MS));
/** At least one untimed step, and more until WARM_UP_MS have passed. */
const warmUp = async (step: () => Promise<void>) => {
  const end = performance.now() + WARM_UP_MS;
  do await step();
  while (performance.now() < end);
};
const peakRssBytes = () => process.resourceUsage().maxRSS * 1024;
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);

const trainStepSuite: Suite = async ({ backends, quick, earlier, peer, provenance, only }) => {
  const dtype: FloatDType = 'float32';
  // Ours and the peer alternate: `perRound` steps of ours, then as many of the peer's.
  const rounds = quick ? 2 : 8;
  const perRound = 2;
  const table = new Table<TrainStepRecord>([
    { header: 'backend', width: 7, value: (r) => r.backend, align: 'left' },
    { header: 'case', width: 31, value: (r) => r.case, align: 'left' },
    { header: 'steps', width: 5, value: (r) => String(r.runs) },
    { header: 'median ms', width: 9, value: (r) => r.medianMs.toFixed(1) },
    { header: 'min ms', width: 7, value: (r) => r.minMs.toFixed(1) },
    { header: 'max ms', width: 7, value: (r) => r.maxMs.toFixed(1) },
    { header: 'seq steps/s', width: 11, value: (r) => r.sequenceStepsPerSecond.toFixed(0) },
    { header: 'GFLOP/s', width: 7, value: (r) => r.gflops.toFixed(1) },
    { header: 'of GEMM', width: 7, value: (r) => (r.fractionOfGemmCeiling === null ? '-' : `${(100 * r.fractionOfGemmCeiling).toFixed(0)}%`) },
    { header: 'lib MiB', width: 7, value: (r) => mib(r.memoryBytes) },
    { header: 'RSS MiB', width: 7, value: (r) => mib(r.peakRssBytes) },
    { header: 'torch ms', width: 8, value: (r) => (r.peer ? r.peer.medianMs.toFixed(1) : '-') },
    { header: 'speedup', width: 7, value: (r) => (r.speedup === null ? '-' : `${r.speedup.toFixed(2)}x`) },
    { header: 'of mins', width: 7, value: (r) => (r.speedupOfMinimums === null ? '-' : `${r.speedupOfMinimums.toFixed(2)}x`) },
  ]);
  console.log(
    `\nTraining step (${dtype}, svd m = ${MARGIN}, tanh): forward + loss + BPTT + RMSprop on W_in, b, p, W_out, c + Cayley on U and V;` +
      `\n${rounds * perRound} steps each after warm-up, ours and the peer's alternating (${perRound} at a time, each side after a pause and ${WARM_UP_MS} ms of untimed steps); speedup = median over rounds of torch / ours,` +
      `\nof mins = torch's fastest step / our fastest; RSS = this process's peak so far`,
  );
  table.printHeader();
  const records: TrainStepRecord[] = [];
  for (const info of backends) {
    const ctx = new Context({ device: info.name, seed: 1 });
    try {
      if (!ctx.supports('biasActivation', dtype)) {
        console.log(`  (${info.name} cannot run the RNN step yet: skipped)`);
        continue;
      }
      for (const c of casesFor(quick, only)) {
        const model = await ElmanRNN.create({ inputSize: c.d, hiddenSize: c.n, outputSize: c.k, margin: MARGIN, context: ctx, seed: 1 });
        const rows = c.score === 'last' ? c.B : c.T * c.B;
        const x = ctx.randn([c.T, c.B, c.d], { dtype });
        const targets = ctx.tensor(Int32Array.from({ length: rows }, (_, i) => i % c.k), c.score === 'last' ? [c.B] : [c.T, c.B]);
        // The step `orthornn train` takes (lib/train/step.ts).
        const training = trainingStep(model, LR);
        const step = async () => {
          await training.run({ x, targets, score: c.score });
          await ctx.sync();
        };
        try {
          let peerSetup: Record<string, unknown> | null = null;
          if (peer) {
            const { name: _name, ...shape } = c;
            peerSetup = await peer.setup(shape, MARGIN, LR);
          }
          for (let i = 0; i < (quick ? 1 : 2); i++) await step();
          const ours: number[] = [];
          const theirs: number[] = [];
          const roundRatios: number[] = [];
          let peerRss = 0;
          for (let round = 0; round < rounds; round++) {
            const mine: number[] = [];
            if (peer) {
              await settle();
              await warmUp(step);
            }
            for (let i = 0; i < perRound; i++) mine.push(await timeOnce(step));
            ours.push(...mine);
            if (peer) {
              await settle();
              const r = await peer.run(perRound, 1, WARM_UP_MS / 1000);
              theirs.push(...r.times);
              peerRss = r.peakRssBytes;
              roundRatios.push(sum(r.times) / sum(mine));
            }
          }
          const s = statsOf(ours);
          const p = theirs.length ? statsOf(theirs) : null;
          const ceiling = earlier.find((r): r is GemmRecord => r.suite === 'gemm' && r.backend === info.name && r.dtype === dtype && r.n === c.n);
          const gflops = designFlops(c) / s.median / 1e9;
          const record: TrainStepRecord = {
            suite: 'trainStep', ...provenance, backend: info.name, device: info.device, dtype, case: c.name,
            n: c.n, B: c.B, T: c.T, scored: c.score,
            medianMs: s.median * 1e3, minMs: s.min * 1e3, maxMs: s.max * 1e3, runs: s.runs,
            sequenceStepsPerSecond: (c.T * c.B) / s.median, gflops,
            fractionOfGemmCeiling: ceiling ? gflops / ceiling.gflops : null,
            memoryBytes: memoryOf(ctx.device).bytes,
            peakRssBytes: peakRssBytes(),
            peer: p && {
              medianMs: p.median * 1e3, minMs: p.min * 1e3, maxMs: p.max * 1e3, runs: p.runs,
              recurrence: String(peerSetup?.recurrence ?? ''), peakRssBytes: peerRss,
            },
            speedup: roundRatios.length ? statsOf(roundRatios).median : null,
            speedupOfMinimums: p ? p.min / s.min : null,
            variants: ranVariants(ctx),
          };
          records.push(record);
          table.printRow(record);
        } finally {
          training.dispose();
          model.dispose();
          x.dispose();
          targets.dispose();
        }
      }
    } finally {
      ctx.dispose();
    }
  }
  if (peer) console.log('(torch: the faster of its Python loop and its fused nn.RNN loop per case; see the JSON records)');
  return records;
};

/**
 * The LSTM baseline's step beside the Elman step at the sequential-MNIST shape (T = 784, B = 50,
 * one input, 128 units, 10 classes scored at the last step), alternating in rounds so that the
 * ratio holds under whatever else the machine does. The LSTM's four gates cost 4× the Elman
 * products; the rest is the gates' element-wise work.
 */
const lstmStepSuite: Suite = async ({ backends, quick, provenance }) => {
  const dtype: FloatDType = 'float32';
  const [T, B, d, n, k] = [quick ? 78 : 784, 50, 1, 128, 10];
  const rounds = quick ? 2 : 8;
  const perRound = 2;
  const table = new Table<LstmStepRecord>([
    { header: 'backend', width: 7, value: (r) => r.backend, align: 'left' },
    { header: 'shape', width: 22, value: (r) => `T ${r.T}, B ${r.B}, n ${r.n}`, align: 'left' },
    { header: 'steps', width: 5, value: (r) => String(r.runs) },
    { header: 'Elman ms', width: 8, value: (r) => r.elman.medianMs.toFixed(1) },
    { header: 'LSTM ms', width: 8, value: (r) => r.medianMs.toFixed(1) },
    { header: 'LSTM / Elman', width: 12, value: (r) => `${r.ratio.toFixed(2)}x` },
  ]);
  console.log(`\nLSTM step against the Elman step (${dtype}, sequential-MNIST shape): ${rounds * perRound} steps each, alternating ${perRound} at a time; ratio = median over rounds`);
  table.printHeader();
  const records: LstmStepRecord[] = [];
  for (const info of backends) {
    const ctx = new Context({ device: info.name, seed: 1 });
    const disposables: { dispose(): void }[] = [];
    try {
      const x = ctx.randn([T, B, d], { dtype });
      const targets = ctx.tensor(Int32Array.from({ length: B }, (_, i) => i % k), [B]);
      const elman = await ElmanRNN.create({ inputSize: d, hiddenSize: n, outputSize: k, margin: MARGIN, clipPreactivation: 100, context: ctx, seed: 1 });
      const lstm = await LSTM.create({ inputSize: d, hiddenSize: n, outputSize: k, context: ctx, seed: 1, init: 'paper' });
      // Both as `orthornn train` steps them (lib/train/step.ts), with the paper's optimiser.
      const elmanTraining = trainingStep(elman, LR, { rmsprop: 'lasagne' });
      const lstmTraining = trainingStep(lstm, LR, { rmsprop: 'lasagne' });
      disposables.push(x, targets, elman, lstm, elmanTraining, lstmTraining);
      const elmanStep = async () => {
        await elmanTraining.run({ x, targets, score: 'last' });
        await ctx.sync();
      };
      const lstmStep = async () => {
        await lstmTraining.run({ x, targets, score: 'last' });
        await ctx.sync();
      };
      await warmUp(elmanStep);
      await warmUp(lstmStep);
      const e: number[] = [], l: number[] = [], ratios: number[] = [];
      for (let round = 0; round < rounds; round++) {
        const mine: number[] = [], theirs: number[] = [];
        for (let i = 0; i < perRound; i++) mine.push(await timeOnce(elmanStep));
        for (let i = 0; i < perRound; i++) theirs.push(await timeOnce(lstmStep));
        e.push(...mine);
        l.push(...theirs);
        ratios.push(sum(theirs) / sum(mine));
      }
      const [se, sl] = [statsOf(e), statsOf(l)];
      const record: LstmStepRecord = {
        suite: 'lstmStep', ...provenance, backend: info.name, device: info.device, dtype, T, B, n,
        medianMs: sl.median * 1e3, minMs: sl.min * 1e3, maxMs: sl.max * 1e3, runs: sl.runs,
        elman: { medianMs: se.median * 1e3, minMs: se.min * 1e3, maxMs: se.max * 1e3, runs: se.runs },
        ratio: statsOf(ratios).median,
        variants: ranVariants(ctx),
      };
      records.push(record);
      table.printRow(record);
    } finally {
      for (const t of disposables.reverse()) t.dispose();
      ctx.dispose();
    }
  }
  return records;
};

const suites: readonly Suite[] = [gemmSuite, cayleySuite, trainStepSuite, lstmStepSuite];

/** The peer agreement check on every case (T/10 with --quick); the records say whether all passed. */
async function runCheck(peer: TorchPeer, quick: boolean, only: string | null, provenance: Provenance): Promise<(CheckRecord & Provenance)[]> {
  const table = new Table<CheckRecord>([
    { header: 'case', width: 31, value: (r) => r.case, align: 'left' },
    { header: 'loss', width: 10, value: (r) => r.loss.toPrecision(7) },
    { header: 'torch loss', width: 10, value: (r) => r.peerLoss.toPrecision(7) },
    { header: 'rel err', width: 7, value: (r) => r.lossRelError.toExponential(1) },
    { header: 'grad rel err', width: 12, value: (r) => `${r.gradRelError.toExponential(1)} ${r.gradWorst}` },
    { header: 'after step rel err', width: 18, value: (r) => r.lossAfterStepRelError.toExponential(1) },
    { header: 'fused/loop', width: 10, value: (r) => r.fusedLossRelError.toExponential(1) },
    { header: 'ok', width: 4, value: (r) => (r.pass ? 'yes' : 'NO'), align: 'left' },
  ]);
  console.log(
    `\nPeer check (float32, cpu): loss and gradients at the same parameters and batch, and the loss after one RMSprop + Cayley step` +
      `\n(tolerances: loss ${LOSS_RTOL} relative, gradients ${GRAD_RTOL} of each gradient's max |entry|)`,
  );
  table.printHeader();
  const records: (CheckRecord & Provenance)[] = [];
  for (const c of casesFor(quick, only)) {
    const { name, ...shape } = c;
    const record = { ...(await checkCase(peer, name, shape, MARGIN, LR)), ...provenance };
    records.push(record);
    table.printRow(record);
  }
  return records;
}

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

function machine(): Machine {
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

function header(quick: boolean, peer: TorchPeer | string | null): Header {
  return {
    date: new Date().toISOString(),
    node: process.version,
    gitCommit: gitCommit(),
    hostname: os.hostname(),
    machine: machine(),
    quick,
    env: {
      OPENBLAS_CORETYPE: process.env.OPENBLAS_CORETYPE ?? null,
      OPENBLAS_NUM_THREADS: process.env.OPENBLAS_NUM_THREADS ?? null,
      OPENBLAS_THREAD_TIMEOUT: process.env.OPENBLAS_THREAD_TIMEOUT ?? null,
    },
    backends: backends(),
    peer: peer instanceof TorchPeer ? { ...peer.info } : { skipped: peer ?? 'not requested (--no-peer)' },
  };
}

// ---------------------------------------------------------------------------------------------
// Main

interface Args {
  quick: boolean;
  json: string;
  check: boolean;
  peer: boolean;
  only: string | null;
  suite: string | null;
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
        json: { type: 'string' },
        check: { type: 'boolean', default: false },
        'no-peer': { type: 'boolean', default: false },
        only: { type: 'string' },
        suite: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    const json = values.json ?? (values.suite === 'serve' ? 'bench-results/serve.json' : 'bench-results/bench.json');
    return { quick: values.quick, json, check: values.check, peer: !values['no-peer'], only: values.only ?? null, suite: values.suite ?? null, help: values.help };
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
  if (args.suite !== null) {
    if (args.suite !== 'serve' && args.suite !== 'lstm') {
      console.error(`error: --suite takes 'serve' or 'lstm', got '${args.suite}'\n\n${USAGE}`);
      return 2;
    }
    if (args.suite === 'serve') return serveBenchmark({ quick: args.quick, json: args.json });
  }
  if (args.check && !args.peer) {
    console.error(`error: --check compares with the PyTorch peer; it cannot be combined with --no-peer\n\n${USAGE}`);
    return 2;
  }

  const all = backends();
  const available = all.filter((b) => b.available);
  const skipped = all.filter((b) => !b.available);
  const threads = os.availableParallelism();
  const peerOrReason = args.peer ? await TorchPeer.start(threads) : null;
  const peer = peerOrReason instanceof TorchPeer ? peerOrReason : null;
  const head = header(args.quick, peerOrReason);
  const provenance: Provenance = {
    commit: head.gitCommit,
    machine: `${head.machine.cpuModel ?? 'unknown CPU'}, ${head.machine.cores} cores`,
  };

  console.log(`orthornn benchmarks${args.quick ? ' (quick)' : ''}: node ${head.node}, commit ${head.gitCommit ?? 'unknown'}, host ${head.hostname}`);
  console.log(`machine: ${provenance.machine}${head.machine.simd.length ? ` (${head.machine.simd.join(', ')})` : ''}`);
  for (const b of available) console.log(`backend ${b.name}: ${b.device}`);
  const records: BenchRecord[] = [];
  for (const b of skipped) {
    const reason = b.compiled ? (b.reason ?? 'unavailable') : 'not compiled into this build';
    console.log(`backend ${b.name}: skipped (${reason})`);
    records.push({ suite: 'skipped', ...provenance, backend: b.name, reason });
  }
  console.log(
    `OPENBLAS_CORETYPE=${head.env.OPENBLAS_CORETYPE ?? '(unset)'} OPENBLAS_NUM_THREADS=${head.env.OPENBLAS_NUM_THREADS ?? '(unset)'} OPENBLAS_THREAD_TIMEOUT=${head.env.OPENBLAS_THREAD_TIMEOUT ?? '(unset)'}`,
  );
  if (peer) console.log(`peer: PyTorch ${peer.info.torch} (${peer.info.python}), ${peer.info.threads} threads, OMP_WAIT_POLICY=PASSIVE`);
  else console.log(`peer: none (${args.peer ? (peerOrReason as string) : '--no-peer'})`);

  let failed = false;
  try {
    if (args.check) {
      if (!peer) {
        console.error(`error: --check needs the PyTorch peer: ${peerOrReason as string}`);
        return 1;
      }
      const checks = await runCheck(peer, args.quick, args.only, provenance);
      records.push(...checks);
      failed = checks.some((c) => !c.pass);
      if (failed) console.error('error: the peer disagrees with orthornn (see the table above); its timings are not comparable');
    }
    for (const suite of args.suite === 'lstm' ? [lstmStepSuite] : suites) {
      records.push(...(await suite({ backends: available, quick: args.quick, earlier: records, peer, provenance, only: args.only })));
    }
  } finally {
    peer?.close();
  }

  const leaked = memory().filter((m) => m.tensors > 0);
  if (leaked.length) console.error(`warning: tensors still live after the benchmarks: ${JSON.stringify(leaked)}`);

  mkdirSync(path.dirname(path.resolve(args.json)), { recursive: true });
  writeFileSync(args.json, JSON.stringify({ header: head, records }, null, 2) + '\n');
  console.log(`\nwrote ${records.length} records to ${args.json}`);
  return failed ? 1 : 0;
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
