import assert from 'node:assert/strict';
import { Context, ElmanRNN, ops, RMSprop } from '../lib/index';
import { CopyTask } from '../lib/train/index';
import { announceSeed } from './helpers';

// End to end: generator → model → BPTT → RMSprop on the Euclidean parameters and Cayley steps
// on U and V. A copy task with a short delay must be solved within a fixed step budget.
describe('85 learning: an svd RNN solves a small copy task', () => {
  before(() => announceSeed());

  it('delay 10, 64 units, m = 0.1: loss far below the memoryless baseline and every held-out symbol recalled within 5,000 steps', async function () {
    this.timeout(300_000);
    const ctx = new Context();
    try {
      const task = new CopyTask({ delay: 10, seed: 1 });
      // Held-out sequences from their own stream, checked every 50 steps once the training loss
      // is low. The step that recalls all of them moves with rounding (last-bit changes in the
      // LU moved it from 3,300 to 3,100) and with the model's seed (2,800 to 3,400 for seeds
      // 1 to 5): the budget leaves room for both.
      const heldOut = new CopyTask({ delay: 10, seed: 2 }).batch(64);
      const xHeldOut = ctx.tensor(heldOut.x, [heldOut.steps, 64, 10]);
      const model = await ElmanRNN.create({ inputSize: 10, hiddenSize: 64, outputSize: 10, margin: 0.1, context: ctx, seed: 1 });
      const { U, V, ...euclidean } = model.parameters;
      const lr = 2e-3;
      const optimizer = new RMSprop(euclidean, { lr });
      const B = 32;
      const recall = async () => {
        const { outputs } = model.forward(xHeldOut);
        const y = await outputs.read();
        outputs.dispose();
        const predictions = Int32Array.from({ length: heldOut.steps * 64 }, (_, i) => {
          let best = 0;
          for (let c = 1; c < 10; c++) if (y[i * 10 + c] > y[i * 10 + best]) best = c;
          return best;
        });
        return task.accuracy(heldOut, predictions);
      };
      const started = performance.now();
      let loss = Infinity;
      let accuracy = 0;
      let steps = 0;
      while (steps < 5000 && accuracy < 1) {
        steps++;
        const b = task.batch(B);
        const x = ctx.tensor(b.x, [b.steps, B, 10]), targets = ctx.tensor(b.targets, [b.steps, B]);
        const r = await model.lossAndGradients({ x, targets });
        loss = r.loss;
        optimizer.step(r.gradients);
        ops.cayleyStep(U, r.gradients.U, lr);
        ops.cayleyStep(V, r.gradients.V, lr);
        x.dispose();
        targets.dispose();
        if (steps % 50 === 0 && loss <= 0.005 * task.baselineLoss()) accuracy = await recall();
      }
      const drift = Math.max(await ops.orthogonalityError(U).item(), await ops.orthogonalityError(V).item());
      console.log(`      ${steps} steps in ${((performance.now() - started) / 1000).toFixed(1)} s: loss ${loss.toExponential(2)} ` +
        `(baseline ${task.baselineLoss().toFixed(3)}), held-out accuracy ${accuracy}, ‖UᵀU − I‖, ‖VᵀV − I‖ ≤ ${drift.toExponential(1)}`);
      assert.ok(loss <= 0.005 * task.baselineLoss(), `loss ${loss} after ${steps} steps`);
      assert.equal(accuracy, 1, `held-out accuracy after ${steps} steps`);
      assert.ok(drift < 1e-4, 'U and V stay orthogonal through training (float32)');
      const s = await model.singularValues();
      assert.ok(s[0] <= 1.1 + 1e-6 && s[s.length - 1] >= 0.9 - 1e-6, 'the spectrum stays inside the margin');
    } finally {
      ctx.dispose();
    }
  });
});
