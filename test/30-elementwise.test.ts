import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Context, ops } from '../lib/index';
import type { Activation } from '../lib/index';
import { DTYPES, announceSeed, assertClose, availableBackends, randomArray, skipUnless, TEST_SEED } from './helpers';

// Independent references, written from the definitions rather than from the native code.
const refAct: Record<Activation, (a: number) => number> = {
  tanh: Math.tanh,
  relu: (a) => Math.max(a, 0),
  identity: (a) => a,
};
const sigma = (x: number) => 1 / (1 + Math.exp(-x));
const refMargin = (p: number, m: number) => Math.max(0, 2 * m * (sigma(p) - 0.5) + 1);

function central(f: (x: number) => number, x: number, h = 1e-6): number {
  return (f(x + h) - f(x - h)) / (2 * h);
}

for (const device of availableBackends()) {
  describe(`30 element-wise and reductions on ${device}`, () => {
    let ctx: Context;
    before(() => {
      announceSeed();
      ctx = new Context({ device, seed: TEST_SEED });
    });
    after(() => ctx.dispose());

    for (const dtype of DTYPES) {
      const tol = dtype === 'float32' ? { atol: 1e-6, rtol: 1e-6 } : { atol: 1e-15, rtol: 1e-14 };
      const T = (a: ArrayLike<number>, shape: number[]) => ctx.tensor(dtype === 'float32' ? Float32Array.from(a) : Float64Array.from(a), shape);

      describe(dtype, () => {
        it('axpby, add, sub, scale and mul match their definitions, also in place', async function () {
          skipUnless.call(this, ctx, 'axpby', dtype);
          const n = 70_001; // above the threaded-loop threshold, odd
          const X = randomArray(n, dtype), Y = randomArray(n, dtype);
          const x = ctx.tensor(X, [n]), y = ctx.tensor(Y, [n]);
          assertClose(await ops.axpby(0.3, x, -1.7, y).read(), Float64Array.from(X, (v, i) => 0.3 * v - 1.7 * Y[i]), tol, 'axpby');
          assertClose(await ops.add(x, y).read(), Float64Array.from(X, (v, i) => v + Y[i]), tol, 'add');
          assertClose(await ops.sub(x, y).read(), Float64Array.from(X, (v, i) => v - Y[i]), tol, 'sub');
          assertClose(await ops.scale(x, 4).read(), Float64Array.from(X, (v) => 4 * v), tol, 'scale');
          assertClose(await ops.mul(x, y).read(), Float64Array.from(X, (v, i) => v * Y[i]), tol, 'mul');
          ops.add(x, y, { out: y });
          assertClose(await y.read(), Float64Array.from(X, (v, i) => v + Y[i]), tol, 'in place');
        });

        for (const act of ['tanh', 'relu', 'identity'] as const) {
          it(`biasActivation(${act}) with and without a bias, and its backward against finite differences`, async function () {
            skipUnless.call(this, ctx, 'biasActivation', dtype);
            const [rows, cols] = [37, 23];
            const X = randomArray(rows * cols, dtype), Bv = randomArray(cols, dtype), DY = randomArray(rows * cols, dtype);
            const x = ctx.tensor(X, [rows, cols]);
            const h = ops.biasActivation(x, ctx.tensor(Bv, [cols]), act);
            const H = await h.read();
            const pre = Float64Array.from(X, (v, i) => v + Bv[i % cols]);
            assertClose(H, Float64Array.from(pre, refAct[act]), tol, 'forward with bias');
            assertClose(await ops.biasActivation(x, null, act).read(), Float64Array.from(X, refAct[act]), tol, 'forward without bias');
            const d = await ops.activationBackward(ctx.tensor(DY, [rows, cols]), h, act).read();
            for (let i = 0; i < pre.length; i++) {
              if (act === 'relu' && Math.abs(pre[i]) < 1e-5) continue; // the kink
              const fd = DY[i] * central(refAct[act], pre[i]);
              assert.ok(Math.abs(d[i] - fd) < (dtype === 'float32' ? 1e-5 : 1e-8), `${act}' at ${pre[i]}: ${d[i]} vs ${fd}`);
            }
          });
        }

        for (const m of [0, 0.001, 0.1, 1, 3]) {
          it(`marginSigmoid with m = ${m}: s ∈ [max(0, 1 − m), 1 + m], and ds/dp matches finite differences`, async function () {
            skipUnless.call(this, ctx, 'marginSigmoid', dtype);
            const n = 200;
            const P = Float64Array.from(randomArray(n, 'float64'), (v) => 8 * v);
            P[0] = 40; P[1] = -40; // saturation without overflow
            const p = T(P, [n]);
            const S = await ops.marginSigmoid(p, m).read();
            const DS = randomArray(n, dtype);
            const dp = await ops.marginSigmoidBackward(p, m, ctx.tensor(DS, [n])).read();
            for (let i = 0; i < n; i++) {
              const pi = dtype === 'float32' ? Math.fround(P[i]) : P[i];
              assert.ok(Math.abs(S[i] - refMargin(pi, m)) < (dtype === 'float32' ? 1e-6 : 1e-14), `s(${pi})`);
              assert.ok(S[i] >= Math.max(0, 1 - m) - 1e-7 && S[i] <= 1 + m + 1e-7, `s(${pi}) = ${S[i]} out of range`);
              const s0 = refMargin(pi, m);
              if (m > 1 && Math.abs(s0) < 1e-6) continue; // the clamp's kink
              const fd = DS[i] * central((q) => refMargin(q, m), pi);
              assert.ok(Math.abs(dp[i] - fd) < (dtype === 'float32' ? 1e-6 : 1e-8), `dp at p=${pi}, m=${m}: ${dp[i]} vs ${fd}`);
            }
            if (m === 0) assert.ok(S.every((v) => v === 1) && dp.every((v) => v === 0), 'm = 0: s ≡ 1, dL/dp = 0');
            if (m === 3) assert.ok(S.some((v) => v === 0), 'm > 1 clamps at 0');
          });
        }

        it('sum, sumSquares, maxAbs and countNonFinite match their definitions', async function () {
          skipUnless.call(this, ctx, 'reduce', dtype);
          const n = 100_003;
          const X = randomArray(n, dtype);
          const x = ctx.tensor(X, [n]);
          let s = 0, ss = 0, mx = 0;
          for (const v of X) {
            s += v;
            ss += v * v;
            mx = Math.max(mx, Math.abs(v));
          }
          const rt = dtype === 'float32' ? 1e-6 : 1e-12;
          assert.ok(Math.abs((await ops.sum(x).item()) - s) <= rt * n ** 0.5, 'sum');
          assert.ok(Math.abs((await ops.sumSquares(x).item()) - ss) <= rt * ss, 'sumSquares');
          assert.equal(await ops.maxAbs(x).item(), mx);
          assert.equal(await ops.countNonFinite(x).item(), 0);
          assert.equal(await ops.countNonFinite(ctx.tensor(dtype === 'float32' ? new Float32Array([1, NaN, Infinity, -Infinity, 2]) : new Float64Array([1, NaN, Infinity, -Infinity, 2]), [5], { allowNonFinite: true })).item(), 3);
        });

        it('maxAbs never hides a NaN; reductions of an empty tensor are 0', async function () {
          skipUnless.call(this, ctx, 'reduce', dtype);
          const x = ctx.tensor(dtype === 'float32' ? new Float32Array([5, NaN, 1]) : new Float64Array([5, NaN, 1]), [3], { allowNonFinite: true });
          assert.ok(Number.isNaN(await ops.maxAbs(x).item()));
          const e = T([], [0]);
          assert.equal(await ops.sum(e).item(), 0);
          assert.equal(await ops.maxAbs(e).item(), 0);
        });

        it('columnSum over all leading dimensions, with β accumulation', async function () {
          skipUnless.call(this, ctx, 'columnSum', dtype);
          const [t, b, n] = [5, 7, 9];
          const X = randomArray(t * b * n, dtype), O = randomArray(n, dtype);
          const ref = new Float64Array(n);
          for (let i = 0; i < t * b; i++) for (let c = 0; c < n; c++) ref[c] += X[i * n + c];
          const x = ctx.tensor(X, [t, b, n]);
          assertClose(await ops.columnSum(x).read(), ref, tol, 'columnSum');
          const out = ctx.tensor(O, [n]);
          ops.columnSum(x, { out, beta: 0.5 });
          assertClose(await out.read(), Float64Array.from(ref, (v, c) => v + 0.5 * O[c]), tol, 'beta');
        });

        it('groupNorms gives ‖x[t]‖₂ for every index of the first dimension', async function () {
          skipUnless.call(this, ctx, 'groupNorms', dtype);
          const [t, b, n] = [11, 4, 6];
          const X = randomArray(t * b * n, dtype);
          const ref = Float64Array.from({ length: t }, (_, g) => Math.hypot(...X.subarray(g * b * n, (g + 1) * b * n)));
          assertClose(await ops.groupNorms(ctx.tensor(X, [t, b, n])).read(), ref, tol, 'groupNorms');
        });

        it('softmaxCrossEntropy: loss and gradient against the definition and finite differences, with weights', async function () {
          skipUnless.call(this, ctx, 'softmaxCrossEntropy', dtype);
          const [rows, k] = [13, 10];
          const L = Float64Array.from(randomArray(rows * k, 'float64'), (v) => 6 * v);
          L[0] = 500; // stability: a huge logit must not overflow
          const targets = Int32Array.from({ length: rows }, (_, r) => (r * 7 + TEST_SEED) % k);
          const W = Float64Array.from({ length: rows }, (_, r) => (r % 3 === 0 ? 0 : 1 / rows)); // a mask with a mean
          const refLoss = (l: Float64Array) => {
            let tot = 0;
            for (let r = 0; r < rows; r++) {
              const row = l.subarray(r * k, (r + 1) * k);
              const mx = Math.max(...row);
              const lse = mx + Math.log(row.reduce((a, v) => a + Math.exp(v - mx), 0));
              tot += W[r] * (lse - row[targets[r]]);
            }
            return tot;
          };
          const Lt = dtype === 'float32' ? Float64Array.from(Float32Array.from(L)) : L;
          const { loss, dlogits } = ops.softmaxCrossEntropy(T(L, [rows, k]), ctx.tensor(targets, [rows]), { weights: T(W, [rows]) });
          const lv = await loss.item();
          assert.ok(Math.abs(lv - refLoss(Lt)) < (dtype === 'float32' ? 1e-5 : 1e-12), `loss ${lv} vs ${refLoss(Lt)}`);
          const D = await dlogits!.read();
          for (let i = 0; i < rows * k; i++) {
            const fd = central((v) => {
              const c = Float64Array.from(Lt);
              c[i] = v;
              return refLoss(c);
            }, Lt[i], 1e-5);
            assert.ok(Math.abs(D[i] - fd) < (dtype === 'float32' ? 1e-6 : 1e-9), `dlogits[${i}] ${D[i]} vs ${fd}`);
          }
          const noGrad = ops.softmaxCrossEntropy(T(L, [rows, k]), ctx.tensor(targets, [rows]), { gradient: false });
          assert.equal(noGrad.dlogits, undefined);
        });

        it('softmaxCrossEntropy rejects a class id ≥ k at the next await, naming the op and row', async function () {
          skipUnless.call(this, ctx, 'softmaxCrossEntropy', dtype);
          ops.softmaxCrossEntropy(T([0, 0, 0, 0], [2, 2]), ctx.tensor(new Int32Array([1, 2]), [2]));
          await assert.rejects(ctx.sync(), (e: unknown) => e instanceof RangeError && /softmaxCrossEntropy.*target 2 at row 1/.test(e.message));
          ops.softmaxCrossEntropy(T([0, 0], [1, 2]), ctx.tensor(new Int32Array([-1]), [1]));
          await assert.rejects(ctx.sync(), RangeError);
        });

        it('meanSquaredError: loss and gradient against the definition, with weights', async function () {
          skipUnless.call(this, ctx, 'meanSquaredError', dtype);
          const [rows, k] = [8, 3];
          const Y = randomArray(rows * k, dtype), Tg = randomArray(rows * k, dtype), W = randomArray(rows, dtype);
          const { loss, dy } = ops.meanSquaredError(ctx.tensor(Y, [rows, k]), ctx.tensor(Tg, [rows, k]), { weights: ctx.tensor(W, [rows]) });
          let ref = 0;
          const refD = new Float64Array(rows * k);
          for (let i = 0; i < rows * k; i++) {
            const w = W[Math.floor(i / k)];
            ref += w * (Y[i] - Tg[i]) ** 2;
            refD[i] = 2 * w * (Y[i] - Tg[i]);
          }
          assert.ok(Math.abs((await loss.item()) - ref) < (dtype === 'float32' ? 1e-5 : 1e-13));
          assertClose(await dy!.read(), refD, tol, 'dy');
        });

        it('copy and fill', async function () {
          skipUnless.call(this, ctx, 'copy', dtype);
          const X = randomArray(50, dtype);
          const x = ctx.tensor(X, [5, 10]);
          const c = ops.copy(x);
          ops.fill(x, -2);
          assert.deepEqual(await c.read(), X);
          assert.ok((await x.read()).every((v) => v === -2));
        });
      });
    }
  });
}

