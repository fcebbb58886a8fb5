import assert from 'node:assert/strict';
import { Context, NumericError, ops } from '../lib/index';
import {
  DTYPES, announceSeed, assertClose, availableBackends, naiveGemm, orthonormalityError, randomArray, rng, skipUnless, TEST_SEED,
  tolFor,
} from './helpers';

for (const device of availableBackends()) {
  describe(`20 linear algebra on ${device}: against naive references`, () => {
    let ctx: Context;
    before(() => {
      announceSeed();
      ctx = new Context({ device, seed: TEST_SEED });
    });
    after(() => ctx.dispose());

    for (const dtype of DTYPES) {
      describe(dtype, () => {
        const shapes: [number, number, number][] = [
          [1, 1, 1], [1, 7, 1], [7, 1, 3], [33, 17, 65], [2, 129, 64], [257, 3, 31], [64, 64, 64], [128, 128, 128], [5, 300, 11],
        ];
        for (const [m, n, k] of shapes) {
          for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
            it(`gemm ${m}×${k} · ${k}×${n}${ta ? ' (aᵀ)' : ''}${tb ? ' (bᵀ)' : ''}`, async function () {
              skipUnless.call(this, ctx, 'gemm', dtype);
              const A = randomArray(m * k, dtype), B = randomArray(k * n, dtype);
              const a = ctx.tensor(A, ta ? [k, m] : [m, k]);
              const b = ctx.tensor(B, tb ? [n, k] : [k, n]);
              const c = ops.gemm(a, b, { transA: ta, transB: tb });
              assert.deepEqual([...c.shape], [m, n]);
              assertClose(await c.read(), naiveGemm(A, B, m, n, k, ta, tb), tolFor(dtype, k), `gemm ${m}×${n}×${k}`);
              for (const t of [a, b, c]) t.dispose();
            });
          }
        }

        it('gemm with α and β accumulates into out', async function () {
          skipUnless.call(this, ctx, 'gemm', dtype);
          const [m, n, k] = [9, 5, 13];
          const A = randomArray(m * k, dtype), B = randomArray(k * n, dtype), C = randomArray(m * n, dtype);
          const out = ctx.tensor(C, [m, n]);
          ops.gemm(ctx.tensor(A, [m, k]), ctx.tensor(B, [k, n]), { alpha: -0.5, beta: 2, out });
          const ref = naiveGemm(A, B, m, n, k).map((v, i) => -0.5 * v + 2 * C[i]);
          assertClose(await out.read(), ref, tolFor(dtype, k), 'alpha/beta');
        });

        it('strided-batched gemm, with a shared 2-D operand and with transposes', async function () {
          skipUnless.call(this, ctx, 'gemm', dtype);
          const [batch, m, n, k] = [4, 6, 5, 7];
          const A = randomArray(batch * m * k, dtype), B = randomArray(batch * k * n, dtype), W = randomArray(n * k, dtype);
          const a = ctx.tensor(A, [batch, m, k]);
          const c = ops.gemm(a, ctx.tensor(B, [batch, k, n]));
          const shared = ops.gemm(a, ctx.tensor(W, [n, k]), { transB: true });
          const [cv, sv] = [await c.read(), await shared.read()];
          for (let i = 0; i < batch; i++) {
            const Ai = A.subarray(i * m * k, (i + 1) * m * k);
            assertClose(cv.subarray(i * m * n, (i + 1) * m * n), naiveGemm(Ai, B.subarray(i * k * n, (i + 1) * k * n), m, n, k), tolFor(dtype, k), `batch ${i}`);
            assertClose(sv.subarray(i * m * n, (i + 1) * m * n), naiveGemm(Ai, W, m, n, k, false, true), tolFor(dtype, k), `shared ${i}`);
          }
        });

        it('gemm 1024×1024: C x = A (B x) for random probe vectors', async function () {
          skipUnless.call(this, ctx, 'gemm', dtype);
          const n = 1024;
          const A = randomArray(n * n, dtype), B = randomArray(n * n, dtype);
          const C = await ops.matmul(ctx.tensor(A, [n, n]), ctx.tensor(B, [n, n])).read();
          const r = rng(TEST_SEED + 1);
          for (let probe = 0; probe < 3; probe++) {
            const x = Float64Array.from({ length: n }, () => 2 * r() - 1);
            const Bx = naiveGemm(B, x, n, 1, n);
            const ABx = naiveGemm(A, Bx, n, 1, n);
            const Cx = naiveGemm(C, x, n, 1, n);
            // Cx sums n products of entries each carrying a rounding error of ~√n ulp.
            assertClose(Cx, ABx, dtype === 'float32' ? { atol: 2e-3, rtol: 1e-4 } : { atol: 1e-9, rtol: 1e-10 }, `probe ${probe}`);
          }
        });

        for (const n of [1, 2, 5, 64, 200]) {
          it(`LU solve of a ${n}×${n} system: small residual, A x = b for matrix right-hand sides`, async function () {
            skipUnless.call(this, ctx, 'luFactor', dtype);
            const A = randomArray(n * n, dtype);
            for (let i = 0; i < n; i++) A[i * n + i] += n / 4; // keep the condition number moderate
            const Bm = randomArray(n * 3, dtype);
            const f = ops.luFactor(ctx.tensor(A, [n, n]));
            const x = await ops.luSolve(f, ctx.tensor(Bm, [n, 3])).read();
            assertClose(naiveGemm(A, x, n, 3, n), Bm, dtype === 'float32' ? { atol: 2e-4 * Math.sqrt(n), rtol: 0 } : { atol: 1e-11 * Math.sqrt(n), rtol: 0 }, 'residual');
            const pivots = await f.pivots.read();
            for (const p of pivots) assert.ok(p >= 1 && p <= n, `pivot ${p} is 1-based`);
            const v = Float64Array.from(Bm.subarray(0, n));
            const xv = await ops.solve(ctx.tensor(A, [n, n]), ctx.tensor(dtype === 'float32' ? Float32Array.from(v) : v, [n])).read();
            assertClose(naiveGemm(A, xv, n, 1, n), v, dtype === 'float32' ? { atol: 2e-4 * Math.sqrt(n) } : { atol: 1e-11 * Math.sqrt(n) }, 'vector rhs');
          });
        }

        it('LU of a singular matrix rejects with NumericError naming the op, and the context stays usable', async function () {
          skipUnless.call(this, ctx, 'luFactor', dtype);
          // Singular in every elimination order, also in floating point: a zero column. (A merely
          // rank-deficient matrix can leave a rounding-sized pivot where the elimination order differs,
          // as cuSOLVER's, which factors Aᵀ, does from LAPACK's.)
          const values = [1, 2, 0, 3, 5, 0, 4, 1, 0];
          const S = dtype === 'float32' ? Float32Array.from(values) : Float64Array.from(values);
          ops.luFactor(ctx.tensor(S, [3, 3]));
          await assert.rejects(ctx.sync(), (e: unknown) => e instanceof NumericError && /luFactor.*singular/.test(e.message));
          assert.equal(await ctx.full([], 3).item(), 3);
        });

        for (const [m, n] of [[1, 1], [6, 6], [40, 7], [7, 40], [128, 128], [300, 20]]) {
          it(`QR of ${m}×${n}: Q orthonormal, R upper triangular with diag(R) ≥ 0, QR = A`, async function () {
            skipUnless.call(this, ctx, 'qr', dtype);
            const A = randomArray(m * n, dtype);
            const k = Math.min(m, n);
            const { q, r } = ops.qr(ctx.tensor(A, [m, n]));
            assert.deepEqual([...q.shape, ...r.shape], [m, k, k, n]);
            const Q = await q.read(), R = await r.read();
            const eps = dtype === 'float32' ? 1e-5 : 1e-13;
            assert.ok(orthonormalityError(Q, m, k) < eps * Math.max(m, 10), `‖QᵀQ − I‖ = ${orthonormalityError(Q, m, k)}`);
            for (let i = 0; i < k; i++) {
              assert.ok(R[i * n + i] >= 0, `diag(R)[${i}] = ${R[i * n + i]}`);
              for (let j = 0; j < i; j++) assert.equal(R[i * n + j], 0);
            }
            assertClose(naiveGemm(Q, R, m, n, k), A, { atol: eps * 10 * Math.sqrt(k) }, 'QR = A');
          });
        }

        it('QR is unique with the sign fix: QR of Q·diag(±1)·R gives back positive-diagonal factors', async function () {
          skipUnless.call(this, ctx, 'qr', dtype);
          const n = 12;
          const { q } = ops.qr(ctx.tensor(randomArray(n * n, dtype), [n, n]));
          const { q: q2, r: r2 } = ops.qr(q);
          const R2 = await r2.read();
          assertClose(await q2.read(), await q.read(), { atol: dtype === 'float32' ? 1e-5 : 1e-13 }, 'Q of an orthogonal matrix is itself');
          for (let i = 0; i < n; i++) assert.ok(Math.abs(R2[i * n + i] - 1) < (dtype === 'float32' ? 1e-5 : 1e-13));
        });

        for (const [m, n] of [[1, 1], [8, 8], [50, 9], [9, 50], [128, 128]]) {
          it(`SVD of ${m}×${n}: U, Vᵀ orthonormal, s descending and ≥ 0, U diag(s) Vᵀ = A`, async function () {
            skipUnless.call(this, ctx, 'svd', dtype);
            const A = randomArray(m * n, dtype);
            const k = Math.min(m, n);
            const { u, s, vt } = ops.svd(ctx.tensor(A, [m, n]));
            const U = await u.read(), S = await s.read(), Vt = await vt.read();
            const eps = dtype === 'float32' ? 2e-5 : 1e-12;
            assert.ok(orthonormalityError(U, m, k) < eps * 10, `U: ${orthonormalityError(U, m, k)}`);
            const V = new Float64Array(n * k);
            for (let i = 0; i < k; i++) for (let j = 0; j < n; j++) V[j * k + i] = Vt[i * n + j];
            assert.ok(orthonormalityError(V, n, k) < eps * 10, `V: ${orthonormalityError(V, n, k)}`);
            for (let i = 0; i < k; i++) {
              assert.ok(S[i] >= 0);
              if (i) assert.ok(S[i] <= S[i - 1]);
            }
            const US = Float64Array.from(U, (x, idx) => x * S[idx % k]);
            assertClose(naiveGemm(US, Vt, m, n, k), A, { atol: eps * 10 * Math.sqrt(k) }, 'U S Vt = A');
            // Independent check: Σ s² = ‖A‖_F².
            const fro = Array.from(A).reduce((acc, x) => acc + x * x, 0);
            const ss = Array.from(S).reduce((acc, x) => acc + x * x, 0);
            assert.ok(Math.abs(ss - fro) <= eps * 10 * fro, `Σs² ${ss} vs ‖A‖² ${fro}`);
          });
        }

        it('the singular values of an orthogonal matrix are all 1, and of diag(d) are |d| sorted', async function () {
          skipUnless.call(this, ctx, 'svd', dtype);
          const n = 16;
          const { q } = ops.qr(ctx.tensor(randomArray(n * n, dtype), [n, n]));
          const s = await ops.svd(q).s.read();
          assertClose(s, new Float64Array(n).fill(1), { atol: dtype === 'float32' ? 1e-5 : 1e-13 }, 'orthogonal');
          const d = [3, -1, 0.5, -7];
          const D = new Float64Array(16);
          d.forEach((v, i) => (D[i * 4 + i] = v));
          const sd = await ops.svd(ctx.tensor(dtype === 'float32' ? Float32Array.from(D) : D, [4, 4])).s.read();
          assertClose(sd, [7, 3, 1, 0.5], { atol: dtype === 'float32' ? 1e-6 : 1e-14 }, 'diagonal');
        });

        it('QR, SVD and LU refuse NaN/Inf input with NumericError', async function () {
          skipUnless.call(this, ctx, 'svd', dtype);
          const bad = dtype === 'float32' ? new Float32Array([1, NaN, 0, 1]) : new Float64Array([1, 0, Infinity, 1]);
          for (const run of [() => ops.svd(ctx.tensor(bad, [2, 2], { allowNonFinite: true })), () => ops.qr(ctx.tensor(bad, [2, 2], { allowNonFinite: true })), () => ops.luFactor(ctx.tensor(bad, [2, 2], { allowNonFinite: true }))]) {
            run();
            await assert.rejects(ctx.sync(), (e: unknown) => e instanceof NumericError && /(NaN|Inf)/.test(e.message));
          }
        });
      });
    }
  });
}
