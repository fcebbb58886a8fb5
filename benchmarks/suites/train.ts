/** The training step on the standard cases, alternating with the PyTorch peer's. */
import { Context, ElmanRNN, memoryOf, type FloatDType } from '../../lib/index';
import { caseBatch, designFlops, ranVariants, trainingStep } from '../cases';
import { casesFor, LR, MARGIN, mib, peakRssBytes, settle, statsOf, sum, Table, timeOnce, warmUp, WARM_UP_MS, type Measurement, type Suite, type Timing } from '../harness';
import type { GemmRecord } from './gemm';

/** One training step: forward, loss, BPTT, RMSprop on W_in, b, p, W_out, c, Cayley steps on U and V. */
export interface TrainStepRecord extends Measurement {
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

export const trainStepSuite: Suite<TrainStepRecord> = async ({ backends, quick, earlier, peer, provenance, only }) => {
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
        const { x, targets } = caseBatch(ctx, c, { dtype });
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
          const ceiling = earlier.find((r): r is GemmRecord => r.suite === 'gemm' && (r as GemmRecord).backend === info.name && (r as GemmRecord).dtype === dtype && (r as GemmRecord).n === c.n);
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
