/** The LSTM step against the Elman step at the sequential-MNIST shape. */
import { Context, ElmanRNN, LSTM, type FloatDType } from '../../lib/index';
import { ranVariants, trainingStep } from '../cases';
import { LR, MARGIN, statsOf, sum, Table, timeOnce, warmUp, type Measurement, type Suite, type Timing } from '../harness';

/** The LSTM's training step against the Elman one's at the sequential-MNIST shape, timed alternately. */
export interface LstmStepRecord extends Measurement {
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

/**
 * The LSTM baseline's step beside the Elman step at the sequential-MNIST shape (T = 784, B = 50,
 * one input, 128 units, 10 classes scored at the last step), alternating in rounds so that the
 * ratio holds under whatever else the machine does. The LSTM's four gates cost 4× the Elman
 * products; the rest is the gates' element-wise work.
 */
export const lstmStepSuite: Suite<LstmStepRecord> = async ({ backends, quick, provenance }) => {
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
