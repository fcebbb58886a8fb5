/**
 * Optimisers for Euclidean parameters (DESIGN §2.7): RMSprop (the paper's, ρ = 0.9), Adam and
 * SGD with momentum, with PyTorch's update rules; weight decay is L2 added to the gradient.
 * Updates run natively, in place, on the parameters' context. U and V of an svd model are not
 * Euclidean: they take Cayley steps (ops.cayleyStep) and never go to these optimisers.
 */
import type { Context } from '../context';
import { rangeError, typeError } from '../errors';
import type { FloatDType } from '../native';
import type { Tensor } from '../tensor';
import { checkOptions, checkTensor, shapeStr } from '../validate';

export interface OptimizerOptions {
  /** Learning rate (may be changed between steps, e.g. by a schedule). */
  lr: number;
  /** L2 weight decay added to the gradient (default 0). */
  weightDecay?: number;
}

function finiteNonNegative(fn: string, arg: string, v: unknown): number {
  if (typeof v !== 'number') throw typeError(fn, arg, 'a number', v);
  if (!Number.isFinite(v) || v < 0) throw rangeError(fn, arg, 'a finite non-negative number', String(v));
  return v;
}

function fraction(fn: string, arg: string, v: unknown): number {
  const x = finiteNonNegative(fn, arg, v);
  if (x >= 1) throw rangeError(fn, arg, 'in [0, 1)', String(x));
  return x;
}

export abstract class Optimizer<D extends FloatDType = FloatDType> {
  readonly params: Readonly<Record<string, Tensor<D>>>;
  readonly weightDecay: number;
  /** Steps taken so far. */
  steps = 0;
  private rate: number;
  protected readonly context: Context;
  protected readonly slots: Record<string, Tensor<D>[]> = {};

  protected constructor(
    protected readonly fn: string,
    params: Record<string, Tensor<D>>,
    options: OptimizerOptions,
    keys: readonly string[],
    slotCount: number,
  ) {
    if (params === null || typeof params !== 'object') throw typeError(fn, 'params', 'an object of tensors by name', params);
    if (options === null || typeof options !== 'object') throw typeError(fn, 'options', 'an object', options);
    checkOptions(fn, options, ['lr', 'weightDecay', ...keys]);
    const names = Object.keys(params);
    if (names.length === 0) throw rangeError(fn, 'params', 'at least one tensor', 'none');
    let context: Context | undefined;
    for (const name of names) {
      const p = params[name];
      checkTensor(fn, `params.${name}`, p);
      if (p.dtype !== 'float32' && p.dtype !== 'float64') throw typeError(fn, `params.${name}`, 'a float32 or float64 tensor', `${p.dtype} tensor`);
      context ??= p.context;
      if (p.context !== context) throw rangeError(fn, `params.${name}`, 'on the same context as the others', p.device);
    }
    this.params = { ...params };
    this.context = context!;
    this.rate = finiteNonNegative(fn, 'lr', options.lr);
    this.weightDecay = finiteNonNegative(fn, 'weightDecay', options.weightDecay ?? 0);
    for (const name of names) {
      const p = params[name];
      this.slots[name] = Array.from({ length: slotCount }, () => this.context.zeros<D>(p.shape, { dtype: p.dtype }));
    }
  }

  get lr(): number {
    return this.rate;
  }
  set lr(value: number) {
    this.rate = finiteNonNegative(this.fn, 'lr', value);
  }

  /** Queues one update of every parameter from `grads[name]` (other entries of `grads` are ignored). */
  step(grads: Record<string, Tensor>): void {
    const fn = `${this.fn}.step`;
    if (grads === null || typeof grads !== 'object') throw typeError(fn, 'grads', 'an object of tensors by name', grads);
    for (const [name, p] of Object.entries(this.params)) {
      const g = grads[name];
      if (g === undefined) throw rangeError(fn, 'grads', `a gradient for every parameter`, `none for '${name}'`);
      checkTensor(fn, `grads.${name}`, g);
      if (g.dtype !== p.dtype || g.size !== p.size) throw rangeError(fn, `grads.${name}`, `a ${p.dtype} tensor of shape ${shapeStr(p.shape)}`, `${g.dtype} ${shapeStr(g.shape)}`);
      if (g.context !== this.context) throw rangeError(fn, `grads.${name}`, "on the parameters' context", g.device);
    }
    this.steps++;
    for (const [name, p] of Object.entries(this.params)) this.update(p, grads[name], this.slots[name]);
  }

  protected abstract update(param: Tensor<D>, grad: Tensor, slots: Tensor<D>[]): void;

  /** The names of the per-parameter state tensors (PyTorch's). */
  abstract readonly slotNames: readonly string[];

