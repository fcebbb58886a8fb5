/**
 * Trains on two contexts while the process spawns children, as a service that trains, serves
 * and starts processes does: threaded BLAS calls are under way at every fork. Prints 'ok' and
 * the counts when done; a hang is caught by the parent's timeout.
 */
import { spawn } from 'node:child_process';
import { Context, ElmanRNN } from '../../lib/index';

async function main(): Promise<void> {
  const steps = Number(process.argv[2] ?? 60);
  const make = async (seed: number) => {
    const context = new Context();
    // 384 units: the per-step products go through threaded BLAS.
    const model = await ElmanRNN.create({ inputSize: 8, hiddenSize: 384, outputSize: 8, context, seed });
    const x = context.randn([40, 48, 8], { seed });
    const targets = context.tensor(new Int32Array(40 * 48), [40, 48]);
    return { model, x, targets };
  };
  const models = [await make(1), await make(2)];
  let running = true;
  let children = 0;
  const spawner = (async () => {
    while (running) {
      await new Promise<void>((resolve) => spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' }).on('close', () => resolve()));
      children++;
    }
  })();
  await Promise.all(models.map(async (m) => {
    for (let i = 0; i < steps; i++) await m.model.lossAndGradients({ x: m.x, targets: m.targets });
  }));
  running = false;
  await spawner;
  console.log(`ok: ${2 * steps} steps on two contexts beside ${children} children spawned`);
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
