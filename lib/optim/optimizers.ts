/**
 * Optimisers for Euclidean parameters (docs/math.md (M34)–(M37)): RMSprop (the paper's, ρ = 0.9, with PyTorch's
 * or Lasagne's placement of ε), Adam and SGD with momentum, with PyTorch's update rules; weight decay is L2 added to the gradient.
 * Updates run natively, in place, on the parameters' context. U and V of an svd model are not
 * Euclidean: they take Cayley steps (ops.cayleyStep) and never go to these optimisers.
 */
import type { Context } from '../context';
import { DisposedError, rangeError, typeError, typeErrorText } from '../errors';
import type { FloatDType } from '../native';
import type { Tensor } from '../tensor';
import { checkCoefficient, checkFinite, checkInteger, checkOneOf, checkOptions, checkTensor, checkTypedArray, readObject, shapeStr } from '../validate';

export interface OptimizerOptions {
  /** Learning rate (may be changed between steps, e.g. by a schedule). */
  lr: number;
  /** L2 weight decay added to the gradient (default 0). */
  weightDecay?: number;
}

/** A decay rate or momentum: a number in [0, 1). */
function fraction(fn: string, arg: string, v: unknown): number {
  return checkCoefficient(fn, arg, v, { max: 1, exclusive: 'max' });
}

export abstract class Optimizer<D extends FloatDType = FloatDType> {
  readonly params: Readonly<Record<string, Tensor<D>>>;
  readonly weightDecay: number;
  /** Steps taken so far. */
  steps = 0;
  private rate: number;
  protected readonly context: Context;
  protected readonly slots: Record<string, Tensor<D>[]> = {};
  /** The options, read once: subclasses take their own from here. */
  protected readonly settings: Readonly<Record<string, unknown>>;
  private disposed = false;

  protected constructor(
    protected readonly fn: string,
    params: Record<string, Tensor<D>>,
    options: OptimizerOptions,
    keys: readonly string[],
    slotCount: number,
  ) {
    const tensors = readObject(fn, 'params', params, 'an object of tensors by name');
    if (options === undefined) throw typeError(fn, 'options', 'an object', options);
    this.settings = checkOptions(fn, options, ['lr', 'weightDecay', ...keys]) as Record<string, unknown>;
    const names = Object.keys(tensors);
    if (names.length === 0) throw rangeError(fn, 'params', 'at least one tensor', 'none');
    let context: Context | undefined;
    for (const name of names) {
      const p = checkTensor(fn, `params.${name}`, tensors[name]);
      if (p.dtype !== 'float32' && p.dtype !== 'float64') throw typeErrorText(fn, `params.${name}`, 'a float32 or float64 tensor', `${p.dtype} tensor`);
      context ??= p.context;
      if (p.context !== context) throw rangeError(fn, `params.${name}`, 'on the same context as the others', p.device);
    }
    this.params = tensors as Record<string, Tensor<D>>;
    this.context = context!;
    this.rate = checkCoefficient(fn, 'lr', this.settings.lr);
    this.weightDecay = checkCoefficient(fn, 'weightDecay', this.settings.weightDecay ?? 0);
    for (const name of names) {
      const p = params[name];
      this.slots[name] = Array.from({ length: slotCount }, () => this.context.zeros<D>(p.shape, { dtype: p.dtype }));
    }
  }

  get lr(): number {
    return this.rate;
  }
  set lr(value: number) {
    this.rate = checkCoefficient(this.fn, 'lr', value);
  }

  /** Queues one update of every parameter from `grads[name]` (other entries of `grads` are ignored). */
  step(grads: Record<string, Tensor>): void {
    const fn = `${this.fn}.step`;
    this.assertLive(fn);
    const given = readObject(fn, 'grads', grads, 'an object of tensors by name');
    const checked: Record<string, Tensor> = {};
    for (const [name, p] of Object.entries(this.params)) {
      if (given[name] === undefined) throw rangeError(fn, 'grads', `a gradient for every parameter`, `none for '${name}'`);
      const g = checkTensor(fn, `grads.${name}`, given[name]);
      if (g.dtype !== p.dtype || g.size !== p.size) throw rangeError(fn, `grads.${name}`, `a ${p.dtype} tensor of shape ${shapeStr(p.shape)}`, `${g.dtype} ${shapeStr(g.shape)}`);
      if (g.context !== this.context) throw rangeError(fn, `grads.${name}`, "on the parameters' context", g.device);
      checked[name] = g;
    }
    this.steps++;
    for (const [name, p] of Object.entries(this.params)) this.update(p, checked[name], this.slots[name]);
  }

  private assertLive(fn: string): void {
    if (this.disposed) throw new DisposedError(`${fn}: the optimizer has been disposed`);
    for (const [name, p] of Object.entries(this.params)) p.assertLive(fn, `params.${name}`);
    this.context.assertLive(fn);
  }

