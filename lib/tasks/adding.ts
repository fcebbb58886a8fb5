/**
 * The adding task of the paper: T steps of two channels, values U(0, 1) and markers with
 * exactly one 1 in each half; the target is the sum (or, as in the authors' code, the mean)
 * of the two marked values, scored at the last step with MSE. Predicting the constant
 * 1 (the sum's mean) scores 1/6 for the sum, 1/24 for the mean.
 */
import { rangeError } from '../errors';
import { TaskRandom } from './random';

export interface AddingBatch {
  /** T × B × 2, time-major: (value, marker). */
  x: Float32Array;
  /** B × 1. */
  targets: Float32Array;
  steps: number;
  batchSize: number;
}

export class AddingTask {
  readonly length: number;
  readonly target: 'sum' | 'mean';
  /** The seeded stream of batches (its state() goes into checkpoints). */
  readonly random: TaskRandom;

  constructor(options: { length: number; target?: 'sum' | 'mean'; seed?: number }) {
    const { length, target = 'sum', seed = 0 } = options;
    if (!Number.isSafeInteger(length) || length < 2) throw rangeError('AddingTask', 'length', 'an integer ≥ 2', String(length));
    if (target !== 'sum' && target !== 'mean') throw rangeError('AddingTask', 'target', "'sum' or 'mean'", String(target));
    this.length = length;
    this.target = target;
    this.random = new TaskRandom(seed);
  }

  /** The MSE of predicting the target's mean: Var(u1 + u2) = 1/6, or 1/24 for the mean. */
  baselineLoss(): number {
    return this.target === 'sum' ? 1 / 6 : 1 / 24;
  }

  batch(batchSize: number): AddingBatch {
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw rangeError('AddingTask.batch', 'batchSize', 'a positive integer', String(batchSize));
    const T = this.length, B = batchSize, half = Math.floor(T / 2);
    const x = new Float32Array(T * B * 2);
    const targets = new Float32Array(B);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) x[(t * B + b) * 2] = this.random.uniform();
      const first = this.random.int(0, half - 1);
      const second = this.random.int(half, T - 1);
      x[(first * B + b) * 2 + 1] = 1;
      x[(second * B + b) * 2 + 1] = 1;
      // The target from the float32 values the model sees.
      const sum = x[(first * B + b) * 2] + x[(second * B + b) * 2];
      targets[b] = this.target === 'sum' ? sum : sum / 2;
    }
    return { x, targets, steps: T, batchSize: B };
  }
}
