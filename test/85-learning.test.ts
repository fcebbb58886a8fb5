import assert from 'node:assert/strict';
import { Context, CopyTask, ElmanRNN, ops, RMSprop } from '../lib/index';
import { announceSeed } from './helpers';

// End to end: generator → model → BPTT → RMSprop on the Euclidean parameters and Cayley steps
// on U and V. A copy task with a short delay must be solved within a fixed step budget.
describe('85 learning: an svd RNN solves a small copy task', () => {
  before(() => announceSeed());

  it('delay 10, 64 units, m = 0.1: loss far below the memoryless baseline and every symbol recalled within 4,000 steps', async function () {
    this.timeout(300_000);
    const ctx = new Context();
    try {
      const task = new CopyTask({ delay: 10, seed: 1 });
      const model = await ElmanRNN.create({ inputSize: 10, hiddenSize: 64, outputSize: 10, margin: 0.1, context: ctx, seed: 1 });
      const { U, V, ...euclidean } = model.parameters;
      const lr = 2e-3;
      const optimizer = new RMSprop(euclidean, { lr });
      const B = 32;
      const started = performance.now();
      let loss = Infinity;
      let steps = 0;
      for (; steps < 4000 && loss > 0.005 * task.baselineLoss(); ) {
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
      }
      // A fresh batch: all 10 symbols recalled for every sequence.
      const b = task.batch(64);
      const { outputs } = model.forward(ctx.tensor(b.x, [b.steps, 64, 10]));
      const y = await outputs.read();
      const predictions = Int32Array.from({ length: b.steps * 64 }, (_, i) => {
        let best = 0;
        for (let c = 1; c < 10; c++) if (y[i * 10 + c] > y[i * 10 + best]) best = c;
        return best;
      });
      const accuracy = task.accuracy(b, predictions);
      const drift = Math.max(await ops.orthogonalityError(U).item(), await ops.orthogonalityError(V).item());
      console.log(`      ${steps} steps in ${((performance.now() - started) / 1000).toFixed(1)} s: loss ${loss.toExponential(2)} ` +
        `(baseline ${task.baselineLoss().toFixed(3)}), accuracy ${accuracy}, ‖UᵀU − I‖, ‖VᵀV − I‖ ≤ ${drift.toExponential(1)}`);
      assert.ok(loss <= 0.005 * task.baselineLoss(), `loss ${loss} after ${steps} steps`);
      assert.equal(accuracy, 1);
      assert.ok(drift < 1e-4, 'U and V stay orthogonal through training (float32)');
      const s = await model.singularValues();
      assert.ok(s[0] <= 1.1 + 1e-6 && s[s.length - 1] >= 0.9 - 1e-6, 'the spectrum stays inside the margin');
    } finally {
      ctx.dispose();
    }
  });
});
