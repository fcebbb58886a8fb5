/** Shared test utilities: seeded data, naive references, tolerance checks. */
import assert from 'node:assert/strict';
import { backends, Context } from '../lib/index';
import type { FloatDType, Tensor } from '../lib/index';

/**
 * Fresh random data each run, reproducible from the printed seed:
 * ORTHORNN_TEST_SEED=<seed> npm test repeats a failing run.
 */
export const TEST_SEED = Number(process.env.ORTHORNN_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
let announced = false;
export function announceSeed(): void {
  if (!announced) console.log(`      test data seed: ORTHORNN_TEST_SEED=${TEST_SEED}`);
  announced = true;
}

/** mulberry32: a small, independent PRNG for test data (not the library's Philox). */
/** Polls `test` every 50 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function until(what: string, test: () => boolean, timeoutMs = 120_000): Promise<void> {
  const started = Date.now();
  while (!test()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let stream = 0;
/** Uniform(-1, 1) data from a fresh sub-stream of the run's seed. */
export function randomArray(n: number, dtype: 'float32' | 'float64' = 'float64'): Float32Array | Float64Array {
  const r = rng(TEST_SEED + 7919 * ++stream);
  const out = dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = 2 * r() - 1;
  return out;
}

/** Row-major naive C = op(A) op(B) in float64. */
export function naiveGemm(A: ArrayLike<number>, B: ArrayLike<number>, m: number, n: number, k: number, transA = false, transB = false): Float64Array {
  const C = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        const a = transA ? A[p * m + i] : A[i * k + p];
        const b = transB ? B[j * k + p] : B[p * n + j];
        s += a * b;
      }
      C[i * n + j] = s;
    }
  }
  return C;
}

/** Asserts |a − b| ≤ atol + rtol·|b| element-wise, reporting the worst element. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: { atol?: number; rtol?: number }, label = ''): void {
  const { atol = 0, rtol = 0 } = tol;
  assert.equal(actual.length, expected.length, `${label}: length ${actual.length} vs ${expected.length}`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < actual.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    const excess = diff - (atol + rtol * Math.abs(expected[i]));
    if (!(excess <= 0) && (worst < 0 || !(excess <= worstExcess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    assert.fail(`${label}: element ${worst}: ${actual[worst]} vs expected ${expected[worst]} (atol ${atol}, rtol ${rtol})`);
  }
}

/** max |MᵀM − I| for an m×k matrix M with orthonormal columns. */
export function orthonormalityError(M: ArrayLike<number>, m: number, k: number): number {
  let worst = 0;
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < k; j++) {
      let s = 0;
      for (let r = 0; r < m; r++) s += M[r * k + i] * M[r * k + j];
      worst = Math.max(worst, Math.abs(s - (i === j ? 1 : 0)));
    }
  }
  return worst;
}

/** The backends this machine can run, each with a context factory; the rest are listed with why. */
export function availableBackends(): string[] {
  return backends().filter((b) => b.available).map((b) => b.name);
}

export function skippedBackends(): { name: string; reason: string }[] {
  return backends().filter((b) => !b.available).map((b) => ({ name: b.name, reason: b.reason ?? 'unavailable' }));
}

/** A context per test file; disposed by the caller's after() hook. */
export function newContext(device = 'cpu'): Context {
  return new Context({ device, seed: TEST_SEED });
}

export const DTYPES = ['float32', 'float64'] as const;
/** Tolerances by dtype for results of O(k) accumulated products. */
export function tolFor(dtype: 'float32' | 'float64', k = 1): { atol: number; rtol: number } {
  const scale = Math.sqrt(Math.max(1, k));
  return dtype === 'float32' ? { atol: 2e-6 * scale, rtol: 2e-5 * scale } : { atol: 1e-13 * scale, rtol: 1e-12 * scale };
}

/** Skips the calling test, saying why, when the context's backend lacks the op for the dtype. */
export function skipUnless(this: Mocha.Context, ctx: Context, op: string, dtype: FloatDType): void {
  if (!ctx.supports(op, dtype)) {
    console.log(`      skipped: the ${ctx.backend} backend does not implement ${op} for ${dtype} yet`);
    this.skip();
  }
}

/** A model's parameters or gradients as a plain record, for tests that walk them by name whatever the model. */
export function byName<D extends FloatDType>(tensors: object): Record<string, Tensor<D>> {
  return tensors as Record<string, Tensor<D>>;
}
