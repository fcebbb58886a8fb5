/**
 * The copy (memory) task of the paper: 10 symbols drawn from 8, then T − 1 blanks, a
 * delimiter and 10 blanks (T + 20 steps, one-hot over 10 channels); the targets are blanks,
 * then the 10 symbols in the last 10 steps. Every step is scored with cross-entropy; a model
 * that outputs blanks and then guesses uniformly scores 10·ln 8 / (T + 20).
 */
import { rangeError } from '../errors';
import { TaskRandom } from './random';

export const COPY_BLANK = 0;
export const COPY_DELIMITER = 9;
export const COPY_SYMBOLS = 8; // symbols are 1..8
export const COPY_LENGTH = 10; // symbols to remember
export const COPY_CLASSES = 10;

export interface CopyBatch {
  /** (T + 20) × B × 10, one-hot, time-major. */
  x: Float32Array;
  /** (T + 20) × B class ids. */
  targets: Int32Array;
  steps: number;
  batchSize: number;
}

export class CopyTask {
  readonly delay: number;
  readonly steps: number;
  /** The seeded stream of batches (its state() goes into checkpoints). */
  readonly random: TaskRandom;

  constructor(options: { delay: number; seed?: number }) {
    const { delay, seed = 0 } = options;
    if (!Number.isSafeInteger(delay) || delay < 1) throw rangeError('CopyTask', 'delay', 'a positive integer', String(delay));
    this.delay = delay;
    this.steps = delay + 2 * COPY_LENGTH;
    this.random = new TaskRandom(seed);
  }

  /** The cross-entropy of the memoryless baseline: 10·ln 8 / (T + 20). */
  baselineLoss(): number {
    return (COPY_LENGTH * Math.log(COPY_SYMBOLS)) / this.steps;
  }

  /** The next batch of the seeded stream. */
  batch(batchSize: number): CopyBatch {
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw rangeError('CopyTask.batch', 'batchSize', 'a positive integer', String(batchSize));
    const S = this.steps, B = batchSize, K = COPY_CLASSES;
    const x = new Float32Array(S * B * K);
    const targets = new Int32Array(S * B); // blank (0) everywhere but the last 10 steps
    const delimiterStep = COPY_LENGTH + this.delay - 1;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < S; t++) {
        let symbol = COPY_BLANK;
        if (t < COPY_LENGTH) {
          symbol = this.random.int(1, COPY_SYMBOLS);
          targets[(S - COPY_LENGTH + t) * B + b] = symbol;
        } else if (t === delimiterStep) {
          symbol = COPY_DELIMITER;
        }
        x[(t * B + b) * K + symbol] = 1;
      }
    }
    return { x, targets, steps: S, batchSize: B };
  }

  /** The fraction of the last 10 steps' symbols that `predictions` (S × B class ids) gets right. */
  accuracy(batch: CopyBatch, predictions: Int32Array): number {
    const { steps: S, batchSize: B } = batch;
    if (predictions.length !== S * B) throw rangeError('CopyTask.accuracy', 'predictions', `${S * B} class ids`, `${predictions.length}`);
    let right = 0;
    for (let t = S - COPY_LENGTH; t < S; t++) for (let b = 0; b < B; b++) if (predictions[t * B + b] === batch.targets[t * B + b]) right++;
    return right / (COPY_LENGTH * B);
  }
}
