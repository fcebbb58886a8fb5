/**
 * One training step as `orthornn train` takes it, in one place: the loss and every gradient in
 * one native call (an svd model's U and V gradients in their own frames), clipping to a global
 * norm, the optimiser groups — the decayed weight matrices, the other Euclidean parameters, the
 * spectrum p at its own rate — at the schedule's rates, and the Cayley steps on U and V
 * (docs/math.md (M20), (M23)–(M24), §5), the updates queued as one sequence of ops
 * (Context.sequence). Trainer takes it; so do `npm run bench`, the GPU
 * benchmark and the peer check, so that what they time and check is the step training takes.
 */
import { ElmanRNN } from '../models/elman';
import type { LSTM } from '../models/lstm';
import type { SequenceBatch } from '../models/batch';
import type { FloatDType } from '../native';
import * as ops from '../ops';
import { Adam, RMSprop, SGD, type Optimizer } from '../optim/optimizers';
import type { Tensor } from '../tensor';
import type { TrainConfig } from './config';

export type TrainableModel = ElmanRNN<FloatDType> | LSTM<FloatDType>;

/** Optimiser groups: weight matrices (decayed), other Euclidean parameters, the spectrum. */
export interface OptimizerGroups {
  weights: Optimizer<FloatDType>;
  others?: Optimizer<FloatDType>;
  spectrum?: Optimizer<FloatDType>;
  /** The rates before the schedule's factor. */
  baseLr: { weights: number; others: number; spectrum: number; cayley: number };
}

/** The parameters weight decay applies to (never U, V or p). */
const DECAYED = new Set(['W_in', 'W', 'W_out', 'weight_ih_l0', 'weight_hh_l0']);

function makeOptimizer(config: TrainConfig, params: Record<string, Tensor<FloatDType>>, lr: number, weightDecay: number): Optimizer<FloatDType> {
  if (config.optimizer === 'adam') return new Adam(params, { lr, weightDecay });
  if (config.optimizer === 'sgd') return new SGD(params, { lr, weightDecay, momentum: config.momentum });
  return new RMSprop(params, { lr, weightDecay, rho: 0.9, variant: config.rmsprop });
}

function makeGroups(config: TrainConfig, model: TrainableModel): OptimizerGroups {
  const weights: Record<string, Tensor<FloatDType>> = {}, others: Record<string, Tensor<FloatDType>> = {};
  for (const [name, t] of Object.entries(model.parametersByName)) {
    if (name === 'U' || name === 'V' || name === 'p') continue;
    (DECAYED.has(name) ? weights : others)[name] = t;
  }
  const spectrumLr = config.spectrumLr || (config.margin > 0 ? config.lr / (2 * config.margin) : config.lr);
  const hasSpectrum = config.model === 'svd' && config.margin > 0; // m = 0: s ≡ 1, dL/dp = 0
  return {
    weights: makeOptimizer(config, weights, config.lr, config.weightDecay),
    others: Object.keys(others).length > 0 ? makeOptimizer(config, others, config.lr, 0) : undefined,
    spectrum: hasSpectrum ? makeOptimizer(config, { p: model.parametersByName.p! }, spectrumLr, 0) : undefined,
    baseLr: { weights: config.lr, others: config.lr, spectrum: spectrumLr, cayley: config.cayleyLr || config.lr },
  };
}

export interface StepResult {
  loss: number;
  /** The gradients' global norm before clipping (NaN unless clipping or `options.norm` asked for it). */
  gradientNorm: number;
  hiddenGradientNorms: Float32Array | Float64Array;
}

export class TrainingStep {
  readonly groups: OptimizerGroups;
  /** Whether the model's U and V take Cayley steps (an svd ElmanRNN). */
  readonly svd: boolean;

  /** The optimisers of `config` (its optimizer, rates, decay, clipping) for `model`'s parameters. */
  constructor(readonly config: TrainConfig, readonly model: TrainableModel) {
    this.svd = model instanceof ElmanRNN && model.isSvd();
    this.groups = makeGroups(config, model);
  }

  /**
   * One step on `batch`: its gradients, clipped to `config.clipNorm`, then every update at the
   * rates times `factor` (the schedule's). `norm` computes the gradient norm without clipping
   * (for a log record).
   */
  async run(batch: SequenceBatch<FloatDType>, options: { factor?: number; norm?: boolean } = {}): Promise<StepResult> {
    const { config, model, groups } = this;
    const factor = options.factor ?? 1;
    // svd: U's and V's gradients in their own frames, which the Cayley steps below take
    // without forming their skew-symmetric matrices (ops.cayleyStepInFrame).
    const result = await model.lossAndGradients(batch as never, { frameGradients: this.svd });
    const grads = result.gradients as Record<string, Tensor<FloatDType>>;
    const frames = result.frameGradients as { U: Tensor<FloatDType>; V: Tensor<FloatDType> } | undefined;
    let gradientNorm = NaN;
    if (config.clipNorm > 0 || options.norm) {
      // A frame gradient MᵀG has G's norm (M is orthogonal), and scaling it scales the step
      // as scaling G would.
      const all = [...Object.values(grads), ...(frames ? [frames.U, frames.V] : [])];
      const squares = all.map((g) => ops.sumSquares(g));
      let total = 0;
      for (const s of squares) total += await s.item();
      for (const s of squares) s.dispose();
      gradientNorm = Math.sqrt(total);
      if (config.clipNorm > 0 && gradientNorm > config.clipNorm) {
        const f = config.clipNorm / gradientNorm;
        for (const g of all) ops.scale(g, f, { out: g });
      }
    }
    const { baseLr } = groups;
    // Every update as one sequence of ops: on a GPU it can replay as one graph (Context.sequence).
    model.context.sequence(() => {
      groups.weights.lr = baseLr.weights * factor;
      groups.weights.step(grads);
      if (groups.others) {
        groups.others.lr = baseLr.others * factor;
        groups.others.step(grads);
      }
      if (groups.spectrum) {
        groups.spectrum.lr = baseLr.spectrum * factor;
        groups.spectrum.step(grads);
      }
      if (frames) {
        ops.cayleyStepInFrame(model.parametersByName.U!, frames.U, baseLr.cayley * factor);
        ops.cayleyStepInFrame(model.parametersByName.V!, frames.V, baseLr.cayley * factor);
      }
    });
    return { loss: result.loss, gradientNorm, hiddenGradientNorms: result.hiddenGradientNorms };
  }

  /** The optimisers by group name (what checkpoints hold). */
  optimizers(): Record<string, Optimizer<FloatDType>> {
    const out: Record<string, Optimizer<FloatDType>> = { weights: this.groups.weights };
    if (this.groups.others) out.others = this.groups.others;
    if (this.groups.spectrum) out.spectrum = this.groups.spectrum;
    return out;
  }

  /** Frees the optimisers' state (the model stays). */
  dispose(): void {
    for (const opt of Object.values(this.optimizers())) opt.dispose();
  }
}
