/** The training-step cases that `npm run bench` (CPU) and benchmarks/gpu.ts both time. */
import type { Context, ElmanRNN, FloatDType, LSTM, Tensor } from '../lib/index';
import { resolveConfig, type TrainConfig } from '../lib/train/config';
import { TrainingStep } from '../lib/train/step';
import type { PeerCase } from './peer';

/** A peer case (its shape) with the name the tables show. */
export interface TrainCase extends PeerCase {
  name: string;
}

/** The standard cases: copy (T = 200 + 20), sequential MNIST, and two larger models. */
export const TRAIN_CASES: readonly TrainCase[] = [
  { name: 'copy n128 B32 T220', n: 128, B: 32, T: 220, d: 10, k: 10, score: 'all' },
  { name: 'mnist n128 B64 T784 last', n: 128, B: 64, T: 784, d: 1, k: 10, score: 'last' },
  { name: 'n512 B32 T200', n: 512, B: 32, T: 200, d: 10, k: 10, score: 'all' },
  { name: 'n1024 B16 T100', n: 1024, B: 16, T: 100, d: 10, k: 10, score: 'all' },
];

/** A case's batch on `ctx`: x from randn (`options`: its dtype and seed), class i mod k at each scored row. */
export function caseBatch<D extends FloatDType = 'float32'>(ctx: Context, c: PeerCase, options: { dtype?: D; seed?: number } = {}): { x: Tensor<D>; targets: Tensor<'int32'> } {
  const rows = c.score === 'last' ? c.B : c.T * c.B;
  const x = ctx.randn<D>([c.T, c.B, c.d], options);
  return { x, targets: ctx.tensor(Int32Array.from({ length: rows }, (_, i) => i % c.k), c.score === 'last' ? [c.B] : [c.T, c.B]) };
}

/** A case at a tenth of its length, for the quick runs (`--quick`). */
export function shortened(c: TrainCase): TrainCase {
  return { ...c, name: `${c.name} (T/10)`, T: Math.ceil(c.T / 10) };
}

/** docs/math.md (M41): recurrent products forward and backward, input and output GEMMs, W and the Cayley solves. */
export function designFlops(c: PeerCase): number {
  const rows = c.score === 'last' ? c.B : c.T * c.B;
  return 6 * c.T * c.B * c.n ** 2 + 4 * c.T * c.B * c.n * c.d + 6 * rows * c.n * c.k + 6 * c.n ** 3;
}

/** The implementation of each fused op that last ran on `ctx` (null where it did not run): what a record timed. */
export function ranVariants(ctx: Context): Record<string, string | null> {
  return Object.fromEntries(Object.entries(ctx.variants()).map(([op, v]) => [op, v.last]));
}

/**
 * The step `orthornn train` takes (lib/train/step.ts) for a model a benchmark built: RMSprop at
 * `lr` on the Euclidean parameters, the spectrum p at `lr` too (as the PyTorch peer's step
 * has it), Cayley steps at `lr` in U's and V's frames; `options` over that (e.g. the LSTM's
 * optimiser variant).
 */
export function trainingStep(model: ElmanRNN<FloatDType> | LSTM<FloatDType>, lr: number, options: Partial<TrainConfig> = {}): TrainingStep {
  const svd = 'recurrent' in model && model.recurrent === 'svd';
  const config = resolveConfig({
    task: 'custom',
    model: 'recurrent' in model ? model.recurrent : 'lstm',
    hidden: model.hiddenSize,
    dtype: model.dtype,
    lr,
    ...(svd && { margin: model.margin, cayleyLr: lr, spectrumLr: lr }),
    ...options,
  });
  return new TrainingStep(config, model);
}