describe('30 subnormal numbers on the CPU', function () {
  this.timeout(120_000);
  // 1e-20 · 1e-20 = 1e-40 is subnormal in float32. Our threads flush it to zero (the slow
  // path of subnormal arithmetic made one MNIST run 15× slower); ORTHORNN_FLUSH_DENORMALS=0
  // keeps it. The variable is read once per process, so the kept case runs in a child.
  const script = `
    const { Context, ops } = require('./lib/index');
    const ctx = new Context({ device: 'cpu' });
    const a = ctx.tensor(new Float32Array([1e-20, 2]), [2]);
    ops.mul(a, a).read().then((v) => { console.log(JSON.stringify([...v])); ctx.dispose(); });`;
  const run = (env: Record<string, string>) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', script], { cwd: path.join(__dirname, '..'), encoding: 'utf8', env: { ...process.env, ...env } });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as number[];
  };

  it('are flushed to zero by default, and kept with ORTHORNN_FLUSH_DENORMALS=0', () => {
    assert.deepEqual(run({}), [0, 4]);
    const [kept, four] = run({ ORTHORNN_FLUSH_DENORMALS: '0' });
    assert.equal(four, 4);
    assert.ok(kept > 0 && kept < 1.2e-38, `expected a subnormal, got ${kept}`);
  });
});
