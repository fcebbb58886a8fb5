/**
 * 90: the CUDA backend against the CPU backend. Every op, and whole Elman and LSTM training
 * steps, run on both from the same fresh random data (float64 unless said otherwise; cuBLAS
 * in its default, non-TF32 math mode) and must agree to a relative error of 1e-4 (float64
 * agrees far closer, and is checked at 1e-9). Also: seeded random tensors are bit-identical,
 * U and V stay orthogonal through Cayley steps, device-side errors (bad class ids, bad pivots,
 * singular or non-finite matrices) surface at the next await with the context still usable, the
 * Elman recurrence as one kernel per pass agrees with the CPU (several blocks, both splits, and
 * the graphs where the matrix does not fit), a group of runs on a GPU stream each (TrainerGroup)
 * trains each member as its run alone, and 1,000 training steps leave device memory exactly
 * where the first steps put it, with the one-kernel recurrence and with the graphs.
 *
 * Without a usable GPU the whole suite is skipped, saying why.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { backends, Context, ElmanRNN, LSTM, memoryOf, NumericError, ops, RMSprop, Adam, SGD } from '../lib/index';
import type { Activation, FloatDType, LossKind, RecurrentKind, Scoring, SequenceBatch, Tensor } from '../lib/index';
import { readCheckpoint } from '../lib/train/checkpoint';
import { resolveConfig } from '../lib/train/config';
import { train, TrainerGroup, type TrainConfig, type TrainResult } from '../lib/train/index';
import { TrainingStep } from '../lib/train/step';
import { announceSeed, assertClose, byName, naiveGemm, randomArray, rng, TEST_SEED } from './helpers';

const cuda = backends().find((b) => b.name === 'cuda')!;
// ORTHORNN_PARITY_DEVICE=cpu runs this suite with a second CPU context in the GPU's place: a
// check of the suite itself on a machine without a GPU (the GPU-only assertions are skipped).
const PARITY_DEVICE = process.env.ORTHORNN_PARITY_DEVICE ?? 'cuda';
const selfCheck = PARITY_DEVICE === 'cpu';

type Build = (ctx: Context) => Record<string, Tensor<any>>;

/** Tolerance of a CUDA result against the CPU's: relative, and absolute at the same fraction of the result's scale. */
function parityTol(dtype: FloatDType, ref: ArrayLike<number>, float32 = 1e-4): { atol: number; rtol: number } {
  let scale = 0;
  for (let i = 0; i < ref.length; i++) if (Number.isFinite(ref[i])) scale = Math.max(scale, Math.abs(ref[i]));
  const rtol = dtype === 'float64' ? 1e-9 : float32;
  return { rtol, atol: rtol * Math.max(scale, 1e-30) };
}

