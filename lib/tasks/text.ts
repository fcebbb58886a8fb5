/**
 * Any plain-text file as a character corpus (UTF-8, or gzipped UTF-8): the text is cut into
 * train / valid / test parts (the first 90%, the next 5%, the last 5% by default), the
 * vocabulary is every character of the whole file, and a sequence is a window of `length`
 * characters whose targets are the next characters. Training windows start at seeded random
 * offsets; evaluation windows tile their part without overlap.
 */
import { DataError, rangeError } from '../errors';
import { readDataFile } from '../io/files';
import { TaskRandom } from './random';

export interface TextBatch {
  /** T × B × V one-hot inputs. */
  x: Float32Array;
  /** T × B next-character ids. */
  targets: Int32Array;
  steps: number;
  batchSize: number;
}

export type TextSplit = 'train' | 'valid' | 'test';

export class TextCorpusTask {
  readonly file: string;
  readonly length: number;
  /** Characters by id. */
  readonly vocabulary: string[];
  /** The corpus as character ids, per part. */
  readonly parts: Record<TextSplit, Int32Array>;
  readonly random: TaskRandom;

  constructor(options: { file: string; length: number; seed?: number; fractions?: [number, number] }) {
    const fn = 'TextCorpusTask';
    const { file, length, seed = 0, fractions = [0.9, 0.05] } = options;
    if (typeof file !== 'string' || file.length === 0) throw rangeError(fn, 'file', 'the path of a text file', String(file));
    if (!Number.isSafeInteger(length) || length < 1) throw rangeError(fn, 'length', 'a positive integer', String(length));
    const [ft, fv] = fractions;
    if (!(ft > 0 && fv > 0 && ft + fv < 1)) throw rangeError(fn, 'fractions', 'train and valid fractions > 0 with a sum < 1', `[${fractions.join(', ')}]`);
    const chars = Array.from(readDataFile(file).toString('utf8'));
    this.file = file;
    this.length = length;
    this.vocabulary = [...new Set(chars)].sort();
    const ids = new Map(this.vocabulary.map((c, i) => [c, i]));
    const all = Int32Array.from(chars, (c) => ids.get(c)!);
    const a = Math.floor(all.length * ft), b = Math.floor(all.length * (ft + fv));
    this.parts = { train: all.subarray(0, a), valid: all.subarray(a, b), test: all.subarray(b) };
    for (const [name, part] of Object.entries(this.parts)) {
      if (part.length < length + 1) throw new DataError(`'${file}': its ${name} part has ${part.length} characters, fewer than one sequence of ${length} + 1`);
    }
    this.random = new TaskRandom(seed);
  }

  get vocabularySize(): number {
    return this.vocabulary.length;
  }

  /** Evaluation windows in a part: ⌊(chars − 1) / length⌋. */
  windows(split: TextSplit): number {
    return Math.floor((this.parts[split].length - 1) / this.length);
  }

  /** The next training batch: windows at seeded random offsets of the train part. */
  batch(batchSize: number): TextBatch {
    if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw rangeError('TextCorpusTask.batch', 'batchSize', 'a positive integer', String(batchSize));
    const part = this.parts.train;
    const starts = Array.from({ length: batchSize }, () => this.random.int(0, part.length - this.length - 1));
    return this.encode(part, starts);
  }

  /** Evaluation windows `indices` (window i starts at i · length) of a part. */
  windowBatch(split: TextSplit, indices: ArrayLike<number>): TextBatch {
    const count = this.windows(split);
    const starts = Array.from(indices, (i) => {
      if (!Number.isInteger(i) || i < 0 || i >= count) throw rangeError('TextCorpusTask.windowBatch', 'indices', `integers in [0, ${count})`, String(i));
      return i * this.length;
    });
    if (starts.length < 1) throw rangeError('TextCorpusTask.windowBatch', 'indices', 'at least one window', 'none');
    return this.encode(this.parts[split], starts);
  }

  private encode(part: Int32Array, starts: number[]): TextBatch {
    const T = this.length, B = starts.length, V = this.vocabularySize;
    const x = new Float32Array(T * B * V), targets = new Int32Array(T * B);
    starts.forEach((s, b) => {
      for (let t = 0; t < T; t++) {
        x[(t * B + b) * V + part[s + t]] = 1;
        targets[t * B + b] = part[s + t + 1];
      }
    });
    return { x, targets, steps: T, batchSize: B };
  }
}
