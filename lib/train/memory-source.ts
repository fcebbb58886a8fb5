/**
 * Your own data for the training loop: sequences held in typed arrays, behind the same
 * TaskSource face as the built-in tasks. Training batches come in a fresh seeded order each
 * epoch (the last partial batch of an epoch is dropped), the position is saved in checkpoints,
 * and a resumed run continues the same order exactly.
 *
 *   const source = new InMemorySource({
 *     inputSize: 1, outputSize: 2, steps: 20,          // T
 *     train: { x, targets },                           // x: N × T × d, sequence-major
 *     valid: { x: vx, targets: vt },
 *     score: 'last',
 *   });
 *   await train({ hidden: 32, steps: 500 }, {}, { source });
 */
import { rangeError, typeError } from '../errors';
import type { LossKind } from '../models/batch';
import { checkInteger, checkOneOf, checkOptions, readObject } from '../validate';
import { EpochOrder, scoreCrossEntropy, type EvalSplit, type HostBatch, type MetricTotals, type TaskSource } from './sources';

/** One split: N sequences of T steps. */
export interface SequenceSplit {
  /** N × T × d input values, sequence-major (sequence, then time step, then feature). */
  x: Float32Array | Float64Array;
  /**
   * Cross-entropy: int32 class ids, N × T (score 'all') or N (score 'last').
   * MSE: N × k target values of the last step (score 'last').
   */
  targets: Int32Array | Float32Array | Float64Array;
  /**
   * Optional, score 'all' only: each sequence's length (1..T). Steps at and after it are
   * padding: not scored and not counted in the metrics.
   */
  lengths?: Int32Array;
}

export interface InMemoryData {
  inputSize: number;
  outputSize: number;
  /** T: time steps per sequence. */
  steps: number;
  /** Default 'crossEntropy'. */
  loss?: LossKind;
  /** 'all' steps or the 'last' one (default 'all' for cross-entropy; MSE scores the last). */
  score?: 'all' | 'last';
  /** A short name for records and messages (default 'custom'). */
  name?: string;
  train: SequenceSplit;
  /** Validation picks the best weights (accuracy for cross-entropy, loss for MSE). */
  valid: SequenceSplit;
  /** Tested on the best weights at the end of a run, when given. */
  test?: SequenceSplit;
  /** Seeds the order of the training sequences (default 0). */
  seed?: number;
}

interface Split {
  x: Float32Array | Float64Array;
  targets: Int32Array | Float32Array | Float64Array;
  lengths?: Int32Array;
  count: number;
}

const FN = 'InMemorySource';

export class InMemorySource implements TaskSource {
  readonly name: string;
  readonly inputSize: number;
  readonly outputSize: number;
  readonly loss: LossKind;
  readonly selectBy: 'accuracy' | 'loss';
  readonly steps: number;
  readonly scoring: 'all' | 'last';
  private readonly splits: { train: Split; valid: Split; test?: Split };
  private readonly stream: EpochOrder;

  constructor(data: InMemoryData) {
    const d = checkOptions(FN, data, ['inputSize', 'outputSize', 'steps', 'loss', 'score', 'name', 'train', 'valid', 'test', 'seed']) as Partial<InMemoryData>;
    if (data === undefined) throw typeError(FN, 'data', 'an object', data);
    this.inputSize = checkInteger(FN, 'inputSize', d.inputSize, 1, 1 << 20);
    this.outputSize = checkInteger(FN, 'outputSize', d.outputSize, 1, 1 << 20);
    this.steps = checkInteger(FN, 'steps', d.steps, 1, 1 << 20);
    this.loss = checkOneOf(FN, 'loss', d.loss ?? 'crossEntropy', ['crossEntropy', 'mse'] as const);
    this.scoring = checkOneOf(FN, 'score', d.score ?? (this.loss === 'mse' ? 'last' : 'all'), ['all', 'last'] as const);
    if (this.loss === 'mse' && this.scoring !== 'last') throw rangeError(FN, 'score', "'last' for the mse loss", `'${this.scoring}'`);
    if (d.name !== undefined && (typeof d.name !== 'string' || d.name === '')) throw typeError(FN, 'name', 'a non-empty string', d.name);
    this.name = d.name ?? 'custom';
    this.stream = new EpochOrder(() => this.epochLength, checkInteger(FN, 'seed', d.seed ?? 0));
    this.selectBy = this.loss === 'mse' ? 'loss' : 'accuracy';
    this.splits = {
      train: this.checkSplit('train', d.train),
      valid: this.checkSplit('valid', d.valid),
      ...(d.test !== undefined ? { test: this.checkSplit('test', d.test) } : {}),
    };
  }

