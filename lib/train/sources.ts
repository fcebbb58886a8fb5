/**
 * Every task behind one face for the training loop: a seeded stream of training batches
 * (with a state that checkpoints save and restore), fixed validation and test sets, and how
 * the task's metrics follow from the model's outputs. Nothing here allocates in proportion
 * to the configured sizes up front: the generated tasks' held-out sets are made batch by
 * batch (and kept only when small), and metrics are summed sequence by sequence, so that they
 * do not depend on how a split is cut into batches.
 */
import { rangeError } from '../errors';
import type { LossKind, Scoring } from '../models/batch';
import { AddingTask } from '../tasks/adding';
import { COPY_CLASSES, COPY_LENGTH, CopyTask } from '../tasks/copy';
import { MnistTask, MNIST_CLASSES, MNIST_PIXELS, type MnistSplit } from '../tasks/mnist';
import { PtbCharTask } from '../tasks/ptb';
import { TaskRandom } from '../tasks/random';
import { TextCorpusTask } from '../tasks/text';
import type { TrainConfig } from './config';
import type { TaskMetrics } from './records';

/** A batch in host memory, time-major. */
export interface HostBatch {
  /** T × B × d. */
  x: Float32Array;
  T: number;
  B: number;
  /** Class ids (T × B, or B when the last step is scored) or MSE targets (B × k). */
  targets: Int32Array | Float32Array;
  score: Scoring;
  /** T × B weights for score 'mask'. */
  mask?: Float32Array;
}

export type EvalSplit = 'valid' | 'test';

export interface TaskSource {
  readonly name: string;
  readonly inputSize: number;
  readonly outputSize: number;
  readonly loss: LossKind;
  /** Which validation metric picks the best weights. */
  readonly selectBy: 'accuracy' | 'loss';
  /** Training sequences per epoch; undefined for generated tasks (an epoch is then GENERATED_EPOCH batches). */
  readonly epochLength?: number;
  /** The memoryless baseline loss, where the task has one. */
  readonly baseline?: number;
  /** Epochs started so far (datasets), counted from 0. */
  readonly epoch: number;
  trainBatch(B: number): HostBatch;
  evalSize(split: EvalSplit): number;
  /** The longest sequence (time steps) of a held-out split: what one evaluation sequence costs. */
  evalSteps(split: EvalSplit): number;
  /** Sequences [from, from + count) of a held-out split. */
  evalBatch(split: EvalSplit, from: number, count: number): HostBatch;
  /** Accumulates one batch's metrics from the model's outputs (T × B × k). */
  score(batch: HostBatch, outputs: Float32Array | Float64Array, totals: MetricTotals): void;
  /** The position in the training stream (JSON), for checkpoints. */
  state(): unknown;
  restore(state: unknown): void;
}

export class MetricTotals {
  lossSum = 0;
  lossCount = 0;
  right = 0;
  counted = 0;
  sequences = 0;

  metrics(source: TaskSource): TaskMetrics {
    const loss = this.lossCount > 0 ? this.lossSum / this.lossCount : NaN;
    const out: TaskMetrics = { loss };
    if (source.loss === 'mse') out.mse = loss;
    else out.accuracy = this.counted > 0 ? this.right / this.counted : NaN;
    if (source.name === 'ptb' || source.name === 'text') out.bitsPerChar = loss / Math.LN2;
    return out;
  }
}

/** Cross-entropy and arg-max of one row of logits. */
function crossEntropyRow(y: Float32Array | Float64Array, at: number, k: number, target: number): [number, boolean] {
  let max = -Infinity, arg = 0;
  for (let c = 0; c < k; c++) if (y[at + c] > max) [max, arg] = [y[at + c], c];
  let sum = 0;
  for (let c = 0; c < k; c++) sum += Math.exp(y[at + c] - max);
  return [Math.log(sum) + max - y[at + target], arg === target];
}

/**
 * Cross-entropy scoring: loss over the scored positions; accuracy from time step
 * `accuracyFrom` on (or the scored positions). Each sequence's loss is summed on its own and
 * then added in sequence order, so the totals are the same however a split is batched.
 */