  protected abstract update(param: Tensor<D>, grad: Tensor, slots: Tensor<D>[]): void;

  /** The names of the per-parameter state tensors (PyTorch's). */
  abstract readonly slotNames: readonly string[];

  /** The optimiser's state tensors by `<parameter>.<slot>` (what checkpoints hold), read back. */
  async state(): Promise<Record<string, Float32Array | Float64Array>> {
    this.assertLive(`${this.fn}.state`);
    const out: Record<string, Float32Array | Float64Array> = {};
    for (const [name, list] of Object.entries(this.slots)) {
      for (const [i, t] of list.entries()) out[`${name}.${this.slotNames[i]}`] = (await t.read()) as Float32Array | Float64Array;
    }
    return out;
  }

  /** Restores state() and the step count; every slot must be present with its parameter's size. */
  loadState(values: Record<string, Float32Array | Float64Array>, steps: number): void {
    const fn = `${this.fn}.loadState`;
    this.assertLive(fn);
    const given = readObject(fn, 'values', values, 'an object of typed arrays by slot name');
    checkInteger(fn, 'steps', steps);
    const staged: [Tensor<D>, Float32Array | Float64Array][] = [];
    for (const [name, list] of Object.entries(this.slots)) {
      for (const [i, t] of list.entries()) {
        const key = `${name}.${this.slotNames[i]}`;
        if (given[key] === undefined) throw rangeError(fn, 'values', `a typed array for '${key}'`, 'none');
        const v = checkTypedArray(fn, `values.${key}`, given[key], ['Float32Array', 'Float64Array']);
        if (v.length !== t.size) throw rangeError(fn, `values.${key}`, `${t.size} values`, String(v.length));
        const data = t.dtype === 'float32' ? Float32Array.from(v) : Float64Array.from(v);
        checkFinite(fn, `values.${key}`, data);
        staged.push([t, data]);
      }
    }
    for (const [t, data] of staged) {
      const src = this.context.tensor(data, t.shape) as Tensor<D>;
      this.context.native.copy(src.handle, t.handle);
      src.dispose();
    }
    this.steps = steps;
  }

  /** Frees the optimiser's state (the parameters stay). */
  dispose(): void {
    this.disposed = true;
    for (const list of Object.values(this.slots)) for (const t of list) t.dispose();
  }
}

/**
 * RMSprop: ms ← ρ ms + (1 − ρ) g², then p ← p − lr g / (√ms + ε) (`variant: 'pytorch'`, the
 * default, ε = 1e-8) or p ← p − lr g / √(ms + ε) (`'lasagne'`, ε = 1e-6: the optimiser the
 * paper's authors ran). For gradients far below √ε the two differ: PyTorch's step approaches
 * lr · sign(g), Lasagne's shrinks with g.
 */
export class RMSprop<D extends FloatDType = FloatDType> extends Optimizer<D> {
  readonly slotNames = ['square_avg'] as const;
  readonly rho: number;
  readonly eps: number;
  readonly variant: 'pytorch' | 'lasagne';
  constructor(params: Record<string, Tensor<D>>, options: OptimizerOptions & { rho?: number; eps?: number; variant?: 'pytorch' | 'lasagne' }) {
    super('RMSprop', params, options, ['rho', 'eps', 'variant'], 1);
    this.variant = checkOneOf('RMSprop', 'variant', this.settings.variant ?? 'pytorch', ['pytorch', 'lasagne'] as const);
    this.rho = fraction('RMSprop', 'rho', this.settings.rho ?? 0.9);
    this.eps = checkCoefficient('RMSprop', 'eps', this.settings.eps ?? (this.variant === 'lasagne' ? 1e-6 : 1e-8));
  }
  protected update(p: Tensor<D>, g: Tensor, [ms]: Tensor<D>[]): void {
    this.context.native.rmspropStep(p.handle, g.handle, ms.handle, this.lr, this.rho, this.eps, this.variant === 'lasagne', this.weightDecay);
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
    this.beta1 = fraction('Adam', 'beta1', this.settings.beta1 ?? 0.9);
    this.beta2 = fraction('Adam', 'beta2', this.settings.beta2 ?? 0.999);
    this.eps = checkCoefficient('Adam', 'eps', this.settings.eps ?? 1e-8);
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
    this.momentum = fraction('SGD', 'momentum', this.settings.momentum ?? 0);
  }
  protected update(p: Tensor<D>, g: Tensor, [buffer]: Tensor<D>[]): void {
    this.context.native.sgdStep(p.handle, g.handle, buffer.handle, this.lr, this.momentum, this.weightDecay, this.steps === 1);
  }
}
