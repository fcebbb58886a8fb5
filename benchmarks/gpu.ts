/**
 * GPU benchmark: `npx tsx benchmarks/gpu.ts [--quick] [--json FILE]` (part of `npm run test:gpu`).
 *
 * On the cuda backend: square GEMM rates, and full svd-RNN training steps (forward, loss, BPTT,
 * Cayley steps on U and V, RMSprop on the rest) on `npm run bench`'s four cases
 * (benchmarks/cases.ts), each with the recurrence as one kernel per pass where it fits (the
 * default; and with its dot products unsplit, ORTHORNN_CUDA_PERSISTENT_SPLIT=1), as CUDA graphs
 * (ORTHORNN_CUDA_PERSISTENT=0) and launched step by step (and ORTHORNN_CUDA_GRAPHS=0), and with
 * the frame-form Cayley solves forced to cuSOLVER's and to the fused kernels (the default takes
 * the fused ones for n ≤ 64), and with the loss-and-gradients call and the updates as one CUDA
 * graph each (elmanStep and sequence forced to 'graph'), with the host launches per training step from the context's
 * launch counters. The CPU's time for the
 * same step is measured alongside, and the PyTorch peer's (benchmarks/peers/torch_step.py) on
 * the same GPU right after ours: the speedup is its median over ours. Then K models of the first
 * case's shape stepped together (every member's step queued, then one wait; one batch for all),
 * for K = 1, 8 and 32, on one context and dealt over min(K, 8) contexts (a CUDA stream each, as
 * `TrainerGroup` and `orthornn sweep --group` run them on a GPU): sequence-steps per second and
 * the ratio to K = 1, and K PyTorch processes training at once on the same device, for K = 1, 8
 * and 32 (--peer-processes chooses). --quick runs the first two cases at T/10
 * (and K = 1, 2). Medians after warm-up. Without a usable GPU it says why and exits with
 * status 0, unless ORTHORNN_REQUIRE_GPU=1, which makes that an error.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { backends, Context, ElmanRNN, ops } from '../lib/index';
import { caseBatch, designFlops, ranVariants, shortened, trainingStep, TRAIN_CASES, type TrainCase } from './cases';
import { gitCommit, machine, measure, statsOf, Table, type Measurement, type Provenance } from './harness';
import { TorchPeer } from './peer';
import { gemmSuiteOf, type GemmRecord } from './suites/gemm';

const USAGE = `Usage: npx tsx benchmarks/gpu.ts [--quick] [--json FILE] [--device cuda|cpu] [--no-peer]

  --quick        fewer runs and cases (seconds)
  --json FILE    where to write the records (default: bench-results/gpu.json)
  --device cpu   run everything on the CPU instead (a check of this script without a GPU)
  --no-peer      do not time the PyTorch peer (benchmarks/peers/torch_step.py) on the same device
  --group-only   only the K-models table (with 16 and 32 contexts too) and the Cayley step's own time
                 (for comparing environments, e.g. UV_THREADPOOL_SIZE or CUDA_DEVICE_MAX_CONNECTIONS)
  --peer-processes K,K,...
                 after the K-models table, K PyTorch processes training at once for each K listed
                 (default 1,8,32 with the peer, 1,2 with --quick, none with --group-only or --no-peer)`;

/** One training step (ms per step), with how the cuda backend ran it. */
interface StepRecord extends Measurement {
  suite: 'gpuTrainStep';
  /** How the cuda backend ran the recurrence (null on the CPU). */
  recurrence: Recurrence | null;
  case: string;
  n: number;
  B: number;
  T: number;
  scored: 'all' | 'last';
  gflops: number;
  /** Host submissions per step: kernels and copies + library calls + graph launches (cuda only). */
  launchesPerStep: number | null;
  graphNodesPerStep: number | null;
  /** The implementation of each fused op that ran (ctx.variants(); null: the op did not run). */
  variants: Record<string, string | null>;
}