export function scoreCrossEntropy(batch: HostBatch, y: Float32Array | Float64Array, k: number, totals: MetricTotals, accuracyFrom?: number): void {
  const { T, B, targets, score, mask } = batch;
  totals.sequences += B;
  for (let b = 0; b < B; b++) {
    let sequenceLoss = 0;
    for (let t = score === 'last' ? T - 1 : 0; t < T; t++) {
      if (score === 'mask' && !(mask![t * B + b] > 0)) continue;
      const target = score === 'last' ? targets[b] : targets[t * B + b];
      const [loss, right] = crossEntropyRow(y, (t * B + b) * k, k, target);
      sequenceLoss += loss;
      totals.lossCount++;
      if (accuracyFrom === undefined || t >= accuracyFrom) {
        totals.counted++;
        if (right) totals.right++;
      }
    }
    totals.lossSum += sequenceLoss;
  }
}

/** Held-out sets of generated tasks up to this size are kept after their first use; larger ones are made anew each time. */
const HELD_OUT_CACHE_BYTES = 8 * 2 ** 20;
/** The most memory that skipping ahead in a held-out stream takes at a time. */
const SKIP_CHUNK_BYTES = 4 * 2 ** 20;

/** Where a held-out stream stands: its generator and the next sequence it makes. */
interface HeldOutCursor<Task> {
  task: Task;
  next: number;
}

/**
 * A generated task: training batches from one seeded stream, held-out sets from their own
 * seeds. Sequence i of a held-out set is the i-th sequence of its stream, so a batch of it is
 * made by running the stream to `from` (in bounded chunks) and generating `count` sequences:
 * the same values as slicing the whole set, without holding it.
 */
abstract class GeneratedSource<Task extends { random: TaskRandom }> implements TaskSource {
  abstract readonly name: string;
  abstract readonly inputSize: number;
  abstract readonly outputSize: number;
  abstract readonly loss: LossKind;
  abstract readonly baseline: number;
  readonly selectBy = 'loss' as const;
  readonly epoch = 0;
  private readonly cursors = new Map<EvalSplit, HeldOutCursor<Task>>();
  private readonly held = new Map<EvalSplit, HostBatch>();

  constructor(
    protected readonly seed: number,
    protected readonly validSize: number,
  ) {}

  /** The training stream. */
  protected abstract readonly task: Task;
  /** A stream of the task from its own seed. */
  protected abstract makeTask(seed: number): Task;
  /** The next `B` sequences of a stream. */
  protected abstract generate(task: Task, B: number): HostBatch;
  /** Time steps per sequence. */
  abstract evalSteps(): number;

  trainBatch(B: number): HostBatch {
    return this.generate(this.task, B);
  }

  evalSize(): number {
    return this.validSize;
  }

  evalBatch(split: EvalSplit, from: number, count: number): HostBatch {
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(count) || from < 0 || count < 1 || from + count > this.validSize) {
      throw rangeError(`${this.name}.evalBatch`, 'from, count', `a range within the ${this.validSize} held-out sequences`, `[${from}, ${from + count})`);
    }
    const perSequence = this.evalSteps() * this.inputSize * Float32Array.BYTES_PER_ELEMENT;
    const whole = this.held.get(split);
    if (whole) return sliceBatch(whole, from, count);
    if (this.validSize * perSequence <= HELD_OUT_CACHE_BYTES) {
      const all = this.generate(this.makeTask(this.heldOutSeed(split)), this.validSize);
      this.held.set(split, all);
      return sliceBatch(all, from, count);
    }
    let cursor = this.cursors.get(split);
    if (!cursor || cursor.next > from) {
      cursor = { task: this.makeTask(this.heldOutSeed(split)), next: 0 };
      this.cursors.set(split, cursor);
    }
    const chunk = Math.max(1, Math.floor(SKIP_CHUNK_BYTES / perSequence));
    while (cursor.next < from) {
      const n = Math.min(chunk, from - cursor.next);
      this.generate(cursor.task, n);
      cursor.next += n;
    }
    const batch = this.generate(cursor.task, count);
    cursor.next += count;
    return batch;
  }

  private heldOutSeed(split: EvalSplit): number {
    return this.seed + (split === 'valid' ? 1_000_003 : 2_000_003);
  }

  abstract score(batch: HostBatch, outputs: Float32Array | Float64Array, totals: MetricTotals): void;

  state(): unknown {
    return { random: this.task.random.state() };
  }

  restore(state: unknown): void {
    this.task.random.restore((state as { random: number[] }).random);
  }
}