  /** The optimiser's state tensors by `<parameter>.<slot>` (what checkpoints hold), read back. */
  async state(): Promise<Record<string, Float32Array | Float64Array>> {
    const out: Record<string, Float32Array | Float64Array> = {};
    for (const [name, list] of Object.entries(this.slots)) {
      for (const [i, t] of list.entries()) out[`${name}.${this.slotNames[i]}`] = (await t.read()) as Float32Array | Float64Array;
    }
    return out;
  }

  /** Restores state() and the step count; every slot must be present with its parameter's size. */
  loadState(values: Record<string, Float32Array | Float64Array>, steps: number): void {
    const fn = `${this.fn}.loadState`;
    if (!Number.isSafeInteger(steps) || steps < 0) throw rangeError(fn, 'steps', 'a non-negative integer', String(steps));
    const staged: [Tensor<D>, Float32Array | Float64Array][] = [];
    for (const [name, list] of Object.entries(this.slots)) {
      for (const [i, t] of list.entries()) {
        const key = `${name}.${this.slotNames[i]}`;
        const v = values[key];
        if (!(v instanceof Float32Array || v instanceof Float64Array)) throw rangeError(fn, 'values', `a typed array for '${key}'`, v === undefined ? 'none' : typeof v);
        if (v.length !== t.size) throw rangeError(fn, `values.${key}`, `${t.size} values`, String(v.length));
        staged.push([t, v]);
      }
    }
    for (const [t, v] of staged) {
      const data = t.dtype === 'float32' ? Float32Array.from(v) : Float64Array.from(v);
      const src = this.context.tensor(data, t.shape) as Tensor<D>;
      this.context.native.copy(src.handle, t.handle);
      src.dispose();
    }
    this.steps = steps;
  }

  /** Frees the optimiser's state (the parameters stay). */
  dispose(): void {
    for (const list of Object.values(this.slots)) for (const t of list) t.dispose();
  }
}

/** RMSprop: ms ← ρ ms + (1 − ρ) g², p ← p − lr g / (√ms + ε). */
export class RMSprop<D extends FloatDType = FloatDType> extends Optimizer<D> {
  readonly slotNames = ['square_avg'] as const;
  readonly rho: number;
  readonly eps: number;
  constructor(params: Record<string, Tensor<D>>, options: OptimizerOptions & { rho?: number; eps?: number }) {
    super('RMSprop', params, options, ['rho', 'eps'], 1);
    this.rho = fraction('RMSprop', 'rho', options.rho ?? 0.9);
    this.eps = finiteNonNegative('RMSprop', 'eps', options.eps ?? 1e-8);
  }
  protected update(p: Tensor<D>, g: Tensor, [ms]: Tensor<D>[]): void {
    this.context.native.rmspropStep(p.handle, g.handle, ms.handle, this.lr, this.rho, this.eps, this.weightDecay);
  }
}

/** Adam with bias correction: p ← p − lr m̂ / (√v̂ + ε). */
export class Adam<D extends FloatDType = FloatDType> extends Optimizer<D> {
  readonly slotNames = ['exp_avg', 'exp_avg_sq'] as const;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  constructor(params: Record<string, Tensor<D>>, options: OptimizerOptions & { beta1?: number; beta2?: number; eps?: number }) {
    super('Adam', params, options, ['beta1', 'beta2', 'eps'], 2);
    this.beta1 = fraction('Adam', 'beta1', options.beta1 ?? 0.9);
    this.beta2 = fraction('Adam', 'beta2', options.beta2 ?? 0.999);
    this.eps = finiteNonNegative('Adam', 'eps', options.eps ?? 1e-8);
  }
  protected update(p: Tensor<D>, g: Tensor, [m, v]: Tensor<D>[]): void {
    this.context.native.adamStep(p.handle, g.handle, m.handle, v.handle, this.lr, this.beta1, this.beta2, this.eps, this.weightDecay, this.steps);
  }
}

/** SGD with (optional) momentum: b ← μ b + g, p ← p − lr b. */
export class SGD<D extends FloatDType = FloatDType> extends Optimizer<D> {
  readonly slotNames = ['momentum_buffer'] as const;
  readonly momentum: number;
  constructor(params: Record<string, Tensor<D>>, options: OptimizerOptions & { momentum?: number }) {
    super('SGD', params, options, ['momentum'], 1);
    this.momentum = fraction('SGD', 'momentum', options.momentum ?? 0);
  }
  protected update(p: Tensor<D>, g: Tensor, [buffer]: Tensor<D>[]): void {
    this.context.native.sgdStep(p.handle, g.handle, buffer.handle, this.lr, this.momentum, this.weightDecay, this.steps === 1);
  }
}
