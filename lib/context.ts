import { DeviceError, DisposedError, rangeError, typeError } from './errors';
import { type DType, type FloatDType, type LaunchCounters, type NativeContext, type NativeWorkspace, native } from './native';
import { Tensor, type ArrayFor } from './tensor';
import { checkDType, checkFinite, checkFloatDType, checkOptions, checkSeed, checkShape } from './validate';

export interface ContextOptions {
  /** 'cpu' (default), 'cuda' or 'cuda:N'. */
  device?: string;
  /** Base seed for random tensors created without an explicit seed (default 0). */
  seed?: number;
}

export interface TensorOptions {
  /** Allow NaN and ±Inf in the data (rejected by default: they are almost always a bug upstream). */
  allowNonFinite?: boolean;
}

export interface RandomOptions<D extends FloatDType> {
  dtype?: D;
  /** Element i is a pure function of (seed, i), identical on every backend. */
  seed?: number;
}

type TypedFor<D extends DType> = ArrayFor<D>;
type DTypeOf<A> = A extends Float32Array ? 'float32' : A extends Float64Array ? 'float64' : 'int32';

function parseDevice(device: string): { backend: string; index: number } {
  const m = /^(cpu|cuda)(?::(\d+))?$/.exec(device);
  if (!m) throw rangeError('Context', 'device', "'cpu', 'cuda' or 'cuda:N'", `'${device}'`);
  return { backend: m[1], index: m[2] === undefined ? 0 : Number(m[2]) };
}

/**
 * A device and the ordered queue of work on it (a worker thread on the CPU, a stream on
 * CUDA). Tensors belong to one context; `dispose()` cancels work not yet started and frees
 * every tensor of the context.
 */
export class Context {
  /** @internal */
  readonly native: NativeContext;
  private nextSeed: number;
  private scratch?: NativeWorkspace;

  constructor(options: ContextOptions = {}) {
    checkOptions('Context', options, ['device', 'seed']);
    const device = options.device ?? 'cpu';
    if (typeof device !== 'string') throw typeError('Context', 'device', 'a string', device);
    const seed = options.seed ?? 0;
    checkSeed('Context', 'seed', seed);
    const { backend, index } = parseDevice(device);
    const info = native().backends().find((b) => b.name === backend);
    if (backend === 'cuda' && info && !info.available) {
      throw new DeviceError(`Context: the cuda backend is unavailable: ${info.reason ?? 'unknown reason'}`);
    }
    this.native = new (native().NativeContext)(backend, index);
    this.nextSeed = seed;
  }

  /** 'cpu' or 'cuda'. */
  get backend(): string {
    return this.native.backend;
  }
  /** 'cpu' or 'cuda:N'. */
  get device(): string {
    return this.native.device;
  }
  get disposed(): boolean {
    return this.native.disposed;
  }

  /** Whether this context's backend implements `op` for `dtype`. */
  supports(op: string, dtype: DType): boolean {
    return this.native.supports(op, dtype);
  }