/** Sequences [from, from + count) of a batch (same T). */
function sliceBatch(all: HostBatch, from: number, count: number): HostBatch {
  const { T, B } = all;
  const d = all.x.length / (T * B);
  const x = new Float32Array(T * count * d);
  for (let t = 0; t < T; t++) x.set(all.x.subarray((t * B + from) * d, (t * B + from + count) * d), t * count * d);
  let targets: Int32Array | Float32Array;
  if (all.score === 'last') {
    const k = all.targets.length / B;
    targets = all.targets.slice(from * k, (from + count) * k);
  } else {
    targets = new Int32Array(T * count);
    for (let t = 0; t < T; t++) targets.set(all.targets.subarray(t * B + from, t * B + from + count), t * count);
  }
  return { x, T, B: count, targets, score: all.score };
}

class CopySource extends GeneratedSource<CopyTask> {
  readonly name = 'copy';
  readonly inputSize = COPY_CLASSES;
  readonly outputSize = COPY_CLASSES;
  readonly loss = 'crossEntropy' as const;
  readonly baseline: number;
  protected readonly task: CopyTask;

  constructor(private readonly config: TrainConfig) {
    super(config.seed, config.validSize || 1000);
    this.task = this.makeTask(config.seed);
    this.baseline = this.task.baselineLoss();
  }

  protected makeTask(seed: number): CopyTask {
    return new CopyTask({ delay: this.config.delay, seed });
  }

  protected generate(task: CopyTask, B: number): HostBatch {
    const b = task.batch(B);
    return { x: b.x, T: b.steps, B, targets: b.targets, score: 'all' };
  }

  evalSteps(): number {
    return this.task.steps;
  }

  /** Loss over every step; accuracy on the last 10 steps (the recalled symbols). */
  score(batch: HostBatch, y: Float32Array | Float64Array, totals: MetricTotals): void {
    scoreCrossEntropy(batch, y, COPY_CLASSES, totals, batch.T - COPY_LENGTH);
  }
}

class AddingSource extends GeneratedSource<AddingTask> {
  readonly name = 'adding';
  readonly inputSize = 2;
  readonly outputSize = 1;
  readonly loss = 'mse' as const;
  readonly baseline: number;
  protected readonly task: AddingTask;

  constructor(private readonly config: TrainConfig) {
    super(config.seed, config.validSize || 1000);
    this.task = this.makeTask(config.seed);
    this.baseline = this.task.baselineLoss();
  }

  protected makeTask(seed: number): AddingTask {
    return new AddingTask({ length: this.config.length, target: this.config.addingTarget, seed });
  }

  protected generate(task: AddingTask, B: number): HostBatch {
    const b = task.batch(B);
    return { x: b.x, T: b.steps, B, targets: b.targets, score: 'last' };
  }

  evalSteps(): number {
    return this.task.length;
  }

  score(batch: HostBatch, y: Float32Array | Float64Array, totals: MetricTotals): void {
    const { T, B, targets } = batch;
    totals.sequences += B;
    for (let b = 0; b < B; b++) {
      const e = y[(T - 1) * B + b] - targets[b];
      totals.lossSum += e * e;
      totals.lossCount++;
    }
  }
}

/** The seeded permutation of n training sequences for an epoch (Fisher–Yates). */
function seededOrder(n: number, seed: number, epoch: number): Int32Array {
  const order = Int32Array.from({ length: n }, (_, i) => i);
  const random = new TaskRandom(seed * 1_000_003 + epoch);
  for (let i = n - 1; i > 0; i--) {
    const j = random.int(0, i);
    [order[i], order[j]] = [order[j], order[i]];
  }
  return order;
}

