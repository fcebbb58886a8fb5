/** The Cayley step alone, ambient and frame forms, beside the PyTorch peer's. */
import { Context, ops } from '../../lib/index';
import type { FloatDType } from '../../lib/index';
import { calibrate, LR, settle, statsOf, sum, Table, timeOnce, type Measurement, type Suite } from '../harness';

/** One cayleyStep on an n × n matrix. */
export interface CayleyRecord extends Measurement {
  suite: 'cayley';
  n: number;
  /** The same step from F = MᵀG (ops.cayleyStepInFrame, as training takes it), timed in the same rounds. */
  inFrameMedianMs: number;
  /** The same step in the PyTorch peer (null without it). */
  peerMedianMs: number | null;
  /** Median over rounds of the peer's mean step / ours in the round: above 1, we are faster. */
  speedup: number | null;
}

export const cayleySuite: Suite<CayleyRecord> = async ({ backends, quick, peer, provenance }) => {
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
