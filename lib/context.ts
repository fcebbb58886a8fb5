import { DeviceError, DisposedError, rangeError, show, typeError } from './errors';
import { type DType, type FloatDType, FUSED_OPS, type FusedOp, type LaunchCounters, type NativeContext, type NativeWorkspace, native, type VariantReport } from './native';
import { Tensor, type ArrayFor } from './tensor';
import {
  checkBoolean,
  checkDType,
  checkFinite,
  checkFloatDType,
  checkInteger,
  checkOneOf,
  checkOptions,
  checkScalar,
  checkSeed,
  checkShape,
  checkTypedArray,
  readObject,
} from './validate';

export interface ContextOptions {
  /** 'cpu' (default), 'cuda' or 'cuda:N'. */
  device?: string;
  /** Base seed for random tensors created without an explicit seed (default 0). */
  seed?: number;
  /**
   * Forces a fused op to one of its implementations (`ctx.variants()` lists them): its
   * reference composite, or one fast variant (which then runs where it applies, the reference
   * elsewhere). By default each call takes the fastest variant that applies.
   */
  variants?: Partial<Record<FusedOp, string>>;
  /**
   * CPU: at most this many threads for this context's element-wise loops, recurrences and BLAS
   * calls (default: ORTHORNN_NUM_THREADS, else the cores; never more than OpenBLAS's own
   * count). A context beside others that keep the cores busy (a training loop in a service)
   * does better with fewer: its threads then do not wait for each other's turn on a core.
   */
  threads?: number;
  /**
   * 'background': the context's worker thread runs only when a core is otherwise idle, and
   * gives its core up at once to any other thread that wakes (Linux's SCHED_IDLE; elsewhere
   * the context runs at normal priority). For training beside a latency-sensitive service in
   * the same process. On the CPU, with `threads: 1` all of the context's work runs on that
   * thread; its other threads (the loop pool and recurrence teams, shared between contexts)
   * keep their priority. Default 'normal'.
   */
  priority?: 'normal' | 'background';
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

/** The backend and device index of 'cpu', 'cuda' or 'cuda:N'. */
function parseDevice(fn: string, device: unknown): { backend: string; index: number } {
  const expected = "'cpu', 'cuda' or 'cuda:N'";
  if (typeof device !== 'string') throw typeError(fn, 'device', expected, device);
  const m = /^(cpu|cuda)(?::(\d{1,9}))?$/.exec(device);
  if (!m) throw rangeError(fn, 'device', expected, show(device));
  return { backend: m[1], index: m[2] === undefined ? 0 : Number(m[2]) };
}

/** Every Context this library made: the brand check that no Proxy or look-alike passes. */
const contexts = new WeakSet<object>();

/** @internal Whether `v` is a genuine Context (no Proxy trap or getter runs). */
export function isContext(v: unknown): v is Context {
  return contexts.has(v as object);
}

/**
 * A device and the ordered queue of work on it (a worker thread on the CPU, a stream on
 * CUDA). Tensors belong to one context; `dispose()` cancels work not yet started and frees
 * every tensor of the context.
 */
export class Context {
  /** @internal */
  readonly native: NativeContext;
  /** Whether the context's worker thread runs at the background priority (the `priority` option, where the system has one). */
  readonly background: boolean;
  private nextSeed: number;
  private scratch?: NativeWorkspace;

