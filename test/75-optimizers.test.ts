import assert from 'node:assert/strict';
import { Adam, Context, RMSprop, SGD } from '../lib/index';
import type { Tensor } from '../lib/index';
import { announceSeed, assertClose, availableBackends, randomArray } from './helpers';

// Independent JS versions of PyTorch's update rules.
function reference(kind: 'rmsprop' | 'lasagne' | 'adam' | 'sgd', p: Float64Array, grads: Float64Array[], o: { lr: number; decay: number; rho?: number; beta1?: number; beta2?: number; momentum?: number; eps?: number }): Float64Array {
  const x = Float64Array.from(p);
  const s1 = new Float64Array(p.length), s2 = new Float64Array(p.length);
  grads.forEach((grad, step) => {
    for (let i = 0; i < x.length; i++) {
      const g = grad[i] + o.decay * x[i];
      if (kind === 'rmsprop') {
        s1[i] = o.rho! * s1[i] + (1 - o.rho!) * g * g;
        x[i] -= (o.lr * g) / (Math.sqrt(s1[i]) + o.eps!);
      } else if (kind === 'lasagne') {
        // Lasagne's rmsprop: accu ← ρ accu + (1 − ρ) g²; p ← p − lr g / sqrt(accu + ε)
        s1[i] = o.rho! * s1[i] + (1 - o.rho!) * g * g;
        x[i] -= (o.lr * g) / Math.sqrt(s1[i] + o.eps!);
      } else if (kind === 'adam') {
        s1[i] = o.beta1! * s1[i] + (1 - o.beta1!) * g;
        s2[i] = o.beta2! * s2[i] + (1 - o.beta2!) * g * g;
        const mh = s1[i] / (1 - o.beta1! ** (step + 1)), vh = s2[i] / (1 - o.beta2! ** (step + 1));
        x[i] -= (o.lr * mh) / (Math.sqrt(vh) + o.eps!);
      } else {
        s1[i] = step === 0 ? g : o.momentum! * s1[i] + g;
        x[i] -= o.lr * s1[i];
      }
    }
  });
  return x;
}

for (const device of availableBackends()) describe(`75 optimisers on ${device}: RMSprop, Adam, SGD against PyTorch's update rules`, () => {
  let ctx: Context;
  before(() => {
    announceSeed();
    ctx = new Context({ device });
  });
  after(() => ctx.dispose());

  const steps = 4;
  const cases = [
    { kind: 'rmsprop' as const, make: (p: Record<string, Tensor<'float64'>>) => new RMSprop(p, { lr: 0.01, rho: 0.9, eps: 1e-6, weightDecay: 1e-3 }), o: { lr: 0.01, rho: 0.9, eps: 1e-6, decay: 1e-3 } },
    { kind: 'lasagne' as const, make: (p: Record<string, Tensor<'float64'>>) => new RMSprop(p, { lr: 0.01, rho: 0.8, variant: 'lasagne', weightDecay: 1e-3 }), o: { lr: 0.01, rho: 0.8, eps: 1e-6, decay: 1e-3 } },
    { kind: 'adam' as const, make: (p: Record<string, Tensor<'float64'>>) => new Adam(p, { lr: 0.02, beta1: 0.8, beta2: 0.99, eps: 1e-7 }), o: { lr: 0.02, beta1: 0.8, beta2: 0.99, eps: 1e-7, decay: 0 } },
    { kind: 'sgd' as const, make: (p: Record<string, Tensor<'float64'>>) => new SGD(p, { lr: 0.1, momentum: 0.9, weightDecay: 0.01 }), o: { lr: 0.1, momentum: 0.9, decay: 0.01 } },
  ];
  for (const c of cases) {
    it(`${c.kind}: ${steps} steps on two parameters match the reference (float64)`, async () => {
      const P = { a: randomArray(7 * 3) as Float64Array, b: randomArray(70_001) as Float64Array }; // b crosses the threaded-loop size
      const params = { a: ctx.tensor(P.a, [7, 3]), b: ctx.tensor(P.b, [70_001]) };
      const G = { a: Array.from({ length: steps }, () => randomArray(21) as Float64Array), b: Array.from({ length: steps }, () => randomArray(70_001) as Float64Array) };
      const opt = c.make(params);
      for (let s = 0; s < steps; s++) opt.step({ a: ctx.tensor(G.a[s], [7, 3]), b: ctx.tensor(G.b[s], [70_001]), extra: ctx.zeros([1]) });
      assert.equal(opt.steps, steps);
      assertClose(await params.a.read(), reference(c.kind, P.a, G.a, c.o), { atol: 1e-14, rtol: 1e-12 }, `${c.kind} a`);
      assertClose(await params.b.read(), reference(c.kind, P.b, G.b, c.o), { atol: 1e-14, rtol: 1e-12 }, `${c.kind} b`);
      opt.dispose();
    });
  }

  it('float32 follows float64 closely', async () => {
    const P = randomArray(100) as Float64Array;
    const G = Array.from({ length: 3 }, () => randomArray(100) as Float64Array);
    const p32 = ctx.tensor(Float32Array.from(P), [100]);
    const opt = new RMSprop({ w: p32 }, { lr: 0.01 });
    for (const g of G) opt.step({ w: ctx.tensor(Float32Array.from(g), [100]) });
    assertClose(await p32.read(), reference('rmsprop', P, G, { lr: 0.01, rho: 0.9, eps: 1e-8, decay: 0 }), { atol: 1e-6, rtol: 1e-5 }, 'float32');
  });

  it('the learning rate can change between steps; bad options and gradients are clear errors', async () => {
    const w = ctx.tensor(new Float64Array([1, 2]), [2]);
    const opt = new SGD({ w }, { lr: 1 });
    opt.lr = 0.5;
    opt.step({ w: ctx.tensor(new Float64Array([2, 2]), [2]) });
    assert.deepEqual([...(await w.read())], [0, 1]);
    assert.throws(() => new RMSprop({ w }, { lr: -1 }), /argument 'lr'/);
    assert.throws(() => new RMSprop({ w }, { lr: 1, rho: 1 }), /argument 'rho' must be in \[0, 1\)/);
    assert.throws(() => new RMSprop({ w }, { lr: 1, variant: 'keras' } as never), (e: Error) => e instanceof RangeError && /argument 'variant' must be 'pytorch' or 'lasagne'/.test(e.message));
    assert.throws(() => new Adam({ w }, { lr: 1, betas: [0.9, 0.9] } as never), /unknown option 'betas'/);
    assert.throws(() => new SGD({}, { lr: 1 }), /at least one tensor/);
    assert.throws(() => opt.step({}), /none for 'w'/);
    assert.throws(() => opt.step({ w: ctx.zeros([3], { dtype: 'float64' }) }), /grads\.w/);
    assert.throws(() => opt.step({ w: ctx.zeros([2]) }), /float64 tensor of shape \[2\]/);
    assert.throws(() => { opt.lr = NaN; }, /argument 'lr'/);
  });
});