/** The PyTorch peer's step on the same case and device (its faster recurrence), run right after ours. */
interface PeerRecord extends Provenance {
  suite: 'gpuPeerStep';
  case: string;
  device: string;
  torch: string;
  /** Whether PyTorch was allowed TF32 (its default for cuDNN); ours is true float32. */
  tf32: boolean;
  recurrence: string;
  medianMs: number;
  minMs: number;
  runs: number;
  /** Our median on the same case: the default on the GPU, else the CPU's. */
  oursMs: number;
  /** The peer's median over ours (above 1, we are faster). */
  speedup: number;
}

/** K models stepped together (one group step: every member's training step on one batch). */
interface GroupRecord extends Measurement {
  suite: 'gpuGroupStep';
  case: string;
  K: number;
  /** The contexts (on a GPU, CUDA streams) the K models were dealt over. */
  contexts: number;
  /** Sequence steps per second: K · B · T per group step. */
  sequenceStepsPerSecond: number;
  /** This K's sequence steps per second over K = 1's, in the same run. */
  overK1: number;
}

/**
 * K PyTorch processes (benchmarks/peers/torch_step.py, true float32), each training a model of
 * the group case's shape on the same device at the same time: what a user without groups runs
 * for K seeds. Throughput over the wall time of all K; ours is the best of our rows with that K.
 */
interface PeerProcessesRecord extends Provenance {
  suite: 'gpuPeerProcesses';
  case: string;
  device: string;
  torch: string;
  K: number;
  /** Training steps each process took, all K started together. */
  steps: number;
  wallSeconds: number;
  sequenceStepsPerSecond: number;
  oursSequenceStepsPerSecond: number | null;
}

const peerProcessesTable = new Table<PeerProcessesRecord>([
  { header: 'case', width: 32, value: (r) => r.case, align: 'left' },
  { header: 'K', width: 3, value: (r) => String(r.K) },
  { header: 'steps each', width: 10, value: (r) => String(r.steps) },
  { header: 'wall s', width: 7, value: (r) => r.wallSeconds.toFixed(2) },
  { header: 'torch sequence-steps/s', width: 22, value: (r) => r.sequenceStepsPerSecond.toFixed(0) },
  { header: 'ours', width: 10, value: (r) => (r.oursSequenceStepsPerSecond === null ? '-' : r.oursSequenceStepsPerSecond.toFixed(0)) },
  { header: 'ours over torch', width: 15, value: (r) => (r.oursSequenceStepsPerSecond === null ? '-' : `${(r.oursSequenceStepsPerSecond / r.sequenceStepsPerSecond).toFixed(2)}x`) },
]);

/** K peer processes started, set up and warmed, then `steps` steps each, all at once; a string says why there are none. */
async function peerProcesses(c: TrainCase, K: number, steps: number, device: 'cpu' | 'cuda', provenance: Provenance): Promise<Omit<PeerProcessesRecord, 'oursSequenceStepsPerSecond'> | string> {
  const started = await Promise.all(Array.from({ length: K }, () => TorchPeer.start(1, device, false)));
  const peers = started.filter((p): p is TorchPeer => typeof p !== 'string');
  try {
    const refused = started.find((p): p is string => typeof p === 'string');
    if (refused !== undefined) return refused;
    await Promise.all(peers.map((p, i) => p.setup(c, MARGIN, LR, 1 + i)));
    await Promise.all(peers.map((p) => p.run(3)));
    const t0 = performance.now();
    await Promise.all(peers.map((p) => p.run(steps)));
    const wallSeconds = (performance.now() - t0) / 1e3;
    return {
      suite: 'gpuPeerProcesses', ...provenance, case: c.name, device: peers[0].info.device, torch: peers[0].info.torch, K, steps, wallSeconds,
      sequenceStepsPerSecond: (K * steps * c.B * c.T) / wallSeconds,
    };
  } finally {
    for (const p of peers) p.close();
  }
}

