/**
 * Penn Treebank characters (the paper's PTBc-75 and PTBc-300): Mikolov's `ptb.char.{train,valid,test}.txt`, one
 * sentence per line, characters separated by spaces and words by '_'. Each sentence is one
 * sequence: the input at step t is character t, the target character t + 1 (the end of the
 * sentence after the last). Sentences longer than `maxLength` are dropped ("PTBc-75",
 * "PTBc-300"). Batches pad to their longest sentence and carry the T × B mask of real
 * positions; the loss in nats / ln 2 is bits per character. The files are read from a
 * folder the caller gives (the data's licence keeps them out of this package); .gz works too.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { DataError, rangeError } from '../errors';
import { readDataFile } from '../io/files';

export const END_OF_SENTENCE = '\n';

export interface PtbBatch {
  /** T × B × V one-hot inputs (zeros on padding). */
  x: Float32Array;
  /** T × B next-character ids (0 on padding). */
  targets: Int32Array;
  /** T × B: 1 on real positions, 0 on padding. */
  mask: Float32Array;
  steps: number;
  batchSize: number;
}

/** Cross-entropy in nats to bits per character. */
export function bitsPerCharacter(nats: number): number {
  return nats / Math.LN2;
}

function readSplit(dir: string, name: string): string[][] {
  const base = path.join(dir, `ptb.char.${name}.txt`);
  const file = existsSync(base) ? base : existsSync(`${base}.gz`) ? `${base}.gz` : null;
  if (!file) throw new DataError(`PTB: neither '${base}' nor '${base}.gz' exists (give the folder of Mikolov's ptb.char.*.txt files)`);
  return readDataFile(file)
    .toString('utf8')
    .split('\n')
    .map((line) => line.split(' ').filter((c) => c.length > 0))
    .filter((chars) => chars.length > 0);
}

export class PtbCharTask {
  readonly maxLength: number;
  /** Characters by id; the last is the end of a sentence. */
  readonly vocabulary: string[];
  readonly train: Int32Array[];
  readonly valid: Int32Array[];
  readonly test: Int32Array[];
  /** Sentences dropped for length, per split. */
  readonly dropped: { train: number; valid: number; test: number };

  constructor(options: { dir: string; maxLength: number }) {
    const { dir, maxLength } = options;
    if (typeof dir !== 'string') throw rangeError('PtbCharTask', 'dir', "the folder of Mikolov's ptb.char.*.txt files", String(dir));
    if (!Number.isSafeInteger(maxLength) || maxLength < 1) throw rangeError('PtbCharTask', 'maxLength', 'a positive integer', String(maxLength));
    this.maxLength = maxLength;
    const raw = { train: readSplit(dir, 'train'), valid: readSplit(dir, 'valid'), test: readSplit(dir, 'test') };
    const symbols = new Set<string>();
    for (const line of raw.train) for (const c of line) symbols.add(c);
    this.vocabulary = [...symbols].sort();
    this.vocabulary.push(END_OF_SENTENCE);
    const ids = new Map(this.vocabulary.map((c, i) => [c, i]));
    const dropped = { train: 0, valid: 0, test: 0 };
    const encode = (name: 'train' | 'valid' | 'test') =>
      raw[name].flatMap((line) => {
        if (line.length > maxLength) {
          dropped[name]++;
          return [];
        }
        const out = new Int32Array(line.length);
        for (let i = 0; i < line.length; i++) {
          const id = ids.get(line[i]);
          if (id === undefined) throw new DataError(`PTB ${name}: the character '${line[i]}' does not occur in the training file`);
          out[i] = id;
        }
        return [out];
      });
    this.train = encode('train');
    this.valid = encode('valid');
    this.test = encode('test');
    this.dropped = dropped;
  }

  get vocabularySize(): number {
    return this.vocabulary.length;
  }

  /** The longest sentence of a split (at most maxLength): the time steps of its longest batch. */
  longest(split: 'train' | 'valid' | 'test'): number {
    let most = 0;
    for (const s of this[split]) most = Math.max(most, s.length);
    return most;
  }

  /** Sentences `indices` of a split, padded to the longest, with the mask of real positions. */
  batch(split: Int32Array[], indices: ArrayLike<number>): PtbBatch {
    const B = indices.length, V = this.vocabularySize, eos = V - 1;
    if (B < 1) throw rangeError('PtbCharTask.batch', 'indices', 'at least one sentence', 'none');
    const sentences = Array.from(indices, (i) => {
      if (!Number.isInteger(i) || i < 0 || i >= split.length) throw rangeError('PtbCharTask.batch', 'indices', `integers in [0, ${split.length})`, String(i));
      return split[i];
    });
    const T = Math.max(...sentences.map((s) => s.length));
    const x = new Float32Array(T * B * V), targets = new Int32Array(T * B), mask = new Float32Array(T * B);
    sentences.forEach((s, b) => {
      for (let t = 0; t < s.length; t++) {
        x[(t * B + b) * V + s[t]] = 1;
        targets[t * B + b] = t + 1 < s.length ? s[t + 1] : eos;
        mask[t * B + b] = 1;
      }
    });
    return { x, targets, mask, steps: T, batchSize: B };
  }
}