/**
 * Where a dataset's training stream stands: sequences in a fresh seeded order each epoch, the
 * last partial batch of an epoch dropped. `state()` is what checkpoints keep; `restore` checks
 * it and continues the same order exactly.
 */
export class EpochOrder {
  epoch = 0;
  private order: Int32Array | null = null;
  private position = 0;

  /** `size` is read when needed: a dataset may know its size only after its constructor. */
  constructor(
    private readonly size: () => number,
    private readonly seed: number,
  ) {}

  /** The indices of the next B training sequences. */
  next(B: number): Int32Array {
    const n = this.size();
    if (B > n) throw rangeError('train', 'batchSize', `at most the ${n} training sequences`, String(B));
    this.order ??= seededOrder(n, this.seed, this.epoch);
    if (this.position + B > n) {
      this.epoch++;
      this.order = seededOrder(n, this.seed, this.epoch);
      this.position = 0;
    }
    const indices = this.order.subarray(this.position, this.position + B);
    this.position += B;
    return indices;
  }

  state(): { epoch: number; position: number } {
    return { epoch: this.epoch, position: this.position };
  }

  restore(state: unknown, fn: string): void {
    const n = this.size();
    const s = state as { epoch?: unknown; position?: unknown } | null;
    const ok = s !== null && typeof s === 'object' && Number.isSafeInteger(s.epoch) && Number.isSafeInteger(s.position) &&
      (s.epoch as number) >= 0 && (s.position as number) >= 0 && (s.position as number) <= n;
    if (!ok) throw rangeError(fn, 'state', `{ epoch, position } with position in 0..${n}`, JSON.stringify(state));
    this.epoch = s!.epoch as number;
    this.position = s!.position as number;
    this.order = seededOrder(n, this.seed, this.epoch);
  }
}

/** A dataset: training sequences in a fresh seeded order each epoch. */
abstract class DatasetSource implements TaskSource {
  abstract readonly name: string;
  abstract readonly inputSize: number;
  abstract readonly outputSize: number;
  readonly loss = 'crossEntropy' as const;
  abstract readonly selectBy: 'accuracy' | 'loss';
  private readonly stream: EpochOrder;

  constructor(
    protected readonly seed: number,
    protected readonly validSize: number,
  ) {
    this.stream = new EpochOrder(() => this.epochLength, seed);
  }

  get epoch(): number {
    return this.stream.epoch;
  }

  abstract get epochLength(): number;
  protected abstract fullSize(split: EvalSplit): number;
  abstract evalSteps(split: EvalSplit): number;
  protected abstract make(split: 'train' | EvalSplit, indices: ArrayLike<number>): HostBatch;
  abstract score(batch: HostBatch, outputs: Float32Array | Float64Array, totals: MetricTotals): void;

  trainBatch(B: number): HostBatch {
    return this.make('train', this.stream.next(B));
  }

  evalSize(split: EvalSplit): number {
    const all = this.fullSize(split);
    return this.validSize > 0 && split === 'valid' ? Math.min(this.validSize, all) : all;
  }

  evalBatch(split: EvalSplit, from: number, count: number): HostBatch {
    return this.make(split, Int32Array.from({ length: count }, (_, i) => from + i));
  }

  state(): unknown {
    return this.stream.state();
  }

  restore(state: unknown): void {
    this.stream.restore(state, `${this.name}.restore`);
  }
}

class MnistSource extends DatasetSource {
  readonly name: string;
  readonly inputSize = 1;
  readonly outputSize = MNIST_CLASSES;
  readonly selectBy = 'accuracy' as const;
  private readonly task: MnistTask;

  constructor(config: TrainConfig) {
    super(config.seed, config.validSize);
    this.name = config.task;
    this.task = new MnistTask({ dir: config.dataDir || undefined, permuted: config.task === 'pmnist', seed: config.seed });
  }

  get epochLength(): number {
    return this.task.train.count;
  }

  evalSteps(): number {
    return MNIST_PIXELS;
  }

  private splitOf(split: 'train' | EvalSplit): MnistSplit {
    return this.task[split];
  }

  protected fullSize(split: EvalSplit): number {
    return this.splitOf(split).count;
  }

