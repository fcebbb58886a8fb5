/** The GEMM ceiling: square products per backend and dtype, the denominator of the training step's "of GEMM". */
import { Context, ops, type Tensor } from '../../lib/index';
import { calibrate, FLOAT_DTYPES, measure, Table, type Measurement, type MeasureOptions, type Provenance, type Suite, type SuiteEnv } from '../harness';

/** Per gemm op; runs are timed batches of several ops, not counting warm-up and calibration. */
export interface GemmRecord extends Measurement {
  suite: 'gemm';
  n: number;
  /** 2n³ / median time. */
  gflops: number;
}

/** The sizes a GEMM suite measures per dtype. */
export interface GemmSizes {
  float32: readonly number[];
  float64: readonly number[];
}

/** `npm run bench`'s ceiling: float32 at 128 … 1024, float64 at three sizes (none when quick). */
export const gemmSuite: Suite<GemmRecord> = gemmSuiteOf((quick) => ({ float32: [128, 256, 512, 1024], float64: quick ? [] : [128, 512, 1024] }));

/** The GEMM suite over the sizes `sizes(quick)` gives (benchmarks/gpu.ts measures larger ones). */
export function gemmSuiteOf(sizes: (quick: boolean) => GemmSizes): Suite<GemmRecord> {
  return async ({ backends, quick, provenance }) => gemmRecords(backends, quick, provenance, sizes(quick));
}

async function gemmRecords(backends: SuiteEnv['backends'], quick: boolean, provenance: Provenance, sizes: GemmSizes): Promise<GemmRecord[]> {
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
        for (const n of sizes[dtype]) {
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
}
