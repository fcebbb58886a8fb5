/** Initialisations (docs/math.md (M38)–(M40)), computed on the model's device where they need linear algebra. */
import type { Context } from '../context';
import type { FloatDType } from '../native';
import * as ops from '../ops';
import type { Tensor } from '../tensor';

export type InitScheme = 'orthogonal' | 'identity' | 'glorot';

/** A random orthogonal n×n matrix: Q of the QR of a Gaussian matrix, with diag(R) > 0. */
export function randomOrthogonal<D extends FloatDType>(ctx: Context, n: number, dtype: D, seed: number): Tensor<D> {
  const g = ctx.randn<D>([n, n], { dtype, seed });
  const { q, r } = ops.qr(g);
  g.dispose();
  r.dispose();
  return q;
}

export function identity<D extends FloatDType>(ctx: Context, n: number, dtype: D): Tensor<D> {
  const data = dtype === 'float32' ? new Float32Array(n * n) : new Float64Array(n * n);
  for (let i = 0; i < n; i++) data[i * n + i] = 1;
  return ctx.tensor(data, [n, n]) as Tensor<D>;
}

/** Glorot (Xavier) uniform: U(±√(6 / (fanIn + fanOut))) for a fanOut × fanIn matrix. */
export function glorotUniform<D extends FloatDType>(ctx: Context, rows: number, cols: number, dtype: D, seed: number): Tensor<D> {
  const a = Math.sqrt(6 / (rows + cols));
  return ctx.rand<D>([rows, cols], { dtype, seed, low: -a, high: a });
}

/** The transpose of a matrix, computed on its device (Mᵀ = Mᵀ·I). */
export function transpose<D extends FloatDType>(ctx: Context, m: Tensor<D>): Tensor<D> {
  const eye = identity(ctx, m.shape[0], m.dtype);
  const t = ops.gemm(m, eye, { transA: true });
  eye.dispose();
  return t;
}

/** p with marginSigmoid(p) = s: the inverse of s = 2m(σ(p) − ½) + 1, for s clipped strictly inside the margin. */
export function marginLogit(s: number, margin: number): number {
  const u = (s - 1) / (2 * margin) + 0.5; // σ(p)
  const eps = 1e-6;
  const v = Math.min(1 - eps, Math.max(eps, u));
  return Math.log(v / (1 - v));
}