  /** A tensor holding a copy of `data` (row-major) with the given shape. */
  tensor<A extends Float32Array | Float64Array | Int32Array>(data: A, shape: readonly number[], options: TensorOptions = {}): Tensor<DTypeOf<A>> {
    this.assertLive('tensor');
    checkOptions('tensor', options, ['allowNonFinite']);
    if (!(data instanceof Float32Array || data instanceof Float64Array || data instanceof Int32Array)) {
      throw typeError('tensor', 'data', 'a Float32Array, Float64Array or Int32Array', data);
    }
    checkShape('tensor', 'shape', shape);
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== data.length) {
      throw rangeError('tensor', 'data', `${size} elements for shape [${shape.join(', ')}]`, `${data.length}`);
    }
    if (!options.allowNonFinite && !(data instanceof Int32Array)) checkFinite('tensor', 'data', data);
    return this.wrap(this.native.fromArray(data, shape.slice()));
  }

  /** An uninitialised tensor: for outputs an op will overwrite. */
  empty<D extends DType = 'float32'>(shape: readonly number[], options: { dtype?: D } = {}): Tensor<D> {
    this.assertLive('empty');
    checkOptions('empty', options, ['dtype']);
    checkShape('empty', 'shape', shape);
    const dtype = (options.dtype ?? 'float32') as D;
    checkDType('empty', 'dtype', dtype);
    return this.wrap(this.native.empty(shape.slice(), dtype));
  }

  full<D extends DType = 'float32'>(shape: readonly number[], value: number, options: { dtype?: D } = {}): Tensor<D> {
    if (typeof value !== 'number') throw typeError('full', 'value', 'a number', value);
    if (!Number.isFinite(value)) throw rangeError('full', 'value', 'a finite number', String(value));
    const t = this.empty<D>(shape, options);
    this.native.fill(t.handle, value);
    return t;
  }

  zeros<D extends DType = 'float32'>(shape: readonly number[], options: { dtype?: D } = {}): Tensor<D> {
    return this.full(shape, 0, options);
  }

  /** Normal(mean, std²) entries, seeded. */
  randn<D extends FloatDType = 'float32'>(
    shape: readonly number[],
    options: RandomOptions<D> & { mean?: number; std?: number } = {},
  ): Tensor<D> {
    checkOptions('randn', options, ['dtype', 'seed', 'mean', 'std']);
    const { mean = 0, std = 1 } = options;
    for (const [k, v] of [['mean', mean], ['std', std]] as const) {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw rangeError('randn', k, 'a finite number', String(v));
    }
    if (std < 0) throw rangeError('randn', 'std', 'non-negative', String(std));
    const t = this.randomTarget<D>('randn', shape, options);
    this.native.randomNormal(t.handle, this.seedFor('randn', options.seed), mean, std);
    return t;
  }

  /** Uniform entries in (low, high), seeded. */
  rand<D extends FloatDType = 'float32'>(
    shape: readonly number[],
    options: RandomOptions<D> & { low?: number; high?: number } = {},
  ): Tensor<D> {
    checkOptions('rand', options, ['dtype', 'seed', 'low', 'high']);
    const { low = 0, high = 1 } = options;
    for (const [k, v] of [['low', low], ['high', high]] as const) {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw rangeError('rand', k, 'a finite number', String(v));
    }
    if (!(low <= high)) throw rangeError('rand', 'high', `at least low (${low})`, String(high));
    const t = this.randomTarget<D>('rand', shape, options);
    this.native.randomUniform(t.handle, this.seedFor('rand', options.seed), low, high);
    return t;
  }

  /**
   * What this context's backend has submitted to its device so far (all zero on the CPU):
   * difference two readings around an awaited training step for its launch count.
   */
  launchCounters(): LaunchCounters {
    this.assertLive('launchCounters');
    return this.native.launchCounters();
  }

  /** Resolves when everything queued so far has run; rejects with the first failure since the last await. */
  sync(): Promise<void> {
    this.assertLive('sync');
    return this.native.sync();
  }

  /** Cancels work not yet started, frees every tensor of this context, stops its worker. Idempotent. */
  dispose(): void {
    this.native.dispose();
  }

  /** @internal Scratch for ops that need it (they run one at a time on this context). */
  get workspace(): NativeWorkspace {
    this.scratch ??= native().createWorkspace(this.native);
    return this.scratch;
  }

  /** @internal */
  wrap<D extends DType>(handle: ReturnType<NativeContext['empty']>): Tensor<D> {
    return new Tensor<D>(this, handle);
  }

  /** @internal */
  assertLive(fn: string): void {
    if (this.native.disposed) throw new DisposedError(`${fn}: the context (${this.device}) has been disposed`);
  }

  private randomTarget<D extends FloatDType>(fn: string, shape: readonly number[], options: RandomOptions<D>): Tensor<D> {
    const dtype = (options.dtype ?? 'float32') as D;
    checkFloatDType(fn, 'dtype', dtype);
    return this.empty<D>(shape, { dtype });
  }

  private seedFor(fn: string, seed: number | undefined): number {
    if (seed !== undefined) {
      checkSeed(fn, 'seed', seed);
      return seed;
    }
    const s = this.nextSeed;
    this.nextSeed = (this.nextSeed + 0x9e3779b9) % Number.MAX_SAFE_INTEGER;
    return s;
  }
}

const defaults = new Map<string, Context>();

/** The shared context of a device, created on first use. */
export function defaultContext(device = 'cpu'): Context {
  let ctx = defaults.get(device);
  if (!ctx || ctx.disposed) {
    ctx = new Context({ device });
    defaults.set(device, ctx);
  }
  return ctx;
}

export type { TypedFor };