/** Square GEMMs on the GPU: both dtypes up to n = 4096. */
const gpuGemm = gemmSuiteOf((quick) => (quick ? { float32: [128, 1024], float64: [128, 1024] } : { float32: [128, 512, 1024, 4096], float64: [128, 512, 1024, 4096] }));

const LR = 1e-4, MARGIN = 0.1;

/**
 * How the step ran: the recurrence's variant, or the defaults but the Cayley solve's variant
 * forced, or the defaults with the loss-and-gradients call and the updates as one graph each
 * ('step graph').
 */
type Recurrence = 'default' | 'split 1' | 'graphs' | 'step by step' | 'cuSOLVER Cayley' | 'fused Cayley' | 'step graph';

const stepTable = new Table<StepRecord>([
  { header: 'case', width: 32, value: (r) => r.case, align: 'left' },
  { header: 'backend', width: 7, value: (r) => r.backend, align: 'left' },
  { header: 'recurrence', width: 15, value: (r) => r.recurrence ?? '-', align: 'left' },
  { header: 'runs', width: 4, value: (r) => String(r.runs) },
  { header: 'median ms', width: 9, value: (r) => r.medianMs.toFixed(2) },
  { header: 'min ms', width: 8, value: (r) => r.minMs.toFixed(2) },
  { header: 'GFLOP/s', width: 7, value: (r) => r.gflops.toFixed(0) },
  { header: 'launches/step', width: 13, value: (r) => (r.launchesPerStep === null ? '-' : String(Math.round(r.launchesPerStep))) },
  { header: 'graph nodes/step', width: 16, value: (r) => (r.graphNodesPerStep === null ? '-' : String(Math.round(r.graphNodesPerStep))) },
]);

const peerTable = new Table<PeerRecord>([
  { header: 'case', width: 32, value: (r) => r.case, align: 'left' },
  { header: 'torch float32', width: 13, value: (r) => (r.tf32 ? 'TF32 allowed' : 'true float32'), align: 'left' },
  { header: 'recurrence', width: 10, value: (r) => r.recurrence, align: 'left' },
  { header: 'torch ms', width: 9, value: (r) => r.medianMs.toFixed(2) },
  { header: 'ours ms', width: 9, value: (r) => r.oursMs.toFixed(2) },
  { header: 'speedup', width: 7, value: (r) => `${r.speedup.toFixed(2)}x` },
]);

async function trainStep(device: string, recurrence: Recurrence | null, c: TrainCase, runs: number, provenance: Provenance): Promise<StepRecord> {
  // The split is a tuning of the persistent kernel, read when the context is created; the
  // recurrence's variant is the context's option (ctx.variants()).
  if (recurrence === 'split 1') process.env.ORTHORNN_CUDA_PERSISTENT_SPLIT = '1';
  const elmanRecurrence = recurrence === 'graphs' ? 'graph' : recurrence === 'step by step' ? 'reference' : undefined;
  const cayleyFrameSolve = recurrence === 'cuSOLVER Cayley' ? 'reference' : recurrence === 'fused Cayley' ? 'fused' : undefined;
  const elmanStep = recurrence === 'step graph' ? 'graph' : undefined;
  const variants = { ...(elmanRecurrence && { elmanRecurrence }), ...(cayleyFrameSolve && { cayleyFrameSolve }), ...(elmanStep && { elmanStep, sequence: elmanStep }) };
  const ctx = new Context({ device, seed: 1, variants });
  try {
    const { n, B, T, d, k, score: scored } = c;
    const model = await ElmanRNN.create({ inputSize: d, hiddenSize: n, outputSize: k, margin: MARGIN, context: ctx, seed: 1 });
    // The step `orthornn train` takes (lib/train/step.ts).
    const training = trainingStep(model, LR);
    const { x, targets } = caseBatch(ctx, c, { seed: 3 });
    const step = async () => {
      await training.run({ x, targets, score: scored });
      await ctx.sync();
    };
    for (let i = 0; i < 3; i++) await step();
    const c0 = ctx.launchCounters();
    const s = await measure(step, { warmup: 0, minRuns: runs, maxRuns: runs, minSeconds: 0 });
    const c1 = ctx.launchCounters();
    const cuda = device !== 'cpu';
    training.dispose();
    model.dispose();
    const medianMs = s.median * 1e3;
    return {
      suite: 'gpuTrainStep', ...provenance, backend: ctx.backend, device: ctx.device, dtype: 'float32', recurrence, case: c.name, n, B, T, scored,
      medianMs, minMs: s.min * 1e3, maxMs: s.max * 1e3, runs: s.runs, gflops: designFlops(c) / medianMs / 1e6,
      launchesPerStep: cuda ? (c1.kernels + c1.libraryCalls + c1.graphs - c0.kernels - c0.libraryCalls - c0.graphs) / s.runs : null,
      graphNodesPerStep: cuda ? (c1.graphNodes - c0.graphNodes) / s.runs : null,
      variants: ranVariants(ctx),
    };
  } finally {
    ctx.dispose();
    delete process.env.ORTHORNN_CUDA_PERSISTENT_SPLIT;
  }
}

