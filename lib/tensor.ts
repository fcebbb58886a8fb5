import type { Context } from './context';
import { DisposedError, rangeError } from './errors';
import type { DType, NativeTensor } from './native';

/** Every Tensor this library made: the brand check that no Proxy or look-alike passes. */
const tensors = new WeakSet<object>();

/** @internal Whether `v` is a genuine Tensor (no Proxy trap or getter runs). */
export function isTensor(v: unknown): v is Tensor {
  return tensors.has(v as object);
}

export type ArrayFor<D extends DType> = D extends 'float32' ? Float32Array : D extends 'float64' ? Float64Array : Int32Array;

/**
 * A handle on device memory. Ops on tensors are queued on their context and run off the JS
 * thread; `await t.read()` returns the values once everything queued before has run.
 * Call `dispose()` when done (idempotent); garbage collection is only the backstop.
 */
export class Tensor<D extends DType = DType> {
  /** @internal */
  readonly handle: NativeTensor;
  readonly context: Context;
  readonly shape: readonly number[];
  readonly dtype: D;

  /** @internal use Context.tensor / zeros / randn, or an op. */
  constructor(context: Context, handle: NativeTensor) {
    this.context = context;
    this.handle = handle;
    this.shape = Object.freeze(handle.shape.slice());
    this.dtype = handle.dtype as D;
    tensors.add(this);
  }

  get device(): string {
    return this.handle.device;
  }
  /** Number of elements. */
  get size(): number {
    let n = 1;
    for (const d of this.shape) n *= d;
    return n;
  }
  get bytes(): number {
    return this.handle.bytes;
  }
  get disposed(): boolean {
    return this.handle.disposed;
  }

  /** The values, row-major, in a new typed array. Rejects with the failure of any op queued before. */
  read(): Promise<ArrayFor<D>> {
    this.assertLive('read');
    return this.context.native.read(this.handle) as Promise<ArrayFor<D>>;
  }

  /** The value of a one-element tensor. */
  async item(): Promise<number> {
    this.assertLive('item');
    if (this.size !== 1) throw rangeError('item', 'this', 'a tensor of one element', `shape [${this.shape.join(', ')}]`);
    return (await this.read())[0];
  }

  /** Frees the storage as soon as queued work no longer needs it. Idempotent. */
  dispose(): void {
    this.handle.dispose();
  }

  /** @internal */
  assertLive(fn: string, arg = 'tensor'): void {
    if (this.handle.disposed) {
      throw new DisposedError(`${fn}: argument '${arg}': the tensor (${this.dtype} [${this.shape.join(', ')}]) has been disposed`);
    }
  }

  toString(): string {
    return `Tensor(${this.dtype} [${this.shape.join(', ')}] on ${this.device}${this.disposed ? ', disposed' : ''})`;
  }
}
