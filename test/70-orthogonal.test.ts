import assert from 'node:assert/strict';
import { Context, ElmanRNN, NumericError, ops, ReorthonormalizationPolicy } from '../lib/index';
import type { FloatDType, Tensor } from '../lib/index';
import { announceSeed, assertClose, naiveGemm, orthonormalityError, randomArray, TEST_SEED, availableBackends } from './helpers';

for (const device of availableBackends()) describe(`70 Cayley steps and orthogonality on ${device}`, () => {
  let ctx: Context;
  before(() => {
    announceSeed();
    ctx = new Context({ device, seed: TEST_SEED });
  });
  after(() => ctx.dispose());

  const orthogonal = <D extends FloatDType>(n: number, dtype: D): Tensor<D> => ops.qr(ctx.randn<D>([n, n], { dtype })).q;

  // At n = 64, η = 0.3 makes I + η/2 A far from diagonally dominant (the CPU factorises it
  // with pivoting) and η = 1e-3 keeps it dominant (factorised without the pivot search, and
  // recursively for n = 200). n = 37 leaves partial register blocks in the CPU's transposes.
  for (const [n, eta] of [[1, 0.3], [7, 0.3], [37, 0.05], [64, 0.3], [64, 1e-3], [200, 1e-3]]) {
    it(`n = ${n}, η = ${eta}: M stays orthogonal to 1e-12 (float64) and (I + ηA/2) M_new = (I − ηA/2) M`, async () => {
      const M = orthogonal(n, 'float64');
      const M0 = Float64Array.from(await M.read());
      const Gv = randomArray(n * n, 'float64');
      ops.cayleyStep(M, ctx.tensor(Gv, [n, n]), eta);
      const M1 = await M.read();
      assert.ok(orthonormalityError(M1, n, n) < 1e-12, `‖MᵀM − I‖ = ${orthonormalityError(M1, n, n)}`);
      assert.ok(await ops.orthogonalityError(M).item() < 1e-12);
      // An independent formula: A = G Mᵀ − M Gᵀ, then both sides of the Cayley equation.
      const GMt = naiveGemm(Gv, M0, n, n, n, false, true), MGt = naiveGemm(M0, Gv, n, n, n, false, true);
      const A = GMt.map((v, i) => v - MGt[i]);
      const AM1 = naiveGemm(A, M1, n, n, n), AM0 = naiveGemm(A, M0, n, n, n);
      const left = Float64Array.from(M1).map((v, i) => v + (eta / 2) * AM1[i]);
      const right = Float64Array.from(M0).map((v, i) => v - (eta / 2) * AM0[i]);
      assertClose(left, right, { atol: 1e-12 }, 'Cayley equation');
      // A is skew-symmetric, and M moved (the step is not a no-op).
      for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) assert.ok(Math.abs(A[i * n + j] + A[j * n + i]) < 1e-12);
      if (n > 1) assert.ok(M0.some((v, i) => Math.abs(v - M1[i]) > eta / 100));
    });
  }

  // The frame form: F = MᵀG and A′ = F − Fᵀ, so that A = M A′ Mᵀ for an orthogonal M.
  for (const [n, eta] of [[1, 0.3], [7, 0.3], [37, 0.05], [64, 0.3], [64, 1e-3], [200, 1e-3]]) {
    it(`n = ${n}, η = ${eta}: cayleyStepInFrame(M, MᵀG) is cayleyStep(M, G), and M_new (I + ηA′/2) = M (I − ηA′/2)`, async () => {
      const M = orthogonal(n, 'float64');
      const M0 = Float64Array.from(await M.read());
      const Gv = randomArray(n * n, 'float64');
      const F = naiveGemm(M0, Gv, n, n, n, true);
      const reference = ops.copy(M);
      ops.cayleyStep(reference, ctx.tensor(Gv, [n, n]), eta);
      ops.cayleyStepInFrame(M, ctx.tensor(F, [n, n]), eta);
      const M1 = await M.read();
      assertClose(M1, await reference.read(), { atol: 1e-12 }, 'the two forms');
      assert.ok(orthonormalityError(M1, n, n) < 1e-12, `‖MᵀM − I‖ = ${orthonormalityError(M1, n, n)}`);
      const Ap = F.map((v, i) => v - F[(i % n) * n + Math.floor(i / n)]);
      const M1A = naiveGemm(M1, Ap, n, n, n), M0A = naiveGemm(M0, Ap, n, n, n);
      const left = Float64Array.from(M1).map((v, i) => v + (eta / 2) * M1A[i]);
      const right = Float64Array.from(M0).map((v, i) => v - (eta / 2) * M0A[i]);
      assertClose(left, right, { atol: 1e-12 }, 'Cayley equation in the frame');
      if (n > 1) assert.ok(M0.some((v, i) => Math.abs(v - M1[i]) > eta / 100));
      reference.dispose();
    });
  }

  // n ≥ 768 in multiples of 64 take the CPU's blocked solve (native/cpu/solve.cpp) when the
  // system needs no pivots (η = 1e-3); η = 0.3 and n = 1000 take getrs.
  it('large n: the frame step agrees with the ambient-form step and keeps M orthogonal (float64 and float32)', async () => {
    for (const dtype of ['float64', 'float32'] as const) {
      for (const [n, eta] of [[768, 1e-3], [1024, 1e-3], [1024, 0.3], [1000, 1e-3]]) {
        const M = orthogonal(n, dtype);
        const G = ctx.randn([n, n], { dtype });
        const reference = ops.copy(M);
        ops.cayleyStep(reference, G, eta);
        ops.cayleyStepInFrame(M, ops.gemm(M, G, { transA: true }), eta);
        const [a, b] = [await M.read(), await reference.read()];
        let diff = 0;
        for (let i = 0; i < a.length; i++) diff = Math.max(diff, Math.abs(a[i] - b[i]));
        const orth = await ops.orthogonalityError(M).item();
        // float32: ‖MᵀM − I‖ is itself a float32 product of length n, whose entries may be off by
        // n·2⁻²⁴ (the rounding bound of a dot product of unit vectors), and so may the QR'd start:
        // 2n·2⁻²⁴ (1.2e-4 at n = 1024; cuBLAS measured 1.1e-5 on an H200, OpenBLAS 6e-7). A step
        // that lost orthogonality would be off by about η‖F‖, far above it.
        const [tolDiff, tolOrth] = dtype === 'float64' ? [1e-12, 1e-12] : [3e-6, 2 * n * 2 ** -24];
        assert.ok(diff < tolDiff, `${dtype} n = ${n} η = ${eta}: max |frame − ambient form| = ${diff}`);
        assert.ok(orth < tolOrth, `${dtype} n = ${n} η = ${eta}: ‖MᵀM − I‖ = ${orth}`);
        for (const t of [M, G, reference]) t.dispose();
      }
    }
    // A NaN in F: a NumericError at the next await (the tiled path declines the system and the
    // LU reports it), and M is left as it was.
    const n = 768;
    const M = orthogonal(n, 'float32');
    const before = await M.read();
    const F = new Float32Array(n * n);
    F[5] = NaN;
    ops.cayleyStepInFrame(M, ctx.tensor(F, [n, n], { allowNonFinite: true }), 1e-3);
    await assert.rejects(ctx.sync(), (e: unknown) => e instanceof NumericError && /NaN|Inf|non-finite/.test(e.message));
    assert.deepEqual(await M.read(), before);
    M.dispose();
  });

  it('frame gradients step U and V as the Euclidean ones do, in float64 and float32', async () => {
    for (const dtype of ['float64', 'float32'] as const) {
      const options = { inputSize: 3, hiddenSize: 37, outputSize: 4, margin: 0.3, dtype, context: ctx, seed: 6 } as const;
      const a = await ElmanRNN.create(options), b = await ElmanRNN.create(options);
      const batch = { x: ctx.tensor(randomArray(6 * 4 * 3, dtype), [6, 4, 3]), targets: ctx.tensor(Int32Array.from({ length: 24 }, (_, i) => i % 4), [6, 4]) };
      for (let step = 0; step < 3; step++) {
        const ra = await a.lossAndGradients(batch);
        const rb = await b.lossAndGradients(batch, { frameGradients: true });
        assert.ok(Math.abs(ra.loss - rb.loss) <= (dtype === 'float64' ? 1e-12 : 1e-5), `step ${step}: loss ${ra.loss} vs ${rb.loss}`);
        ops.cayleyStep(a.parametersByName.U, ra.gradients.U, 0.5);
        ops.cayleyStep(a.parametersByName.V, ra.gradients.V, 0.5);
        ops.cayleyStepInFrame(b.parametersByName.U, rb.frameGradients!.U, 0.5);
        ops.cayleyStepInFrame(b.parametersByName.V, rb.frameGradients!.V, 0.5);
      }
      const tol = dtype === 'float64' ? 1e-12 : 1e-5;
      assertClose(await b.parametersByName.U.read(), await a.parametersByName.U.read(), { atol: tol }, `${dtype} U`);
      assertClose(await b.parametersByName.V.read(), await a.parametersByName.V.read(), { atol: tol }, `${dtype} V`);
      a.dispose();
      b.dispose();
    }
  });

  it('to first order the step is M − η (G − M Gᵀ M)', async () => {
    const n = 9;
    const M = orthogonal(n, 'float64');
    const M0 = Float64Array.from(await M.read());
    const Gv = randomArray(n * n, 'float64');
    const eta = 1e-4;
    ops.cayleyStep(M, ctx.tensor(Gv, [n, n]), eta);
    const MGtM = naiveGemm(naiveGemm(M0, Gv, n, n, n, false, true), M0, n, n, n);
    const first = M0.map((v, i) => v - eta * (Gv[i] - MGtM[i]));
    assertClose(await M.read(), first, { atol: 50 * eta * eta }, 'first order');
  });

  it('a Cayley step with a small η along dL/dU and dL/dV decreases the loss', async () => {
    const model = await ElmanRNN.create({ inputSize: 3, hiddenSize: 16, outputSize: 4, margin: 0.2, dtype: 'float64', context: ctx, seed: 5 });
    const batch = { x: ctx.tensor(randomArray(6 * 4 * 3) as Float64Array, [6, 4, 3]), targets: ctx.tensor(Int32Array.from({ length: 24 }, (_, i) => i % 4), [6, 4]) };
    const before = await model.lossAndGradients(batch);
    const dU = ops.copy(before.gradients.U), dV = ops.copy(before.gradients.V);
    ops.cayleyStep(model.parametersByName.U, dU, 1e-2);
    ops.cayleyStep(model.parametersByName.V, dV, 1e-2);
    const after = await model.lossAndGradients(batch);
    assert.ok(after.loss < before.loss, `loss ${before.loss} → ${after.loss}`);
    for (const M of ['U', 'V']) assert.ok(await ops.orthogonalityError(model.parametersByName[M]).item() < 1e-13);
    model.dispose();
  });

  it('float32 drift over 10,000 steps is measured, and the re-orthonormalisation policy bounds it', async () => {
    const n = 32;
    const steps = 10_000;
    const G = ctx.tensor(randomArray(n * n, 'float32'), [n, n]);
    const free = orthogonal(n, 'float32');
    const kept = ops.copy(free);
    const framed = ops.copy(free);  // the same steps in the frame form, as training takes them
    const F = ctx.zeros([n, n]);
    const tol = 2e-6;
    const policy = new ReorthonormalizationPolicy({ tolerance: tol, checkEvery: 10 });
    let worstKept = 0;
    for (let s = 1; s <= steps; s++) {
      ops.cayleyStep(free, G, 0.05);
      ops.cayleyStep(kept, G, 0.05);
      ops.cayleyStepInFrame(framed, ops.gemm(framed, G, { transA: true, out: F }), 0.05);
      if (s % 10 === 0) {
        await policy.apply(s, [kept]);
        worstKept = Math.max(worstKept, await ops.orthogonalityError(kept).item());
      }
    }
    const drift = await ops.orthogonalityError(free).item();
    const driftFramed = await ops.orthogonalityError(framed).item();
    console.log(`      float32, n = ${n}, ${steps} Cayley steps: ‖MᵀM − I‖_max = ${drift.toExponential(2)} without correction ` +
      `(${driftFramed.toExponential(2)} in the frame form); ` +
      `with the policy (tolerance ${tol}, checked every 10 steps): ≤ ${worstKept.toExponential(2)} after each check, ${policy.count} re-orthonormalisations`);
    assert.ok(drift > 1e-6, 'float32 rounding does drift measurably over 10,000 steps');
    assert.ok(drift < 1e-2, `drift stays moderate: ${drift}`);
    assert.ok(driftFramed < 1e-2, `the frame form's drift stays moderate: ${driftFramed}`);
    assert.ok(worstKept <= tol, `policy keeps the error at or below the tolerance: ${worstKept}`);
    assert.ok(policy.count > 0);
    // float64 under the same steps barely drifts.
    const f64 = orthogonal(n, 'float64');
    const G64 = ctx.tensor(Float64Array.from(await G.read()), [n, n]);
    for (let s = 0; s < steps; s++) ops.cayleyStep(f64, G64, 0.05);
    const drift64 = await ops.orthogonalityError(f64).item();
    console.log(`      float64, same steps: ‖MᵀM − I‖_max = ${drift64.toExponential(2)}`);
    assert.ok(drift64 < 1e-10);
  });

  it('the every-k policy re-orthonormalises exactly on schedule; reorthonormalize fixes a perturbed matrix', async () => {
    const policy = new ReorthonormalizationPolicy({ every: 3 });
    const M = orthogonal(8, 'float64');
    const flags = [];
    for (let s = 1; s <= 7; s++) flags.push((await policy.apply(s, [M]))[0]);
    assert.deepEqual(flags, [false, false, true, false, false, true, false]);
    const P = ctx.tensor(Float64Array.from(await M.read(), (v, i) => v + 1e-3 * Math.sin(i)), [8, 8]);
    assert.ok(await ops.orthogonalityError(P).item() > 1e-4);
    ops.reorthonormalize(P);
    assert.ok(await ops.orthogonalityError(P).item() < 1e-14);
    assert.throws(() => new ReorthonormalizationPolicy({}), /'every', 'tolerance' or both/);
    assert.throws(() => new ReorthonormalizationPolicy({ every: 0 }), /every/);
  });

  it('bad input: non-square or mismatched matrices, non-finite η', () => {
    assert.throws(() => ops.cayleyStep(ctx.zeros([2, 3]), ctx.zeros([2, 3]), 0.1), RangeError);
    assert.throws(() => ops.cayleyStep(ctx.zeros([3, 3]), ctx.zeros([2, 2]), 0.1), /cayleyStep: argument 'G' must have 9 elements like 'M' \(shape \[3, 3\]\)/);
    assert.throws(() => ops.cayleyStep(ctx.zeros([3, 3]), ctx.zeros([3, 3]), NaN), /argument 'lr' must be a finite number/);
    assert.throws(() => ops.cayleyStepInFrame(ctx.zeros([2, 3]), ctx.zeros([2, 3]), 0.1), RangeError);
    assert.throws(() => ops.cayleyStepInFrame(ctx.zeros([3, 3]), ctx.zeros([2, 2]), 0.1), /cayleyStepInFrame: argument 'F' must have 9 elements like 'M' \(shape \[3, 3\]\)/);
    assert.throws(() => ops.cayleyStepInFrame(ctx.zeros([3, 3]), ctx.zeros([3, 3], { dtype: 'float64' }), 0.1), /argument 'F'/);
    assert.throws(() => ops.cayleyStepInFrame(ctx.zeros([3, 3]), ctx.zeros([3, 3]), Infinity), /argument 'lr' must be a finite number/);
  });
});