  constructor(options: ContextOptions = {}) {
    const fn = 'Context';
    const opts = checkOptions(fn, options, ['device', 'seed', 'variants', 'threads', 'priority']);
    const threads = opts.threads === undefined ? undefined : checkInteger(fn, 'threads', opts.threads, 1, 4096);
    const priority = checkOneOf(fn, 'priority', opts.priority ?? 'normal', ['normal', 'background'] as const);
    const { backend, index } = parseDevice(fn, opts.device ?? 'cpu');
    const seed = checkSeed(fn, 'seed', opts.seed ?? 0);
    const forced = opts.variants === undefined ? {} : readObject(fn, 'variants', opts.variants, `an object of variant names by op (${FUSED_OPS.join(', ')})`);
    for (const [op, variant] of Object.entries(forced)) {
      if (!(FUSED_OPS as readonly string[]).includes(op)) throw rangeError(fn, 'variants', `keys among ${FUSED_OPS.join(', ')}`, `'${op}'`);
      if (typeof variant !== 'string') throw typeError(fn, `variants.${op}`, 'a variant name', variant);
    }
    const info = native().backends().find((b) => b.name === backend);
    if (backend === 'cuda' && info && !info.available) {
      throw new DeviceError(`Context: the cuda backend is unavailable: ${info.reason ?? 'unknown reason'}`);
    }
    this.native = new (native().NativeContext)(backend, index);
    // The backend's variants are read only when some are forced: most contexts force none.
    const available = Object.keys(forced).length > 0 ? this.native.variants() : undefined;
    for (const [op, variant] of Object.entries(forced)) {
      const names = available![op as FusedOp].available;
      if (!names.includes(variant as string)) {
        this.native.dispose();
        throw rangeError(fn, `variants.${op}`, `${names.map((v) => `'${v}'`).join(', ')} (the ${backend} backend's)`, show(variant));
      }
      this.native.forceVariant(op, variant as string);
    }
    if (threads !== undefined) this.native.limitThreads(threads);
    this.background = priority === 'background' && this.native.runInBackground();
    this.nextSeed = seed;
    contexts.add(this);
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

  /** Whether this context's backend implements `op` (a name of NATIVE_OPS: native/ops.json) for `dtype`. */
  supports(op: string, dtype: DType): boolean {
    if (typeof op !== 'string') throw typeError('supports', 'op', 'a string', op);
    return this.native.supports(op, checkDType('supports', 'dtype', dtype));
  }

  /** A tensor holding a copy of `data` (row-major) with the given shape. */
  tensor<A extends Float32Array | Float64Array | Int32Array>(data: A, shape: readonly number[], options: TensorOptions = {}): Tensor<DTypeOf<A>> {
    const fn = 'tensor';
    this.assertLive(fn);
    const opts = checkOptions(fn, options, ['allowNonFinite']);
    const allowNonFinite = checkBoolean(fn, 'allowNonFinite', opts.allowNonFinite ?? false);
    const values = checkTypedArray(fn, 'data', data, ['Float32Array', 'Float64Array', 'Int32Array']);
    const dims = checkShape(fn, 'shape', shape);
    const size = dims.reduce((a, b) => a * b, 1);
    if (size !== values.length) {
      throw rangeError(fn, 'data', `${size} elements for shape [${dims.join(', ')}]`, `${values.length}`);
    }
    if (!allowNonFinite && !(values instanceof Int32Array)) checkFinite(fn, 'data', values);
    return this.wrap(this.native.fromArray(values, dims));
  }

  /** An uninitialised tensor: for outputs an op will overwrite. */
  empty<D extends DType = 'float32'>(shape: readonly number[], options: { dtype?: D } = {}): Tensor<D> {
    const fn = 'empty';
    this.assertLive(fn);
    const opts = checkOptions(fn, options, ['dtype']);
    return this.allocate<D>(fn, shape, checkDType(fn, 'dtype', opts.dtype ?? 'float32'));
  }

  full<D extends DType = 'float32'>(shape: readonly number[], value: number, options: { dtype?: D } = {}): Tensor<D> {
    return this.filled('full', shape, value, options);
  }

  zeros<D extends DType = 'float32'>(shape: readonly number[], options: { dtype?: D } = {}): Tensor<D> {
    return this.filled('zeros', shape, 0, options);
  }

  /** Normal(mean, std²) entries, seeded. */
  randn<D extends FloatDType = 'float32'>(
    shape: readonly number[],
    options: RandomOptions<D> & { mean?: number; std?: number } = {},
  ): Tensor<D> {
    const fn = 'randn';
    const opts = checkOptions(fn, options, ['dtype', 'seed', 'mean', 'std']);
    const dtype = checkFloatDType(fn, 'dtype', opts.dtype ?? 'float32');
    const mean = checkScalar(fn, 'mean', opts.mean ?? 0, dtype);
    const std = checkScalar(fn, 'std', opts.std ?? 1, dtype);
    if (std < 0) throw rangeError(fn, 'std', 'non-negative', show(std));
    const seed = this.seedFor(fn, opts.seed);
    const t = this.allocate<D>(fn, shape, dtype);
    this.native.randomNormal(t.handle, seed, mean, std);
    return t;
  }

  /** Uniform entries in (low, high), seeded. */
  rand<D extends FloatDType = 'float32'>(
    shape: readonly number[],
    options: RandomOptions<D> & { low?: number; high?: number } = {},
  ): Tensor<D> {
    const fn = 'rand';
    const opts = checkOptions(fn, options, ['dtype', 'seed', 'low', 'high']);
    const dtype = checkFloatDType(fn, 'dtype', opts.dtype ?? 'float32');
    const low = checkScalar(fn, 'low', opts.low ?? 0, dtype);
    const high = checkScalar(fn, 'high', opts.high ?? 1, dtype);
    if (!(low <= high)) throw rangeError(fn, 'high', `at least low (${low})`, show(high));
    const seed = this.seedFor(fn, opts.seed);
    const t = this.allocate<D>(fn, shape, dtype);
    this.native.randomUniform(t.handle, seed, low, high);
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

  /**
   * The fused ops' implementations on this context: for each, the variants its backend has
   * (the reference first), the one forced by the options, and the one that ran last, so that a
   * benchmark record can name the code it timed. Read without waiting for queued work.
   */
  variants(): Record<FusedOp, VariantReport> {
    this.assertLive('variants');
    return this.native.variants();
  }

  /**
   * Queues the ops `fn` queues (synchronously) as one unit, and returns what `fn` returns. They
   * run as they would have, in order, and an error names the op that failed; a read or sync
   * inside `fn` first queues what was recorded so far. On a GPU, a sequence queued again with
   * the same ops on the same tensors and numbers may be replayed as one CUDA graph (variant
   * 'graph' of 'sequence' in variants(), forced or by ORTHORNN_CUDA_STEP_GRAPHS=1): a training
   * step's updates are one such sequence. Sequences do not nest; `fn` must not be async.
   */
  sequence<T>(fn: () => T): T {
    const name = 'sequence';
    this.assertLive(name);
    if (typeof fn !== 'function') throw typeError(name, 'fn', 'a function', fn);
    this.native.beginSequence();
    let result: T;
    try {
      result = fn();
    } finally {
      if (!this.native.disposed) this.native.endSequence();
    }
    if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
      (result as unknown as Promise<unknown>).then(undefined, () => {}); // its own rejection is not this error's
      throw typeError(name, 'fn', 'a function that queues its ops synchronously (the ops after its first await were queued on their own)', result);
    }
    return result;
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
    this.scratch ??= this.native.createWorkspace();
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

  /** A new uninitialised tensor of a checked dtype, after checking the shape. */
  private allocate<D extends DType>(fn: string, shape: unknown, dtype: DType): Tensor<D> {
    this.assertLive(fn);
    return this.wrap(this.native.empty(checkShape(fn, 'shape', shape), dtype));
  }

  /** A new tensor with every element `value`. */
  private filled<D extends DType>(fn: string, shape: readonly number[], value: unknown, options: { dtype?: D } | undefined): Tensor<D> {
    this.assertLive(fn);
    const opts = checkOptions(fn, options, ['dtype']);
    const dtype = checkDType(fn, 'dtype', opts.dtype ?? 'float32');
    const v = checkScalar(fn, 'value', value, dtype);
    const t = this.allocate<D>(fn, shape, dtype);
    this.native.fill(t.handle, v);
    return t;
  }

  private seedFor(fn: string, seed: unknown): number {
    if (seed !== undefined) return checkSeed(fn, 'seed', seed);
    const s = this.nextSeed;
    this.nextSeed = (this.nextSeed + 0x9e3779b9) % Number.MAX_SAFE_INTEGER;
    return s;
  }
}

const defaults = new Map<string, Context>();

/** The shared context of a device, created on first use. */
export function defaultContext(device = 'cpu'): Context {
  parseDevice('defaultContext', device);
  let ctx = defaults.get(device);
  if (!ctx || ctx.disposed) {
    ctx = new Context({ device });
    defaults.set(device, ctx);
  }
  return ctx;
}

export type { TypedFor };