const groupTable = new Table<GroupRecord>([
  { header: 'case', width: 32, value: (r) => r.case, align: 'left' },
  { header: 'backend', width: 7, value: (r) => r.backend, align: 'left' },
  { header: 'K', width: 3, value: (r) => String(r.K) },
  { header: 'contexts', width: 8, value: (r) => String(r.contexts) },
  { header: 'runs', width: 4, value: (r) => String(r.runs) },
  { header: 'median ms', width: 9, value: (r) => r.medianMs.toFixed(2) },
  { header: 'sequence-steps/s', width: 16, value: (r) => r.sequenceStepsPerSecond.toFixed(0) },
  { header: 'over K = 1', width: 10, value: (r) => `${r.overK1.toFixed(2)}x` },
]);

/**
 * K models of one shape stepped together, one batch for all, model i on the (i mod S)-th of S
 * contexts (each with the batch); ms per group step.
 */
async function groupStep(device: string, c: TrainCase, K: number, S: number, runs: number, provenance: Provenance): Promise<Omit<GroupRecord, 'overK1'>> {
  const contexts = Array.from({ length: S }, () => new Context({ device, seed: 1 }));
  const ctx = contexts[0];
  try {
    const { n, B, T, d, k, score: scored } = c;
    const models = await Promise.all(Array.from({ length: K }, (_, i) => ElmanRNN.create({ inputSize: d, hiddenSize: n, outputSize: k, margin: MARGIN, context: contexts[i % S], seed: 1 + i })));
    const trainings = models.map((m) => trainingStep(m, LR));
    const batches = contexts.map((cx) => caseBatch(cx, c, { seed: 3 }));
    const step = async () => {
      await Promise.all(trainings.map((t, i) => t.run({ ...batches[i % S], score: scored })));
      await Promise.all(contexts.map((cx) => cx.sync()));
    };
    for (let i = 0; i < 3; i++) await step();
    const s = await measure(step, { warmup: 0, minRuns: runs, maxRuns: runs, minSeconds: 0 });
    for (const t of trainings) t.dispose();
    for (const m of models) m.dispose();
    const medianMs = s.median * 1e3;
    return {
      suite: 'gpuGroupStep', ...provenance, backend: ctx.backend, device: ctx.device, dtype: 'float32', case: c.name, K, contexts: S,
      medianMs, minMs: s.min * 1e3, maxMs: s.max * 1e3, runs: s.runs, sequenceStepsPerSecond: (K * B * T) / s.median,
    };
  } finally {
    for (const cx of contexts) cx.dispose();
  }
}

/** One Cayley step in the frame form (ops.cayleyStepInFrame), float32. */
interface CayleyRecord extends Measurement {
  suite: 'gpuCayleyStep';
  n: number;
  /** 'alone': one step, then a wait (its latency); 'queued': 20 steps queued, then one wait (per step). */
  mode: 'alone' | 'queued';
  /** The variant of cayleyFrameSolve forced, and the one that ran (a fused one declines where it does not apply). */
  variant: string;
  ran: string | null;
}