  private checkSplit(name: string, value: unknown): Split {
    const s = readObject(FN, name, value, 'an object { x, targets, lengths? }');
    for (const key of Object.keys(s)) if (!['x', 'targets', 'lengths'].includes(key)) throw rangeError(FN, name, "made of 'x', 'targets', 'lengths'", `unknown key '${key}'`);
    const { x, targets, lengths } = s;
    if (!(x instanceof Float32Array || x instanceof Float64Array)) throw typeError(FN, `${name}.x`, 'a Float32Array or Float64Array', x);
    const perSequence = this.steps * this.inputSize;
    if (x.length === 0 || x.length % perSequence !== 0) throw rangeError(FN, `${name}.x`, `N × ${this.steps} × ${this.inputSize} values (N ≥ 1)`, `${x.length} values`);
    const count = x.length / perSequence;
    for (let i = 0; i < x.length; i++) if (!Number.isFinite(x[i])) throw rangeError(FN, `${name}.x`, 'finite values', `${x[i]} at index ${i}`);
    const classes = this.loss === 'crossEntropy';
    const expected = classes ? (this.scoring === 'all' ? count * this.steps : count) : count * this.outputSize;
    if (classes ? !(targets instanceof Int32Array) : !(targets instanceof Float32Array || targets instanceof Float64Array)) {
      throw typeError(FN, `${name}.targets`, classes ? 'an Int32Array of class ids' : 'a Float32Array or Float64Array', targets);
    }
    const t = targets as Int32Array | Float32Array | Float64Array;
    if (t.length !== expected) throw rangeError(FN, `${name}.targets`, `${expected} values for ${count} sequences`, `${t.length}`);
    for (let i = 0; i < t.length; i++) {
      const v = t[i];
      if (classes ? !(v >= 0 && v < this.outputSize) : !Number.isFinite(v)) {
        throw rangeError(FN, `${name}.targets`, classes ? `class ids in 0..${this.outputSize - 1}` : 'finite values', `${v} at index ${i}`);
      }
    }
    if (lengths !== undefined) {
      if (this.scoring !== 'all') throw rangeError(FN, `${name}.lengths`, "given only with score 'all'", 'lengths');
      if (!(lengths instanceof Int32Array) || lengths.length !== count) throw typeError(FN, `${name}.lengths`, `an Int32Array of ${count} lengths`, lengths);
      for (let i = 0; i < count; i++) if (!(lengths[i] >= 1 && lengths[i] <= this.steps)) throw rangeError(FN, `${name}.lengths`, `lengths in 1..${this.steps}`, `${lengths[i]} at index ${i}`);
    }
    return { x, targets: t, lengths: lengths as Int32Array | undefined, count };
  }

  get epochLength(): number {
    return this.splits.train.count;
  }

  evalSize(split: EvalSplit): number {
    return this.splits[split]?.count ?? 0;
  }

  evalSteps(): number {
    return this.steps;
  }

  get epoch(): number {
    return this.stream.epoch;
  }

  trainBatch(B: number): HostBatch {
    return this.make(this.splits.train, this.stream.next(B));
  }

  evalBatch(split: EvalSplit, from: number, count: number): HostBatch {
    const s = this.splits[split];
    if (!s || !Number.isSafeInteger(from) || !Number.isSafeInteger(count) || from < 0 || count < 1 || from + count > s.count) {
      throw rangeError(`${this.name}.evalBatch`, 'from, count', `a range within the ${s?.count ?? 0} ${split} sequences`, `[${from}, ${from + count})`);
    }
    return this.make(s, Int32Array.from({ length: count }, (_, i) => from + i));
  }

  /** Gathers sequences into a time-major batch (T × B × d). */
  private make(s: Split, indices: ArrayLike<number>): HostBatch {
    const { steps: T, inputSize: d, outputSize: k } = this;
    const B = indices.length;
    const x = new Float32Array(T * B * d);
    for (let b = 0; b < B; b++) {
      const from = indices[b] * T * d;
      for (let t = 0; t < T; t++) {
        for (let j = 0; j < d; j++) x[(t * B + b) * d + j] = s.x[from + t * d + j];
      }
    }
    if (this.loss === 'mse') {
      const targets = new Float32Array(B * k);
      for (let b = 0; b < B; b++) for (let j = 0; j < k; j++) targets[b * k + j] = s.targets[indices[b] * k + j];
      return { x, T, B, targets, score: 'last' };
    }
    if (this.scoring === 'last') {
      return { x, T, B, targets: Int32Array.from({ length: B }, (_, b) => s.targets[indices[b]]), score: 'last' };
    }
    const targets = new Int32Array(T * B);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) targets[t * B + b] = s.targets[indices[b] * T + t];
    if (!s.lengths) return { x, T, B, targets, score: 'all' };
    const mask = new Float32Array(T * B);
    for (let b = 0; b < B; b++) for (let t = 0; t < s.lengths[indices[b]]; t++) mask[t * B + b] = 1;
    return { x, T, B, targets, score: 'mask', mask };
  }

  score(batch: HostBatch, y: Float32Array | Float64Array, totals: MetricTotals): void {
    if (this.loss === 'crossEntropy') return scoreCrossEntropy(batch, y, this.outputSize, totals);
    // MSE: the mean over the sequences and the k outputs of the last step.
    const { T, B, targets } = batch;
    const k = this.outputSize;
    totals.sequences += B;
    for (let b = 0; b < B; b++) {
      let sum = 0;
      for (let j = 0; j < k; j++) {
        const e = y[((T - 1) * B + b) * k + j] - targets[b * k + j];
        sum += e * e;
      }
      totals.lossSum += sum / k;
      totals.lossCount++;
    }
  }

  state(): unknown {
    return this.stream.state();
  }

  restore(state: unknown): void {
    this.stream.restore(state, `${FN}.restore`);
  }
}