describe('90 CUDA backend against the CPU backend', function () {
  this.timeout(600_000);
  let cpu: Context;
  let gpu: Context;

  before(function () {
    announceSeed();
    if (selfCheck) console.log('      ORTHORNN_PARITY_DEVICE=cpu: comparing the CPU with itself (a check of this suite, not of CUDA)');
    if (!selfCheck && !cuda.available && process.env.ORTHORNN_REQUIRE_GPU === '1') {
      throw new Error(`ORTHORNN_REQUIRE_GPU=1 (npm run test:gpu) but the cuda backend is unavailable: ${cuda.reason ?? (cuda.compiled ? 'unknown reason' : 'not compiled into this build')}`);
    }
    if (!selfCheck && !cuda.available) {
      console.log(`      skipped: the cuda backend is ${cuda.compiled ? 'compiled but unavailable' : 'not compiled into this build'}: ${cuda.reason ?? 'unknown reason'}`);
      this.skip();
    }
    if (!selfCheck) console.log(`      cuda device: ${cuda.device}`);
    cpu = new Context({ device: 'cpu', seed: TEST_SEED });
    gpu = new Context({ device: PARITY_DEVICE, seed: TEST_SEED });
  });
  after(() => {
    cpu?.dispose();
    gpu?.dispose();
  });

  /** Runs `build` on both contexts (its inputs come from the closure, so they are the same) and compares every output. */
  async function parity(label: string, dtype: FloatDType, build: Build, float32 = 1e-4): Promise<void> {
    const a = build(cpu), b = build(gpu);
    for (const key of Object.keys(a)) {
      const ref = await a[key].read(), got = await b[key].read();
      assertClose(got, ref, parityTol(dtype, ref, float32), `${label}: ${key}`);
    }
  }

  const data = (dtype: FloatDType, n: number) => randomArray(n, dtype);
  const T = (ctx: Context, arr: Float32Array | Float64Array, shape: number[]) => ctx.tensor(arr, shape) as Tensor<FloatDType>;

  for (const dtype of ['float64', 'float32'] as const) {
    describe(`${dtype} ops`, () => {
      it('gemm at every transpose combination, from 1×1 to 128×128×128', async () => {
        for (const [m, n, k] of [[1, 1, 1], [33, 17, 65], [128, 128, 128], [5, 300, 11], [64, 7, 1]]) {
          for (const [ta, tb] of [[false, false], [true, false], [false, true], [true, true]] as const) {
            const A = data(dtype, m * k), B = data(dtype, k * n);
            await parity(`gemm ${m}×${n}×${k} ${ta} ${tb}`, dtype, (c) => ({
              c: ops.gemm(T(c, A, ta ? [k, m] : [m, k]), T(c, B, tb ? [n, k] : [k, n]), { transA: ta, transB: tb }),
            }));
          }
        }
      });

      it('batched gemm (cuBLAS strided-batched): per-batch and shared operands', async () => {
        const [batch, m, k, n] = [4, 9, 7, 5];
        const A = data(dtype, batch * m * k), B = data(dtype, batch * k * n), S = data(dtype, k * n);
        await parity('batched gemm', dtype, (c) => ({
          both: ops.gemm(T(c, A, [batch, m, k]), T(c, B, [batch, k, n])),
          shared: ops.gemm(T(c, A, [batch, m, k]), T(c, S, [k, n])),
        }));
      });

      it('luFactor and luSolve (the Cayley solve): factors, pivots and solutions', async () => {
        for (const [n, r] of [[1, 1], [7, 3], [64, 64], [130, 5]]) {
          const A = data(dtype, n * n), B = data(dtype, n * r);
          if (dtype === 'float64') {
            await parity(`lu n = ${n}`, dtype, (c) => {
              const f = ops.luFactor(T(c, A, [n, n]));
              return { lu: f.lu, pivots: f.pivots, x: ops.luSolve(f, T(c, B, [n, r])) };
            });
          } else {
            // float32: a near-tie between pivot candidates may be broken the other way, and a
            // random matrix's condition number amplifies rounding, so the GPU's solution is
            // checked by its residual ‖A x − b‖ instead.
            const x = await ops.luSolve(ops.luFactor(T(gpu, A, [n, n])), T(gpu, B, [n, r])).read();
            const Ax = naiveGemm(A, x, n, r, n);
            let xMax = 0;
            for (const v of x) xMax = Math.max(xMax, Math.abs(v));
            assertClose(Ax, B, { atol: 1e-5 * n * Math.max(1, xMax) }, `lu n = ${n}: residual`);
          }
        }
      });

      it('qr with diag(R) ≥ 0: Q and R equal, tall, wide and square', async () => {
        for (const [m, n] of [[1, 1], [9, 9], [40, 7], [7, 40], [128, 128]]) {
          const A = data(dtype, m * n);
          // float32: Q's later columns move by rounding × cond(A), so a looser bound there.
          await parity(`qr ${m}×${n}`, dtype, (c) => ops.qr(T(c, A, [m, n])), 2e-3);
        }
      });

      it('svd: equal singular values, and U diag(S) Vt rebuilds A with orthonormal U and V', async () => {
        for (const [m, n] of [[1, 1], [12, 12], [30, 8], [8, 30], [96, 96]]) {
          const A = data(dtype, m * n);
          await parity(`svd ${m}×${n} singular values`, dtype, (c) => ({ s: ops.svd(T(c, A, [m, n])).s }));
          const { u, s, vt } = ops.svd(T(gpu, A, [m, n]));
          const us = ops.scaleColumns(u, s);
          const rebuilt = await ops.gemm(us, vt).read();
          const tol = dtype === 'float64' ? 1e-10 : 1e-4;
          assertClose(rebuilt, A, { atol: tol * Math.sqrt(n), rtol: tol }, `svd ${m}×${n}: U S Vt`);
          const k = Math.min(m, n);
          const utu = await ops.gemm(u, u, { transA: true }).read();
          const vvt = await ops.gemm(vt, vt, { transB: true }).read();
          const eye = new Float64Array(k * k).map((_, i) => (i % (k + 1) === 0 ? 1 : 0));
          assertClose(utu, eye, { atol: tol * 10 }, 'UᵀU = I');
          assertClose(vvt, eye, { atol: tol * 10 }, 'Vt Vtᵀ = I');
        }
      });

      it('seeded randn and rand are bit-identical to the CPU', async () => {
        for (const count of [1, 1000, 65_537]) {
          for (const seed of [0, 12345, TEST_SEED]) {
            const a = await cpu.randn([count], { dtype, seed, mean: 0.5, std: 2 }).read();
            const b = await gpu.randn([count], { dtype, seed, mean: 0.5, std: 2 }).read();
            assert.deepEqual(b, a, `randn(${count}, seed ${seed})`);
            const c = await cpu.rand([count], { dtype, seed, low: -3, high: 1 }).read();
            const d = await gpu.rand([count], { dtype, seed, low: -3, high: 1 }).read();
            assert.deepEqual(d, c, `rand(${count}, seed ${seed})`);
          }
        }
      });

      it('fill, copy, axpby, mul and scaleColumns', async () => {
        const x = data(dtype, 37 * 19), y = data(dtype, 37 * 19), s = data(dtype, 19);
        await parity('element-wise', dtype, (c) => {
          const tx = T(c, x, [37, 19]), ty = T(c, y, [37, 19]);
          return {
            filled: ops.fill(c.empty([5, 3], { dtype }), 0.25),
            copied: ops.copy(tx),
            axpby: ops.axpby(0.7, tx, -1.3, ty),
            inPlace: ops.axpby(2, ops.copy(tx), 0.5, ty),
            mul: ops.mul(tx, ty),
            scaled: ops.scaleColumns(tx, T(c, s, [19])),
          };
        });
      });

      it('biasActivation, activationBackward, marginSigmoid and its backward', async () => {
        const x = data(dtype, 23 * 31).map((v) => 4 * v), bias = data(dtype, 31), dy = data(dtype, 23 * 31);
        for (const act of ['tanh', 'relu', 'identity'] as Activation[]) {
          await parity(`activation ${act}`, dtype, (c) => {
            const tx = T(c, x as Float64Array, [23, 31]);
            const h = ops.biasActivation(tx, T(c, bias, [31]), act);
            return {
              h,
              noBias: ops.biasActivation(tx, null, act),
              back: ops.activationBackward(T(c, dy, [23, 31]), h, act),
            };
          });
        }
        const p = data(dtype, 50).map((v) => 6 * v), ds = data(dtype, 50);
        for (const m of [0, 0.1, 1, 2.5]) {
          await parity(`marginSigmoid m = ${m}`, dtype, (c) => ({
            s: ops.marginSigmoid(T(c, p as Float64Array, [50]), m),
            dp: ops.marginSigmoidBackward(T(c, p as Float64Array, [50]), m, T(c, ds, [50])),
          }));
        }
      });

      it('reductions: sum, sumSquares, maxAbs, countNonFinite (NaN-propagating), columnSum with β, groupNorms', async () => {
        for (const count of [0, 1, 255, 256, 257, 100_003]) {
          const x = data(dtype, count);
          await parity(`reductions of ${count}`, dtype, (c) => {
            const t = c.tensor(x, [count]) as Tensor<FloatDType>;
            return { sum: ops.sum(t), sumSquares: ops.sumSquares(t), maxAbs: ops.maxAbs(t), nonFinite: ops.countNonFinite(t) };
          });
        }
        const bad = data(dtype, 3000);
        bad[1234] = NaN;
        bad[2000] = Infinity;
        for (const c of [cpu, gpu]) {
          const t = c.tensor(bad, [3000], { allowNonFinite: true }) as Tensor<FloatDType>;
          assert.ok(Number.isNaN(await ops.maxAbs(t).item()), `maxAbs never hides a NaN (${c.backend})`);
          assert.equal(await ops.countNonFinite(t).item(), 2);
        }
        for (const [rows, cols] of [[1, 1], [3000, 7], [17, 300], [50_000, 33]]) {
          const x = data(dtype, rows * cols), init = data(dtype, cols);
          await parity(`columnSum ${rows}×${cols}`, dtype, (c) => {
            const tx = T(c, x, [rows, cols]);
            return { plain: ops.columnSum(tx), accumulated: ops.columnSum(tx, { out: T(c, init, [cols]), beta: 0.5 }) };
          });
          await parity(`groupNorms ${rows}×${cols}`, dtype, (c) => ({ norms: ops.groupNorms(T(c, x, [rows, cols])) }));
        }
      });

      it('softmaxCrossEntropy and meanSquaredError with row weights, loss and gradient', async () => {
        for (const [rows, k] of [[1, 1], [7, 10], [333, 50], [4096, 3]]) {
          const logits = data(dtype, rows * k).map((v) => 5 * v), w = data(dtype, rows).map((v) => Math.abs(v));
          const r = rng(TEST_SEED + rows);
          const targets = Int32Array.from({ length: rows }, () => Math.floor(r() * k));
          const y = data(dtype, rows * k), target = data(dtype, rows * k);
          await parity(`losses ${rows}×${k}`, dtype, (c) => {
            const ce = ops.softmaxCrossEntropy(T(c, logits as Float64Array, [rows, k]), c.tensor(targets, [rows]), { weights: T(c, w as Float64Array, [rows]) });
            const ceUnweighted = ops.softmaxCrossEntropy(T(c, logits as Float64Array, [rows, k]), c.tensor(targets, [rows]));
            const mse = ops.meanSquaredError(T(c, y, [rows, k]), T(c, target, [rows, k]), { weights: T(c, w as Float64Array, [rows]) });
            return { ce: ce.loss, dlogits: ce.dlogits!, ceUnweighted: ceUnweighted.loss, mse: mse.loss, dy: mse.dy! };
          });
        }
      });

      it('RMSprop, Adam and SGD steps (with weight decay)', async () => {
        const p0 = data(dtype, 300), g1 = data(dtype, 300), g2 = data(dtype, 300);
        const make = {
          rmsprop: (p: Record<string, Tensor<FloatDType>>) => new RMSprop(p, { lr: 0.01, weightDecay: 1e-3 }),
          adam: (p: Record<string, Tensor<FloatDType>>) => new Adam(p, { lr: 0.01, weightDecay: 1e-3 }),
          sgd: (p: Record<string, Tensor<FloatDType>>) => new SGD(p, { lr: 0.1, momentum: 0.9, weightDecay: 1e-3 }),
        };
        for (const [name, mk] of Object.entries(make)) {
          await parity(name, dtype, (c) => {
            const w = T(c, p0, [300]);
            const opt = mk({ w });
            opt.step({ w: T(c, g1, [300]) });
            opt.step({ w: T(c, g2, [300]) });
            return { w };
          });
        }
      });

      it('cayleyStep, orthogonalityError and reorthonormalize', async () => {
        for (const n of [1, 8, 64, 200]) {
          const M0 = data(dtype, n * n), G = data(dtype, n * n);
          await parity(`cayley n = ${n}`, dtype, (c) => {
            const M = ops.qr(T(c, M0, [n, n])).q;
            ops.cayleyStep(M, T(c, G, [n, n]), 0.3);
            const P = ops.copy(M);
            ops.axpby(1, P, 1e-3, T(c, G, [n, n]), { out: P });
            return { M, reorthonormalized: ops.reorthonormalize(P) };
          }, 2e-3);
          const err = await ops.orthogonalityError(ops.cayleyStep(ops.qr(T(gpu, M0, [n, n])).q, T(gpu, G, [n, n]), 0.3)).item();
          assert.ok(err <= (dtype === 'float64' ? 1e-12 : 1e-5) * Math.max(1, n / 10), `cayley n = ${n}: ‖MᵀM − I‖ = ${err}`);
          // The frame form (luSolveRight): η = 0.3 and 1e-3, with and without pivoting on the CPU.
          for (const eta of [0.3, 1e-3]) {
            await parity(`cayley in frame n = ${n} η = ${eta}`, dtype, (c) => {
              const M = ops.qr(T(c, M0, [n, n])).q;
              return { M: ops.cayleyStepInFrame(M, ops.gemm(M, T(c, G, [n, n]), { transA: true }), eta) };
            }, 2e-3);
          }
        }
      });
    });
  }

  describe('models', () => {
    const sizes = { T: 13, B: 5, d: 3, n: 24, k: 6 };

    function batchFor(ctx: Context, loss: LossKind, score: Scoring, arrays: { x: Float64Array | Float32Array; targetsCE: Int32Array; targetsMSE: Float64Array | Float32Array }, given?: Float64Array | Float32Array): SequenceBatch<FloatDType> {
      const { T: steps, B, d, n, k } = sizes;
      const last = score === 'last';
      const targets = loss === 'crossEntropy'
        ? ctx.tensor(last ? arrays.targetsCE.slice(0, B) : arrays.targetsCE, last ? [B] : [steps, B])
        : ctx.tensor(last ? arrays.targetsMSE.slice(0, B * k) : arrays.targetsMSE, last ? [B, k] : [steps, B, k]);
      const batch: SequenceBatch<FloatDType> = { x: ctx.tensor(arrays.x, [steps, B, d]) as Tensor<FloatDType>, targets, loss, score };
      if (score === 'mask') batch.mask = new Float64Array(steps * B).map((_, i) => (i % 4 === 1 ? 0 : 1));
      if (given) batch.initialState = ctx.tensor(given, [B, n]) as Tensor<FloatDType>;
      return batch;
    }

    function arraysFor(dtype: FloatDType) {
      const { T: steps, B, d, k } = sizes;
      const r = rng(TEST_SEED + 91);
      return {
        x: randomArray(steps * B * d, dtype),
        targetsCE: Int32Array.from({ length: steps * B }, () => Math.floor(r() * k)),
        targetsMSE: randomArray(steps * B * k, dtype),
      };
    }

    async function compareGradients(label: string, dtype: FloatDType, a: { loss: number; hiddenGradientNorms: Float32Array | Float64Array; gradients: object; initialStateGradient?: Tensor }, b: typeof a) {
      assertClose([b.loss], [a.loss], parityTol(dtype, [a.loss]), `${label}: loss`);
      assertClose(b.hiddenGradientNorms, a.hiddenGradientNorms, parityTol(dtype, a.hiddenGradientNorms), `${label}: hidden gradient norms`);
      for (const name of Object.keys(a.gradients)) {
        const ref = await byName(a.gradients)[name]!.read();
        assertClose(await byName(b.gradients)[name]!.read(), ref, parityTol(dtype, ref), `${label}: d${name}`);
      }
      if (a.initialStateGradient) {
        const ref = await a.initialStateGradient.read();
        assertClose(await b.initialStateGradient!.read(), ref, parityTol(dtype, ref), `${label}: d(initial state)`);
      }
    }

    const elmanCases: { recurrent: RecurrentKind; activation: Activation; loss: LossKind; score: Scoring; given: boolean; clip?: number }[] = [
      { recurrent: 'svd', activation: 'tanh', loss: 'crossEntropy', score: 'all', given: false, clip: 0.01 },
      { recurrent: 'svd', activation: 'tanh', loss: 'crossEntropy', score: 'all', given: false },
      { recurrent: 'svd', activation: 'relu', loss: 'mse', score: 'last', given: true },
      { recurrent: 'svd', activation: 'identity', loss: 'crossEntropy', score: 'mask', given: false },
      { recurrent: 'plain', activation: 'tanh', loss: 'mse', score: 'all', given: true },
      { recurrent: 'penalty', activation: 'relu', loss: 'crossEntropy', score: 'last', given: false },
    ];
    // relu's kink: in float32 a pre-activation within rounding of 0 can take the other side on
    // the GPU, and the gradients through it part by far more than rounding (an H200 run once
    // saw 1e-3 relative in ‖dL/dh_1‖). relu is compared in float64; float32 takes tanh there.
    const smooth32 = (dtype: FloatDType, act: Activation): Activation => (dtype === 'float32' && act === 'relu' ? 'tanh' : act);
    for (const dtype of ['float64', 'float32'] as const) {
      for (const c0 of elmanCases) {
        const c = { ...c0, activation: smooth32(dtype, c0.activation) };
        const label = `Elman ${dtype} ${c.recurrent} ${c.activation} ${c.loss} score ${c.score}${c.given ? ' given state' : ''}${c.clip ? ` pre-activation gradient clipped at ${c.clip}` : ''}`;
        // float64 follows three RMSprop + Cayley steps; float32 one plain gradient step + Cayley
        // (RMSprop's g/√ms turns a rounding-level difference in a near-zero gradient into a
        // full-size step, so float32 trajectories legitimately part: on an H200 one such element
        // of W_in differed by 7.5e-5 after one RMSprop step of lr 1e-2).
        const trainingSteps = dtype === 'float64' ? 3 : 1;
        it(`${label}: loss, every gradient and ‖dL/dh_t‖${dtype === 'float64' ? ' over three RMSprop + Cayley training steps' : ''}`, async () => {
          const arrays = arraysFor(dtype);
          const given = c.given ? randomArray(sizes.B * sizes.n, dtype) : undefined;
          const options = {
            inputSize: sizes.d, hiddenSize: sizes.n, outputSize: sizes.k, activation: c.activation, recurrent: c.recurrent,
            ...(c.recurrent === 'svd' ? { margin: 0.3, spectrumPrior: 0.01 } : {}), ...(c.recurrent === 'penalty' ? { penalty: 0.2 } : {}),
            learnH0: !c.given, dtype, seed: TEST_SEED % 1000, clipPreactivation: c.clip ?? 0,
          };
          const a = await ElmanRNN.create<FloatDType>({ ...options, context: cpu });
          const b = await ElmanRNN.create<FloatDType>({ ...options, context: gpu });
          const state = await a.state();
          const r = rng(TEST_SEED + 5);
          for (const v of Object.values(state)) for (let i = 0; i < v.length; i++) v[i] += 0.1 * (2 * r() - 1);
          a.loadState(state);
          b.loadState(state);
          const steppers = [a, b].map((m) => {
            const { U, V, ...euclidean } = byName<FloatDType>(m.parameters);
            return { m, U, V, opt: dtype === 'float64' ? new RMSprop(euclidean, { lr: 1e-2 }) : new SGD(euclidean, { lr: 1e-2 }) };
          });
          for (let step = 0; step < trainingSteps; step++) {
            const ra = await a.lossAndGradients(batchFor(cpu, c.loss, c.score, arrays, given));
            const rb = await b.lossAndGradients(batchFor(gpu, c.loss, c.score, arrays, given));
            await compareGradients(`${label}, step ${step}`, dtype, ra, rb);
            for (const [s, res] of [[steppers[0], ra], [steppers[1], rb]] as const) {
              s.opt.step(res.gradients);
              if (s.U) ops.cayleyStep(s.U, byName(res.gradients).U!, 1e-2);
              if (s.V) ops.cayleyStep(s.V, byName(res.gradients).V!, 1e-2);
            }
          }
          const sa = await a.state(), sb = await b.state();
          for (const name of Object.keys(sa)) assertClose(sb[name], sa[name], parityTol(dtype, sa[name]), `${label}: ${name} after ${trainingSteps} steps`);
          a.dispose();
          b.dispose();
        });
      }
    }

    it('whole elmanLossAndGradients calls as CUDA graphs (elmanStep forced to graph), float64, every Elman case: the first call of a shape direct, the next captured, later ones replayed on new data; a longer batch between moves the buffers (direct again, then captured anew); every call as on the CPU (≤ 1e-9), frame gradients included; a bad class id in a replayed call surfaces', async () => {
      const replaying = selfCheck ? new Context({ device: 'cpu', seed: TEST_SEED }) : new Context({ device: 'cuda', seed: TEST_SEED, variants: { elmanStep: 'graph' } });
      const { B, d, n, k } = sizes;
      // Steps per call; the variant each call takes on the GPU (a call's first run with a key is
      // direct, its next is captured and launched; the longer batch grows the workspace, so the
      // next short one has a new key).
      const lengths = [13, 13, 13, 21, 13, 13, 13];
      const expected = ['reference', 'graph', 'graph', 'reference', 'reference', 'graph', 'graph'];
      try {
        for (const c of elmanCases) {
          const label = `${c.recurrent} ${c.activation} ${c.loss} score ${c.score}${c.given ? ' given state' : ''}${c.clip ? ` clipped at ${c.clip}` : ''}`;
          const options = {
            inputSize: d, hiddenSize: n, outputSize: k, activation: c.activation, recurrent: c.recurrent,
            ...(c.recurrent === 'svd' ? { margin: 0.3, spectrumPrior: 0.01 } : {}), ...(c.recurrent === 'penalty' ? { penalty: 0.2 } : {}),
            learnH0: !c.given, dtype: 'float64' as const, seed: TEST_SEED % 1000, clipPreactivation: c.clip ?? 0,
          };
          const models = [await ElmanRNN.create<FloatDType>({ ...options, context: cpu }), await ElmanRNN.create<FloatDType>({ ...options, context: replaying })];
          const frames = c.recurrent === 'svd';
          for (const [call, steps] of lengths.entries()) {
            const r = rng(TEST_SEED + 300 + call);
            const last = c.score === 'last';
            const rows = last ? B : steps * B;
            const x = Float64Array.from({ length: steps * B * d }, () => 2 * r() - 1);
            const ce = Int32Array.from({ length: rows }, () => Math.floor(r() * k));
            const mse = Float64Array.from({ length: rows * k }, () => 2 * r() - 1);
            const given = c.given ? Float64Array.from({ length: B * n }, () => 2 * r() - 1) : undefined;
            const mask = c.score === 'mask' ? new Float64Array(steps * B).map((_, i) => ((i + call) % 4 === 1 ? 0 : 1)) : undefined;
            const batchOn = (ctx: Context): SequenceBatch<FloatDType> => ({
              x: ctx.tensor(x, [steps, B, d]) as Tensor<FloatDType>,
              targets: c.loss === 'crossEntropy' ? ctx.tensor(ce, last ? [B] : [steps, B]) : ctx.tensor(mse, last ? [B, k] : [steps, B, k]),
              loss: c.loss, score: c.score, ...(mask && { mask }), ...(given && { initialState: ctx.tensor(given, [B, n]) as Tensor<FloatDType> }),
            });
            const [ra, rb] = [await models[0].lossAndGradients(batchOn(cpu), { frameGradients: frames }), await models[1].lossAndGradients(batchOn(replaying), { frameGradients: frames })];
            await compareGradients(`${label}, call ${call} (T = ${steps})`, 'float64', ra, rb);
            if (frames) for (const key of ['U', 'V'] as const) {
              const ref = await ra.frameGradients![key].read();
              assertClose(await rb.frameGradients![key].read(), ref, parityTol('float64', ref), `${label}, call ${call}: frame ${key}`);
            }
            if (!selfCheck) assert.equal(replaying.variants().elmanStep.last, expected[call], `${label}, call ${call} (T = ${steps})`);
          }
          if (c === elmanCases[0]) {
            // Replayed: the graph's cross-entropy kernel records the fault as the direct call's would.
            const bad = Int32Array.from({ length: 13 * B }, (_, i) => i % k);
            bad[9] = k;
            const x = replaying.tensor(new Float64Array(13 * B * d).fill(0.5), [13, B, d]) as Tensor<FloatDType>;
            await assert.rejects(models[1].lossAndGradients({ x, targets: replaying.tensor(bad, [13, B]), score: 'all' }, { frameGradients: true }),
              (e: unknown) => e instanceof RangeError && /elmanLossAndGradients/.test(String(e)) && /row 9/.test(String(e)));
            if (!selfCheck) assert.equal(replaying.variants().elmanStep.last, 'graph', 'the bad batch ran through the graph');
            const again = await models[1].lossAndGradients({ x, targets: replaying.tensor(bad.map((v) => v % k), [13, B]), score: 'all' }, { frameGradients: true });
            assert.ok(Number.isFinite(again.loss), 'the context is usable after the error');
          }
          for (const m of models) m.dispose();
        }
      } finally {
        replaying.dispose();
      }
    });

    for (const dtype of ['float64', 'float32'] as const) {
      it(`Elman ${dtype} svd: frame gradients and Cayley steps in the frame, over three training steps`, async () => {
        const arrays = arraysFor(dtype);
        const options = { inputSize: sizes.d, hiddenSize: sizes.n, outputSize: sizes.k, margin: 0.3, dtype, seed: TEST_SEED % 1000 };
        const models = [await ElmanRNN.create<FloatDType>({ ...options, context: cpu }), await ElmanRNN.create<FloatDType>({ ...options, context: gpu })];
        for (let step = 0; step < 3; step++) {
          const [ra, rb] = [await models[0].lossAndGradients(batchFor(cpu, 'crossEntropy', 'all', arrays), { frameGradients: true }), await models[1].lossAndGradients(batchFor(gpu, 'crossEntropy', 'all', arrays), { frameGradients: true })];
          for (const key of ['U', 'V'] as const) {
            const ref = await ra.frameGradients![key].read();
            assertClose(await rb.frameGradients![key].read(), ref, parityTol(dtype, ref), `step ${step}: frame ${key}`);
          }
          for (const [m, r] of [[models[0], ra], [models[1], rb]] as const) {
            ops.cayleyStepInFrame(m.parametersByName.U, r.frameGradients!.U, 0.5);
            ops.cayleyStepInFrame(m.parametersByName.V, r.frameGradients!.V, 0.5);
          }
        }
        for (const key of ['U', 'V']) {
          const ref = await models[0].parametersByName[key].read();
          assertClose(await models[1].parametersByName[key].read(), ref, parityTol(dtype, ref, 1e-3), `${key} after three steps`);
        }
        for (const m of models) m.dispose();
      });
    }

    // The recurrence as one kernel per pass (persistent.cu): each block runs some of the
    // sequences, each hidden unit's dot product split over S threads. Each case runs with the
    // default S and with S = 1, against the CPU. Where the matrix fits the shared memory of any
    // supported GPU (96 KiB) no graph may run; n = 300 (and float64 n = 200 on today's GPUs)
    // does not fit, and takes the graphs instead.
    const persistentCases = [
      { n: 100, B: 3, T: 7, activation: 'relu' as const, clip: 0 },
      { n: 200, B: 20, T: 30, activation: 'tanh' as const, clip: 0.05 },
      { n: 64, B: 16, T: 50, activation: 'identity' as const, clip: 0 },
      { n: 300, B: 4, T: 5, activation: 'tanh' as const, clip: 0 },
    ];
    for (const dtype of ['float64', 'float32'] as const) {
      for (const c0 of persistentCases) {
        const c = { ...c0, activation: smooth32(dtype, c0.activation) };
        it(`Elman ${dtype} n = ${c.n}, B = ${c.B}, T = ${c.T}, ${c.activation}${c.clip ? `, clip ${c.clip}` : ''}: the recurrence as one kernel per pass, against the CPU, with the default split and S = 1`, async () => {
          const bytes = (dtype === 'float64' ? 8 : 4) * (c.n * c.n + 6 * c.n);
          const persistentCertain = bytes <= 96 * 1024, graphsCertain = bytes > 256 * 1024;
          const d = 3, k = 5;
          const options = { inputSize: d, hiddenSize: c.n, outputSize: k, activation: c.activation, margin: 0.3, dtype, seed: TEST_SEED % 1000, clipPreactivation: c.clip };
          const a = await ElmanRNN.create<FloatDType>({ ...options, context: cpu });
          const b = await ElmanRNN.create<FloatDType>({ ...options, context: gpu });
          const x = randomArray(c.T * c.B * d, dtype);
          const r = rng(TEST_SEED + 17);
          const targets = Int32Array.from({ length: c.T * c.B }, () => Math.floor(r() * k));
          const batch = (ctx: Context) => ({ x: ctx.tensor(x, [c.T, c.B, d]) as Tensor<FloatDType>, targets: ctx.tensor(targets, [c.T, c.B]) });
          const ra = await a.lossAndGradients(batch(cpu));
          const c0 = gpu.launchCounters();
          const rb = await b.lossAndGradients(batch(gpu));
          const c1 = gpu.launchCounters();
          await compareGradients(`n = ${c.n}`, dtype, ra, rb);
          if (!selfCheck && persistentCertain) assert.equal(c1.graphs - c0.graphs, 0, 'graphs replayed: the persistent kernels did not run');
          if (!selfCheck && graphsCertain) assert.equal(c1.graphs - c0.graphs, 2, 'too large for shared memory: both passes should run as graphs');
          process.env.ORTHORNN_CUDA_PERSISTENT_SPLIT = '1';  // read when the context is created
          const single = new Context({ device: PARITY_DEVICE, seed: TEST_SEED });
          delete process.env.ORTHORNN_CUDA_PERSISTENT_SPLIT;
          try {
            const u = await ElmanRNN.create<FloatDType>({ ...options, context: single });
            const c2 = single.launchCounters();
            const ru = await u.lossAndGradients(batch(single));
            const c3 = single.launchCounters();
            await compareGradients(`n = ${c.n}, S = 1`, dtype, ra, ru);
            if (!selfCheck && persistentCertain) assert.equal(c3.graphs - c2.graphs, 0, 'graphs replayed: the persistent kernels did not run');
            u.dispose();
          } finally {
            single.dispose();
          }
          a.dispose();
          b.dispose();
        });
      }
    }

    for (const dtype of ['float64', 'float32'] as const) {
      for (const [loss, score] of [['crossEntropy', 'all'], ['mse', 'last']] as const) {
        const trainingSteps = dtype === 'float64' ? 3 : 1;
        it(`LSTM ${dtype} ${loss} score ${score}: loss, every gradient and ‖dL/dh_t‖${dtype === 'float64' ? ' over three Adam steps' : ''}`, async () => {
          const arrays = arraysFor(dtype);
          const options = { inputSize: sizes.d, hiddenSize: sizes.n, outputSize: sizes.k, dtype, seed: 3 };
          const a = await LSTM.create<FloatDType>({ ...options, context: cpu });
          const b = await LSTM.create<FloatDType>({ ...options, context: gpu });
          b.loadState(await a.state());
          const oa = new Adam(a.parameters, { lr: 1e-2 }), ob = new Adam(b.parameters, { lr: 1e-2 });
          for (let step = 0; step < trainingSteps; step++) {
            const ra = await a.lossAndGradients(batchFor(cpu, loss, score, arrays));
            const rb = await b.lossAndGradients(batchFor(gpu, loss, score, arrays));
            await compareGradients(`LSTM ${dtype} step ${step}`, dtype, ra, rb);
            oa.step(ra.gradients);
            ob.step(rb.gradients);
          }
          const sa = await a.state(), sb = await b.state();
          for (const name of Object.keys(sa)) assertClose(sb[name], sa[name], parityTol(dtype, sa[name]), `LSTM: ${name} after ${trainingSteps} steps`);
          a.dispose();
          b.dispose();
        });
      }
    }

    it('U and V stay orthogonal through 500 Cayley steps on the GPU (float64 ≤ 1e-12, float32 ≤ 1e-4)', async () => {
      for (const dtype of ['float64', 'float32'] as const) {
        const n = 96;
        const M = ops.qr(gpu.randn<FloatDType>([n, n], { dtype, seed: 7 })).q;
        for (let i = 0; i < 500; i++) ops.cayleyStep(M, gpu.randn<FloatDType>([n, n], { dtype, seed: 100 + i, std: 0.1 }), 0.05);
        const err = await ops.orthogonalityError(M).item();
        console.log(`      ${dtype}: ‖MᵀM − I‖_max after 500 steps = ${err.toExponential(2)}`);
        assert.ok(err <= (dtype === 'float64' ? 1e-12 : 1e-4), `${dtype}: ${err}`);
      }
    });
  });

  it('whole training steps as two graphs (elmanStep and sequence forced to graph): six RMSprop + Cayley steps of a float64 svd model with gradient clipping, the rate halved after three, each step as on the CPU (≤ 1e-9), parameters and optimiser state; the update sequence direct once per rate, then captured and replayed', async () => {
    const replaying = selfCheck ? new Context({ device: 'cpu', seed: TEST_SEED }) : new Context({ device: 'cuda', seed: TEST_SEED, variants: { elmanStep: 'graph', sequence: 'graph' } });
    try {
      const [Tn, B, d, n, k] = [12, 6, 3, 20, 5];
      const config = resolveConfig({ task: 'copy', hidden: n, lr: 1e-2, cayleyLr: 1e-2, margin: 0.1, clipNorm: 0.5 });
      const options = { inputSize: d, hiddenSize: n, outputSize: k, recurrent: 'svd' as const, margin: 0.1, dtype: 'float64' as const, seed: 7, learnH0: true };
      const models = [await ElmanRNN.create({ ...options, context: cpu }), await ElmanRNN.create({ ...options, context: replaying })];
      const steps = models.map((m) => new TrainingStep(config, m));
      // A new rate is a new sequence (the rates are its numbers): direct once, then replayed.
      const sequenceRan = ['reference', 'graph', 'graph', 'reference', 'graph', 'graph'];
      for (let s = 0; s < 6; s++) {
        const r = rng(TEST_SEED + 500 + s);
        const x = Float64Array.from({ length: Tn * B * d }, () => 2 * r() - 1);
        const targets = Int32Array.from({ length: Tn * B }, () => Math.floor(r() * k));
        const results = [];
        for (const [i, ctx] of [cpu, replaying].entries()) {
          results.push(await steps[i].run({ x: ctx.tensor(x, [Tn, B, d]) as Tensor<FloatDType>, targets: ctx.tensor(targets, [Tn, B]), loss: 'crossEntropy', score: 'all' }, { factor: s < 3 ? 1 : 0.5 }));
        }
        assertClose([results[1].loss], [results[0].loss], parityTol('float64', [results[0].loss]), `step ${s}: loss`);
        assertClose([results[1].gradientNorm], [results[0].gradientNorm], parityTol('float64', [results[0].gradientNorm]), `step ${s}: gradient norm`);
        const [a, b] = [await models[0].state(), await models[1].state()];
        for (const name of Object.keys(a)) assertClose(b[name], a[name], parityTol('float64', a[name]), `step ${s}: ${name}`);
        for (const [group, opt] of Object.entries(steps[0].optimizers())) {
          const [sa, sb] = [await opt.state(), await steps[1].optimizers()[group].state()];
          for (const name of Object.keys(sa)) assertClose(sb[name], sa[name], parityTol('float64', sa[name]), `step ${s}: optimiser ${group} ${name}`);
        }
        if (!selfCheck) {
          assert.equal(replaying.variants().elmanStep.last, s === 0 ? 'reference' : 'graph', `step ${s}: elmanStep`);
          assert.equal(replaying.variants().sequence.last, sequenceRan[s], `step ${s}: the update sequence`);
        }
      }
      for (const st of steps) st.dispose();
      for (const m of models) m.dispose();
    } finally {
      replaying.dispose();
    }
  });

  describe('errors found on the device', () => {
    it('a class id out of range rejects the next await with a RangeError naming the op and row; the context stays usable', async () => {
      const logits = gpu.tensor(randomArray(4 * 3), [4, 3]);
      const { loss } = ops.softmaxCrossEntropy(logits, gpu.tensor(Int32Array.from([0, 2, 3, 1]), [4]));
      await assert.rejects(loss.read(), (e: unknown) => e instanceof RangeError && /softmaxCrossEntropy/.test(String(e)) && /row 2/.test(String(e)));
      assert.deepEqual([...(await gpu.zeros([2]).read())], [0, 0]);
    });

    it('a training step with a class id out of range rejects, and leaves every parameter and optimiser state as it was', async () => {
      // The device reports the bad id only at the next read: updates queued before that read
      // would apply gradients computed from the bad row.
      const [Tn, B, d, n, k] = [6, 4, 3, 16, 5];
      const config = resolveConfig({ task: 'copy', hidden: n, lr: 1e-2, cayleyLr: 1e-2, margin: 0.1, clipNorm: 1 });
      const model = await ElmanRNN.create({ inputSize: d, hiddenSize: n, outputSize: k, dtype: 'float32', context: gpu, recurrent: 'svd', margin: 0.1, seed: 5 });
      const step = new TrainingStep(config, model);
      const good = Int32Array.from({ length: Tn * B }, (_, i) => i % k);
      const x = gpu.tensor(randomArray(Tn * B * d, 'float32') as Float32Array, [Tn, B, d]);
      await step.run({ x, targets: gpu.tensor(good, [Tn, B]), loss: 'crossEntropy', score: 'all' });
      const before = await model.state();
      const optimisers = async () => Promise.all(Object.values(step.optimizers()).map((o) => o.state()));
      const optBefore = await optimisers();
      const bad = Int32Array.from(good);
      bad[7] = k;
      await assert.rejects(step.run({ x, targets: gpu.tensor(bad, [Tn, B]), loss: 'crossEntropy', score: 'all' }), (e: unknown) => e instanceof RangeError && /row 7/.test(String(e)));
      const after = await model.state();
      for (const name of Object.keys(before)) assert.deepEqual(after[name], before[name], `${name} changed by a step that failed`);
      assert.deepEqual(await optimisers(), optBefore, 'optimiser state changed by a step that failed');
      step.dispose();
      model.dispose();
    });

    it('svd of an ill-conditioned float32 matrix (singular values 1 … 1e-6): values within 1e-5 of the largest, U and V orthonormal', async () => {
      // A = Q1 diag(σ) Q2ᵀ from orthonormal factors of random matrices (built in float64 on the CPU).
      const m = 64;
      const sigma = Float64Array.from({ length: m }, (_, i) => 10 ** (-6 * i / (m - 1)));
      const [q1, q2] = [ops.qr(cpu.tensor(randomArray(m * m), [m, m]) as Tensor<'float64'>).q, ops.qr(cpu.tensor(randomArray(m * m), [m, m]) as Tensor<'float64'>).q];
      const a64 = await ops.gemm(ops.scaleColumns(q1, cpu.tensor(sigma, [m]) as Tensor<'float64'>), q2, { transB: true }).read();
      const { u, s, vt } = ops.svd(gpu.tensor(Float32Array.from(a64), [m, m]) as Tensor<'float32'>);
      const got = await s.read();
      assertClose(got, Float32Array.from(sigma), { atol: 1e-5 }, 'singular values against the construction');
      const eye = new Float64Array(m * m).map((_, i) => (i % (m + 1) === 0 ? 1 : 0));
      assertClose(await ops.gemm(u, u, { transA: true }).read(), eye, { atol: 1e-4 }, 'UᵀU = I');
      assertClose(await ops.gemm(vt, vt, { transB: true }).read(), eye, { atol: 1e-4 }, 'V Vᵀ = I');
    });

    it('a singular matrix, and NaN input to luFactor, qr and svd, are NumericErrors at the next await', async () => {
      const singular = gpu.tensor(Float64Array.from([1, 2, 2, 4]), [2, 2]);
      await assert.rejects(ops.luFactor(singular).lu.read(), (e: unknown) => e instanceof NumericError && /singular/.test(String(e)));
      const bad = Float64Array.from([1, 0, NaN, 1]);
      for (const run of [(t: Tensor<'float64'>) => ops.luFactor(t).lu, (t: Tensor<'float64'>) => ops.qr(t).q, (t: Tensor<'float64'>) => ops.svd(t).s]) {
        await assert.rejects(run(gpu.tensor(bad, [2, 2], { allowNonFinite: true })).read(), (e: unknown) => e instanceof NumericError && /NaN at flat index 2/.test(String(e)));
      }
      assert.deepEqual([...(await gpu.zeros([1]).read())], [0]);
    });

    it("luSolve with pivots outside 1..n rejects the next await with a RangeError naming 'pivots', never indexing with them; the context stays usable", async () => {
      // On CUDA the row swaps run in a kernel: a bad pivot is a device fault raised at the next
      // synchronisation (row_swaps_kernel), not an out-of-bounds access.
      const n = 4;
      const A = Float64Array.from([4, 1, 0, 0, 1, 4, 1, 0, 0, 1, 4, 1, 0, 0, 1, 4]);
      for (const dtype of ['float32', 'float64'] as const) {
        const a = T(gpu, dtype === 'float32' ? Float32Array.from(A) : A, [n, n]);
        const b = T(gpu, dtype === 'float32' ? Float32Array.from([1, 2, 3, 4]) : Float64Array.from([1, 2, 3, 4]), [n]);
        for (const bad of [[1, 99, 3, 4], [0, 2, 3, 4], [-(2 ** 31), 2, 3, 4], [5, 5, 5, 5]]) {
          const x = ops.luSolve({ lu: a, pivots: gpu.tensor(Int32Array.from(bad), [n]) }, b);
          await assert.rejects(x.read(), (e: unknown) => e instanceof RangeError && /luSolve/.test(String(e)) && /'pivots' must hold row numbers in 1\.\.4/.test(String(e)), `${dtype} pivots ${bad}`);
        }
        const x = await ops.solve(a, b).read();
        for (let i = 0; i < n; i++) {
          let s = 0;
          for (let j = 0; j < n; j++) s += A[i * n + j] * x[j];
          assert.ok(Math.abs(s - (i + 1)) < 1e-4, `${dtype} row ${i} after the faults: ${s}`);
        }
      }
    });
  });

  it('a group of K = 3 float64 runs of one shape on the GPU, a context (stream) each (TrainerGroup): every member as its run alone (≤ 1e-9 relative), a checkpoint per member', async () => {
    // What orthornn sweep --group runs on CUDA: the members' steps side by side on three
    // streams. Each member alone trains on the device's shared context.
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-gpu-group-'));
    try {
      const shared: Partial<TrainConfig> = { task: 'copy', delay: 10, hidden: 32, batchSize: 16, steps: 30, validEvery: 10, logEvery: 10, seed: 7, dtype: 'float64', device: PARITY_DEVICE };
      const members: Partial<TrainConfig>[] = [{ margin: 0.01 }, { margin: 0.1, cayleyLr: 1e-4, clipNorm: 1 }, { margin: 0, init: 'glorot', lr: 3e-3, optimizer: 'adam' }];
      const alone: TrainResult[] = [];
      for (const [i, m] of members.entries()) alone.push(await train({ ...shared, ...m, out: path.join(tmp, `alone-${i}`) }));
      const group = await TrainerGroup.create(members.map((m, i) => ({ ...shared, ...m, out: path.join(tmp, `group-${i}`) })));
      let grouped: TrainResult[];
      try {
        assert.equal(group.contexts.length, PARITY_DEVICE === 'cpu' ? 1 : 3, 'contexts the members are dealt over');
        grouped = await group.run();
      } finally {
        group.dispose();
      }
      for (const [i, r] of grouped.entries()) {
        assert.equal(r.steps, alone[i].steps, `member ${i}: steps`);
        assertClose([r.best!.loss], [alone[i].best!.loss], { rtol: 1e-9, atol: 0 }, `member ${i}: best validation loss`);
        const [got, want] = [readCheckpoint(path.join(tmp, `group-${i}`, 'last.safetensors')).parameters, readCheckpoint(path.join(tmp, `alone-${i}`, 'last.safetensors')).parameters];
        assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort(), `member ${i}: parameter names`);
        for (const name of Object.keys(want)) assertClose(got[name], want[name], parityTol('float64', want[name]), `member ${i}: ${name}`);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  for (const persistent of [true, false]) {
    it(`1,000 training steps${persistent ? '' : ' (ORTHORNN_CUDA_PERSISTENT=0)'}: no growth in device memory; ${persistent ? 'one persistent kernel per recurrence' : 'graphs replayed'} with a constant launch count per step`, async () => {
      // Read when the context is created: off, the recurrences run as captured graphs.
      if (!persistent) process.env.ORTHORNN_CUDA_PERSISTENT = '0';
      const ctx = new Context({ device: PARITY_DEVICE, seed: 1 });
      delete process.env.ORTHORNN_CUDA_PERSISTENT;
      try {
        const [steps, B, d, n, k] = [50, 16, 4, 64, 8];
        const model = await ElmanRNN.create({ inputSize: d, hiddenSize: n, outputSize: k, margin: 0.1, context: ctx, seed: 1 });
        const { U, V, ...euclidean } = model.parameters;
        const opt = new RMSprop(euclidean, { lr: 1e-3 });
        const r = rng(TEST_SEED + 3);
        const batch = {
          x: ctx.tensor(Float32Array.from({ length: steps * B * d }, () => r() - 0.5), [steps, B, d]),
          targets: ctx.tensor(Int32Array.from({ length: steps * B }, () => Math.floor(r() * k)), [steps, B]),
        };
        const step = async () => {
          const res = await model.lossAndGradients(batch);
          opt.step(res.gradients);
          ops.cayleyStep(U, res.gradients.U, 1e-3);
          ops.cayleyStep(V, res.gradients.V, 1e-3);
          return res.loss;
        };
        const firstLoss = await step();
        for (let i = 0; i < 4; i++) await step();
        await ctx.sync();
        // memory() counts the whole device: let earlier suites' garbage tensors be finalised first.
        for (let i = 0; i < 3; i++) {
          (globalThis as { gc?: () => void }).gc?.();
          await new Promise((resolve) => setImmediate(resolve));
        }
        const before = memoryOf(ctx.device);
        const c0 = ctx.launchCounters();
        await step();
        await ctx.sync();
        const c1 = ctx.launchCounters();
        const launches = c1.kernels + c1.libraryCalls + c1.graphs - (c0.kernels + c0.libraryCalls + c0.graphs);
        console.log(`      one training step (T = ${steps}, B = ${B}, n = ${n}): ${launches} launches from the host ` +
          `(${c1.kernels - c0.kernels} kernels/copies, ${c1.libraryCalls - c0.libraryCalls} library calls, ${c1.graphs - c0.graphs} graphs running ${c1.graphNodes - c0.graphNodes} nodes)`);
        if (!selfCheck && persistent) assert.equal(c1.graphs - c0.graphs, 0, 'no graph runs: each recurrence is one persistent kernel');
        if (!selfCheck && !persistent) {
          assert.equal(c1.graphs - c0.graphs, 2, 'the forward and the backward recurrence each replay one graph');
          assert.equal(c1.graphsBuilt, c0.graphsBuilt, 'no graph is re-captured in steady state');
        }
        const started = performance.now();
        let loss = NaN;
        for (let i = 0; i < 1000; i++) loss = await step();
        const after = memoryOf(ctx.device);
        console.log(`      1,000 steps in ${((performance.now() - started) / 1000).toFixed(2)} s, final loss ${loss.toFixed(4)}; device memory ${before.bytes} → ${after.bytes} bytes`);
        assert.ok(Number.isFinite(loss));
        assert.equal(after.bytes, before.bytes, 'device bytes');
        assert.equal(after.tensors, before.tensors, 'device allocations');
        const c2 = ctx.launchCounters();
        assert.equal(c2.graphsBuilt, c0.graphsBuilt, 'no graph re-captured over 1,000 steps');
        assert.equal(c2.graphsUpdated, c0.graphsUpdated, 'no graph updated over 1,000 steps');
        const c3 = ctx.launchCounters();
        await step();
        await ctx.sync();
        const c4 = ctx.launchCounters();
        assert.equal(c4.kernels + c4.libraryCalls + c4.graphs - (c3.kernels + c3.libraryCalls + c3.graphs), launches, 'launches per step stay the same');
        if (!persistent) {
          // A second model of the same shapes (and the same initialisation) on other buffers: its
          // recurrences reuse the instantiated graphs, updated in place; its first loss is the
          // first model's first (an update that kept the old buffers would give the trained one's).
          const twin = await ElmanRNN.create({ inputSize: d, hiddenSize: n, outputSize: k, margin: 0.1, context: ctx, seed: 1 });
          // Tensors freed while its graphs are being captured (their memory goes back to the
          // device then, from this thread, as a user's finalisers would) must not break it.
          const scratch = Array.from({ length: 64 }, (_, i) => ctx.tensor(new Float32Array(4096).fill(i), [64, 64]));
          await ctx.sync();
          const c5 = ctx.launchCounters();
          const pending = twin.lossAndGradients(batch);
          for (const t of scratch) t.dispose();
          const twinLoss = (await pending).loss;
          await ctx.sync();
          const c6 = ctx.launchCounters();
          console.log(`      a second model of the same shapes: ${c6.graphsUpdated - c5.graphsUpdated} graph(s) updated in place, ${c6.graphsBuilt - c5.graphsBuilt} instantiated; loss ${twinLoss} against ${firstLoss}`);
          if (!selfCheck) assert.equal(c6.graphsBuilt - c5.graphsBuilt, 0, 'same shapes: graphs updated in place, not instantiated anew');
          assert.ok(Math.abs(twinLoss - firstLoss) <= 1e-5 * Math.abs(firstLoss), `the twin's first loss ${twinLoss} is the first model's ${firstLoss}`);
          twin.dispose();
        }
        model.dispose();
        opt.dispose();
      } finally {
        ctx.dispose();
      }
    });
  }

  it('graph captures survive tensors freed meanwhile from the JS thread (of the capturing context and of another): 20 models in turn, each captured and replayed', async () => {
    // cudaFree synchronises the device, which would invalidate a capture in progress on the
    // worker and turn the context's recurrences to step by step for good (a benchmark on an H200
    // once fell from 6.2 to 11.7 ms per step so); frees are held back until the capture ends.
    const ctx = new Context({ device: PARITY_DEVICE, seed: 1, ...(selfCheck ? {} : { variants: { elmanRecurrence: 'graph' } }) });
    const other = new Context({ device: PARITY_DEVICE, seed: 2 });
    try {
      const [T, B, d, n, k] = [200, 8, 4, 256, 8];
      const batch = { x: ctx.randn([T, B, d], { seed: 3 }), targets: ctx.tensor(Int32Array.from({ length: T * B }, (_, i) => i % k), [T, B]) };
      await ctx.sync();
      const c0 = ctx.launchCounters();
      const models = 20;
      let first = NaN;
      for (let i = 0; i < models; i++) {
        // A new model's workspaces are new buffers: its recurrences are captured again.
        const model = await ElmanRNN.create({ inputSize: d, hiddenSize: n, outputSize: k, margin: 0.1, context: ctx, seed: 1 });
        const scratch = [...Array.from({ length: 32 }, () => other.randn([64, 64])), ...Array.from({ length: 32 }, () => ctx.randn([64, 64]))];
        await Promise.all([ctx.sync(), other.sync()]);
        const pending = model.lossAndGradients(batch);
        for (const t of scratch) t.dispose();
        const { loss } = await pending;
        if (i === 0) first = loss;
        assert.ok(Math.abs(loss - first) <= 1e-6 * Math.abs(first), `model ${i}: loss ${loss}, the first model's ${first}`);
        model.dispose();
      }
      await ctx.sync();
      const c1 = ctx.launchCounters();
      console.log(`      ${models} models: ${c1.graphs - c0.graphs} graph launches, ${c1.graphsBuilt - c0.graphsBuilt} instantiated, ${c1.graphsUpdated - c0.graphsUpdated} updated in place`);
      if (!selfCheck) {
        assert.equal(c1.graphs - c0.graphs, 2 * models, 'every forward and backward recurrence replayed as a graph');
        assert.equal(ctx.variants().elmanRecurrence.last, 'graph');
      }
    } finally {
      ctx.dispose();
      other.dispose();
    }
  });
});