  protected make(split: 'train' | EvalSplit, indices: ArrayLike<number>): HostBatch {
    const b = this.task.batch(this.splitOf(split), indices);
    return { x: b.x, T: b.steps, B: b.batchSize, targets: b.targets, score: 'last' };
  }

  score(batch: HostBatch, y: Float32Array | Float64Array, totals: MetricTotals): void {
    scoreCrossEntropy(batch, y, MNIST_CLASSES, totals);
  }
}

class PtbSource extends DatasetSource {
  readonly name = 'ptb';
  readonly selectBy = 'loss' as const;
  readonly inputSize: number;
  readonly outputSize: number;
  private readonly task: PtbCharTask;

  constructor(config: TrainConfig) {
    super(config.seed, config.validSize);
    this.task = new PtbCharTask({ dir: config.dataDir, maxLength: config.maxLength });
    this.inputSize = this.outputSize = this.task.vocabularySize;
  }

  get epochLength(): number {
    return this.task.train.length;
  }

  evalSteps(split: EvalSplit): number {
    return this.task.longest(split);
  }

  protected fullSize(split: EvalSplit): number {
    return this.task[split].length;
  }

  protected make(split: 'train' | EvalSplit, indices: ArrayLike<number>): HostBatch {
    const b = this.task.batch(this.task[split], indices);
    return { x: b.x, T: b.steps, B: b.batchSize, targets: b.targets, score: 'mask', mask: b.mask };
  }

  score(batch: HostBatch, y: Float32Array | Float64Array, totals: MetricTotals): void {
    scoreCrossEntropy(batch, y, this.outputSize, totals);
  }
}

class TextSource implements TaskSource {
  readonly name = 'text';
  readonly loss = 'crossEntropy' as const;
  readonly selectBy = 'loss' as const;
  readonly inputSize: number;
  readonly outputSize: number;
  readonly epochLength: number;
  private readonly task: TextCorpusTask;
  private trained = 0;

  constructor(private readonly config: TrainConfig) {
    this.task = new TextCorpusTask({ file: config.textFile, length: config.length, seed: config.seed });
    this.inputSize = this.outputSize = this.task.vocabularySize;
    // An epoch: as many windows as tile the train part.
    this.epochLength = this.task.windows('train');
  }

  get epoch(): number {
    return Math.floor(this.trained / this.epochLength);
  }

  trainBatch(B: number): HostBatch {
    const b = this.task.batch(B);
    this.trained += B;
    return { x: b.x, T: b.steps, B, targets: b.targets, score: 'all' };
  }

  evalSize(split: EvalSplit): number {
    const all = this.task.windows(split);
    return this.config.validSize > 0 && split === 'valid' ? Math.min(this.config.validSize, all) : all;
  }

  evalSteps(): number {
    return this.task.length;
  }

  evalBatch(split: EvalSplit, from: number, count: number): HostBatch {
    const b = this.task.windowBatch(split, Int32Array.from({ length: count }, (_, i) => from + i));
    return { x: b.x, T: b.steps, B: count, targets: b.targets, score: 'all' };
  }

  score(batch: HostBatch, y: Float32Array | Float64Array, totals: MetricTotals): void {
    scoreCrossEntropy(batch, y, this.outputSize, totals);
  }

  state(): unknown {
    return { random: this.task.random.state(), trained: this.trained };
  }

  restore(state: unknown): void {
    const s = state as { random: number[]; trained: number };
    this.task.random.restore(s.random);
    this.trained = s.trained;
  }
}

/** The task a configuration names, with its data loaded. */
export function createSource(config: TrainConfig): TaskSource {
  switch (config.task) {
    case 'custom':
      throw rangeError('createSource', 'task', "a built-in task ('custom' data comes from the source given to Trainer.create(options, { source }) or Trainer.resume(dir, { source }))", "'custom'");
    case 'copy':
      return new CopySource(config);
    case 'adding':
      return new AddingSource(config);
    case 'mnist':
    case 'pmnist':
      return new MnistSource(config);
    case 'ptb':
      return new PtbSource(config);
    case 'text':
      return new TextSource(config);
  }
}