const cayleyTable = new Table<CayleyRecord>([
  { header: 'n', width: 5, value: (r) => String(r.n) },
  { header: 'backend', width: 7, value: (r) => r.backend, align: 'left' },
  { header: 'variant', width: 9, value: (r) => r.variant, align: 'left' },
  { header: 'ran', width: 9, value: (r) => r.ran ?? '-', align: 'left' },
  { header: 'mode', width: 6, value: (r) => r.mode, align: 'left' },
  { header: 'runs', width: 4, value: (r) => String(r.runs) },
  { header: 'median ms', width: 9, value: (r) => r.medianMs.toFixed(3) },
  { header: 'min ms', width: 8, value: (r) => r.minMs.toFixed(3) },
]);

/** The frame-form Cayley step of an n × n orthogonal matrix, `variant` forced: its latency alone and its time when queued back to back. */
async function cayleyStep(device: string, n: number, variant: string, runs: number, provenance: Provenance): Promise<CayleyRecord[]> {
  const ctx = new Context({ device, seed: 1, variants: { cayleyFrameSolve: variant } });
  try {
    const M = ops.qr(ctx.randn([n, n])).q;
    const F = ctx.randn([n, n], { seed: 2 });
    ops.scale(F, 1e-3, { out: F });
    const out: CayleyRecord[] = [];
    for (const [mode, count] of [['alone', 1], ['queued', 20]] as const) {
      const s = await measure(async () => {
        for (let i = 0; i < count; i++) ops.cayleyStepInFrame(M, F, 1e-3);
        await ctx.sync();
      }, { warmup: 3, minRuns: runs, maxRuns: runs, minSeconds: 0 });
      out.push({
        suite: 'gpuCayleyStep', ...provenance, backend: ctx.backend, device: ctx.device, dtype: 'float32', n, mode, variant, ran: ctx.variants().cayleyFrameSolve.last,
        medianMs: (s.median * 1e3) / count, minMs: (s.min * 1e3) / count, maxMs: (s.max * 1e3) / count, runs: s.runs,
      });
    }
    return out;
  } finally {
    ctx.dispose();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { quick: { type: 'boolean' }, json: { type: 'string' }, device: { type: 'string' }, 'no-peer': { type: 'boolean' }, 'group-only': { type: 'boolean' }, 'peer-processes': { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const quick = values.quick ?? false;
  const device = values.device ?? 'cuda';
  if (device !== 'cuda' && device !== 'cpu') throw new Error(`--device must be 'cuda' or 'cpu', got '${device}'`);
  const onGpu = device === 'cuda';
  const cuda = backends().find((b) => b.name === 'cuda')!;
  if (onGpu && !cuda.available) {
    const why = `the cuda backend is ${cuda.compiled ? 'compiled but unavailable' : 'not compiled into this build'}: ${cuda.reason ?? 'unknown reason'}`;
    if (process.env.ORTHORNN_REQUIRE_GPU === '1') throw new Error(`GPU benchmark: ORTHORNN_REQUIRE_GPU=1 but ${why}`);
    console.log(`GPU benchmark skipped: ${why}`);
    return;
  }
  console.log(`GPU benchmark on ${onGpu ? cuda.device : 'the CPU (--device cpu: a check of this script)'}${quick ? ' (quick)' : ''}`);
  const runs = quick ? 5 : 21;
  const host = machine();
  const provenance: Provenance = { commit: gitCommit(), machine: `${host.cpuModel ?? 'unknown CPU'}, ${host.cores} cores` };

  const groupOnly = values['group-only'] ?? false;
  const processCounts = (values['peer-processes'] ?? (groupOnly || values['no-peer'] ? '' : quick ? '1,2' : '1,8,32')).split(',').filter((v) => v !== '').map((v) => {
    const K = Number(v);
    if (!Number.isInteger(K) || K < 1 || K > 64) throw new Error(`--peer-processes must list integers from 1 to 64, got '${v}'`);
    return K;
  });
  const deviceInfo = backends().find((b) => b.name === device)!;
  const gemm: GemmRecord[] = groupOnly ? [] : await gpuGemm({ backends: [deviceInfo], quick, earlier: [], peer: null, provenance, only: null });

  const steps: StepRecord[] = [];
  const failures: string[] = [];
  const peerRecords: PeerRecord[] = [];
  const cayley: CayleyRecord[] = [];
  if (groupOnly) {
    console.log(`\nCayley step in the frame form (ops.cayleyStepInFrame), float32, each variant of cayleyFrameSolve: one step then a wait, and 20 queued then a wait (ms per step)`);
    cayleyTable.printHeader();
    const probe = new Context({ device });
    const cayleyVariants = probe.variants().cayleyFrameSolve.available;
    probe.dispose();
    for (const n of quick ? [32, 128] : [64, 128, 200, 512, 1024]) {
      for (const variant of cayleyVariants) {
        try {
          for (const r of await cayleyStep(device, n, variant, quick ? 3 : 21, provenance)) {
            cayley.push(r);
            cayleyTable.printRow(r);
          }
        } catch (err) {
          failures.push(`Cayley step n = ${n}, ${variant}: ${(err as Error).message}`);
          console.log(`  FAILED ${failures[failures.length - 1]}`);
        }
      }
    }
  }
  // On the GPU two peers: true float32, as ours, and PyTorch's default (cuDNN may use TF32).
  const peers: TorchPeer[] = [];
  for (const tf32 of groupOnly ? [] : onGpu ? [false, true] : [false]) {
    const peer = values['no-peer'] ? 'not requested (--no-peer)' : await TorchPeer.start(4, onGpu ? 'cuda' : 'cpu', tf32);
    if (typeof peer === 'string') console.log(`PyTorch peer${tf32 ? ' (TF32)' : ''}: none (${peer})`);
    else {
      peers.push(peer);
      console.log(`PyTorch peer: torch ${peer.info.torch} (${peer.info.python}) on ${peer.info.device}${peer.info.tf32 ? ', TF32 allowed' : ''}`);
    }
  }
  if (!groupOnly) {
    console.log(`\nsvd-RNN training step, float32 (forward, loss, BPTT, 2 Cayley steps, RMSprop); GFLOP/s by docs/math.md's (M41)`);
    stepTable.printHeader();
  }
  try {
    for (const c of groupOnly ? [] : quick ? TRAIN_CASES.slice(0, 2).map(shortened) : TRAIN_CASES) {
      // A failing variant is reported and the others still run; the exit status says so.
      const attempt = async (device: string, recurrence: Recurrence | null, count: number): Promise<StepRecord | null> => {
        try {
          const r = await trainStep(device, recurrence, c, count, provenance);
          steps.push(r);
          stepTable.printRow(r);
          return r;
        } catch (err) {
          failures.push(`${c.name}, ${device}${recurrence ? ` ${recurrence}` : ''}: ${(err as Error).message}`);
          console.log(`  FAILED ${failures[failures.length - 1]}`);
          return null;
        }
      };
      let ours: StepRecord | null = null;  // the default on the GPU
      if (onGpu) {
        ours = await attempt('cuda', 'default', runs);
        for (const recurrence of ['split 1', 'graphs', 'step by step', 'cuSOLVER Cayley', 'fused Cayley', 'step graph'] as const) await attempt('cuda', recurrence, runs);
      }
      const cpu = await attempt('cpu', null, quick ? 3 : 5);
      const oursMs = (ours ?? cpu)?.medianMs;
      for (const peer of peers) {
        if (oursMs === undefined) break;  // neither ours nor the CPU's step ran
        try {
          const setup = await peer.setup(c, MARGIN, LR);
          const { times } = await peer.run(runs, 3, 0.2);
          const s = statsOf(times);
          peerRecords.push({
            suite: 'gpuPeerStep', ...provenance, case: c.name, device: peer.info.device, torch: peer.info.torch, tf32: peer.info.tf32, recurrence: String(setup.recurrence),
            medianMs: s.median * 1e3, minMs: s.min * 1e3, runs: s.runs, oursMs, speedup: (s.median * 1e3) / oursMs,
          });
        } catch (err) {
          console.log(`  PyTorch peer failed on ${c.name}: ${(err as Error).message.split('\n')[0]}`);
        }
      }
    }
  } finally {
    for (const peer of peers) peer.close();
  }
  const groups: GroupRecord[] = [];
  const groupCase = quick ? shortened(TRAIN_CASES[0]) : TRAIN_CASES[0];
  console.log(`\nK models stepped together on one ${device} context and on min(K, 8) (a stream each on a GPU: TrainerGroup and sweep --group there), one batch for all`);
  groupTable.printHeader();
  const groupRuns = groupOnly
    ? [[1, 1], [8, 1], [8, 8], [16, 8], [16, 16], [32, 8], [32, 16], [32, 32]].filter(([K]) => !quick || K <= 2 || K === 8)
    : (quick ? [1, 2] : [1, 8, 32]).flatMap((K) => (K === 1 ? [[1, 1]] : [[K, 1], [K, Math.min(K, 8)]]));
  for (const [K, S] of groupRuns) {
    try {
      const r = await groupStep(device, groupCase, K, S, quick ? 3 : 11, provenance);
      const one = groups.find((g) => g.K === 1);
      const record: GroupRecord = { ...r, overK1: one ? r.sequenceStepsPerSecond / one.sequenceStepsPerSecond : 1 };
      groups.push(record);
      groupTable.printRow(record);
    } catch (err) {
      failures.push(`${groupCase.name}, K = ${K} on ${S} contexts: ${(err as Error).message}`);
      console.log(`  FAILED ${failures[failures.length - 1]}`);
    }
  }
  // K separate PyTorch processes against the K-models rows just measured.
  const peerProcessRecords: PeerProcessesRecord[] = [];
  if (processCounts.length > 0) {
    console.log(`\nK PyTorch processes (true float32) training ${groupCase.name} at once on ${device}, one model each; ours: the best K-models row above`);
    peerProcessesTable.printHeader();
    for (const K of processCounts) {
      try {
        const r = await peerProcesses(groupCase, K, quick ? 5 : 40, onGpu ? 'cuda' : 'cpu', provenance);
        if (typeof r === 'string') {
          console.log(`  none: ${r}`);
          break;
        }
        const ours = groups.filter((g) => g.K === K).map((g) => g.sequenceStepsPerSecond);
        const record: PeerProcessesRecord = { ...r, oursSequenceStepsPerSecond: ours.length ? Math.max(...ours) : null };
        peerProcessRecords.push(record);
        peerProcessesTable.printRow(record);
      } catch (err) {
        failures.push(`${groupCase.name}, ${K} PyTorch processes: ${(err as Error).message.split('\n')[0]}`);
        console.log(`  FAILED ${failures[failures.length - 1]}`);
      }
    }
  }
  if (peerRecords.length) {
    console.log(`\nPyTorch peer on ${peerRecords[0].device} (torch ${peerRecords[0].torch}), the same step; speedup = its median / ours (${onGpu ? 'default' : 'cpu'})`);
    peerTable.printHeader();
    for (const p of peerRecords) peerTable.printRow(p);
  }
  const file = values.json ?? path.join('bench-results', 'gpu.json');
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), device: onGpu ? cuda.device : 'cpu', quick, records: [...gemm, ...steps, ...peerRecords, ...cayley, ...groups, ...peerProcessRecords] }, null, 2));
  console.log(`\nwrote ${file}`);
  if (failures.length) {
    console.log(`\n${failures.length} failed:\n  ${failures.join('\n  ')}`);
    process.exitCode = 1;
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
});
