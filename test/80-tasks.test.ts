import assert from 'node:assert/strict';
import { Context, ops } from '../lib/index';
import { AddingTask, CopyTask } from '../lib/train/index';
import { announceSeed, TEST_SEED } from './helpers';

describe('80 tasks: generators of the paper\'s synthetic tasks', () => {
  let ctx: Context;
  before(() => {
    announceSeed();
    ctx = new Context();
  });
  after(() => ctx.dispose());

  describe('copy', () => {
    for (const delay of [1, 7, 100]) {
      it(`delay ${delay}: 10 symbols from 8, T − 1 blanks, a delimiter, 10 blanks; targets blank then the symbols`, () => {
        const task = new CopyTask({ delay, seed: TEST_SEED });
        const B = 5;
        const { x, targets, steps } = task.batch(B);
        assert.equal(steps, delay + 20);
        for (let b = 0; b < B; b++) {
          const input: number[] = [];
          for (let t = 0; t < steps; t++) {
            const row = x.subarray((t * B + b) * 10, (t * B + b + 1) * 10);
            assert.equal(row.reduce((a, v) => a + v, 0), 1, 'one-hot');
            input.push(row.indexOf(1));
          }
          const symbols = input.slice(0, 10);
          assert.ok(symbols.every((s) => s >= 1 && s <= 8));
          assert.deepEqual(input.slice(10, 10 + delay - 1), new Array(delay - 1).fill(0));
          assert.equal(input[10 + delay - 1], 9);
          assert.deepEqual(input.slice(10 + delay), new Array(10).fill(0));
          const target = Array.from({ length: steps }, (_, t) => targets[t * B + b]);
          assert.deepEqual(target.slice(0, steps - 10), new Array(steps - 10).fill(0));
          assert.deepEqual(target.slice(steps - 10), symbols);
        }
      });
    }

    it('the memoryless baseline scores exactly 10·ln 8 / (T + 20) with the native cross-entropy', async () => {
      const delay = 30, B = 16;
      const task = new CopyTask({ delay, seed: 1 });
      const { targets, steps } = task.batch(B);
      // Blanks with certainty, then uniform over the 8 symbols.
      const logits = new Float64Array(steps * B * 10);
      for (let t = 0; t < steps; t++) {
        for (let b = 0; b < B; b++) {
          const row = (t * B + b) * 10;
          if (t < steps - 10) {
            logits[row] = 60;
          } else {
            logits[row] = -1e9; // symbols 1..8 keep logit 0: uniform over them
            logits[row + 9] = -1e9;
          }
        }
      }
      const weights = new Float64Array(steps * B).fill(1 / (steps * B));
      const { loss } = ops.softmaxCrossEntropy(ctx.tensor(logits, [steps * B, 10]), ctx.tensor(targets, [steps * B]), { weights: ctx.tensor(weights, [steps * B]), gradient: false });
      assert.ok(Math.abs((await loss.item()) - task.baselineLoss()) < 1e-12, `${await loss.item()} vs ${task.baselineLoss()}`);
      assert.equal(task.baselineLoss(), (10 * Math.log(8)) / (delay + 20));
    });

    it('is deterministic per seed, different across seeds, and a stream across batches', () => {
      const a = new CopyTask({ delay: 5, seed: 3 }), b = new CopyTask({ delay: 5, seed: 3 }), c = new CopyTask({ delay: 5, seed: 4 });
      const a1 = a.batch(4), b1 = b.batch(4);
      assert.deepEqual(a1.targets, b1.targets);
      assert.notDeepEqual(a1.targets, c.batch(4).targets);
      assert.notDeepEqual(a.batch(4).targets, a1.targets);
    });

    it('accuracy counts the last 10 steps only; bad arguments are RangeErrors', () => {
      const task = new CopyTask({ delay: 3 });
      const batch = task.batch(2);
      assert.equal(task.accuracy(batch, batch.targets), 1);
      const wrong = Int32Array.from(batch.targets, (v, i) => (i < (batch.steps - 10) * 2 ? v : 0));
      assert.equal(task.accuracy(batch, wrong), 0);
      assert.throws(() => new CopyTask({ delay: 0 }), RangeError);
      assert.throws(() => task.batch(0), RangeError);
      assert.throws(() => task.accuracy(batch, new Int32Array(3)), RangeError);
    });
  });

  describe('adding', () => {
    it('has exactly two markers, one in each half, and the target is their sum (or mean)', () => {
      for (const target of ['sum', 'mean'] as const) {
        const T = 51, B = 40;
        const { x, targets } = new AddingTask({ length: T, target, seed: TEST_SEED }).batch(B);
        for (let b = 0; b < B; b++) {
          const marked: number[] = [];
          let sum = 0;
          for (let t = 0; t < T; t++) {
            const value = x[(t * B + b) * 2], marker = x[(t * B + b) * 2 + 1];
            assert.ok(value >= 0 && value < 1);
            if (marker === 1) {
              marked.push(t);
              sum += value;
            } else assert.equal(marker, 0);
          }
          assert.equal(marked.length, 2);
          assert.ok(marked[0] < Math.floor(T / 2) && marked[1] >= Math.floor(T / 2), `markers at ${marked}`);
          assert.ok(Math.abs(targets[b] - (target === 'sum' ? sum : sum / 2)) < 1e-6);
        }
      }
    });

    it('predicting the mean scores about the 1/6 baseline for the sum (1/24 for the mean)', () => {
      for (const target of ['sum', 'mean'] as const) {
        const task = new AddingTask({ length: 10, target, seed: 11 });
        const { targets } = task.batch(40_000);
        const mean = target === 'sum' ? 1 : 0.5;
        const mse = targets.reduce((a, v) => a + (v - mean) ** 2, 0) / targets.length;
        assert.ok(Math.abs(mse - task.baselineLoss()) < 0.05 * task.baselineLoss(), `${target}: ${mse} vs ${task.baselineLoss()}`);
      }
      assert.throws(() => new AddingTask({ length: 1 }), RangeError);
      assert.throws(() => new AddingTask({ length: 10, target: 'max' as never }), RangeError);
    });
  });
});
