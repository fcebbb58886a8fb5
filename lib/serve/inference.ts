/**
 * Inference on host arrays: `model.predict` (whole sequences, variable lengths, probabilities,
 * raw outputs or class ids, every step or each sequence's last) and `model.session` (a
 * stream fed a few steps at a time, its state kept on the device between calls).
 *
 * Variable lengths are exact: the sequences of a batch are grouped by length and each group
 * runs the native forward for its own number of steps, so a sequence's outputs and final
 * state are those it has alone (padding never enters its recurrence), and the work is the
 * sum of the lengths rather than T × B.
 */
import type { Context } from '../context';
import { DisposedError, rangeError, typedArrayKind, typeError, typeErrorText } from '../errors';
import type { FloatDType } from '../native';
import * as ops from '../ops';
import { isTensor, type ArrayFor, type Tensor } from '../tensor';
import { checkArray, checkBoolean, checkFinite, checkInteger, checkOneOf, checkOptions, checkShape, checkTensor, checkTypedArray, shapeStr } from '../validate';

/** What predict returns per position: softmax probabilities, the raw outputs y, or the most likely class. */
export type PredictOutput = 'probabilities' | 'raw' | 'argmax';

const OUTPUTS = ['probabilities', 'raw', 'argmax'] as const;

type FloatArray = Float32Array | Float64Array;
type HostInput = Float32Array | Float64Array;

export interface PredictOptions<D extends FloatDType = FloatDType> {
  /**
   * The dimensions [T, B, d] of a host array x (time-major: x[(t·B + b)·d + i], as tensors
   * are laid out); not given with a tensor.
   */
  shape?: readonly number[];
  /**
   * 'probabilities' (default: softmax over the k outputs, for models trained with
   * cross-entropy), 'raw' (the outputs y = W_out h + c, for MSE models), or 'argmax' (the
   * class id of the largest output, int32).
   */
  output?: PredictOutput;
  /** Only each sequence's last step (its own, with `lengths`): B rows instead of T × B. Default false. */
  last?: boolean;
  /** B lengths in [1, T]: sequence b is steps 0 … lengths[b] − 1 of x; the rest is padding. */
  lengths?: readonly number[] | Int32Array;
  /** B × n: start from these states instead of the model's h0 (a tensor of the model, or a host array). */
  initialState?: Tensor<D> | HostInput;
  /** B × n: the LSTM's initial cell state (zeros when absent). */
  initialCellState?: Tensor<D> | HostInput;
}

export interface Prediction<D extends FloatDType = FloatDType> {
  /**
   * Row-major values of `shape`: [T, B, k] ([B, k] with `last`) of the model's dtype, or
   * int32 class ids [T, B] ([B] with `last`) for 'argmax'. Steps past a sequence's length
   * are 0 (−1 for 'argmax').
   */
  values: ArrayFor<D> | Int32Array;
  shape: number[];
  /** Each sequence's length (T for all without `lengths`). */
  lengths: Int32Array;
  /** B × n: each sequence's hidden state after its own last step. */
  finalState: ArrayFor<D>;
  /** B × n: the LSTM's cell state after each sequence's last step. */
  finalCellState?: ArrayFor<D>;
}

/** What predict and sessions need of a model (ElmanRNN and LSTM provide it). */
export interface InferenceModel<D extends FloatDType> {
  readonly context: Context;
  readonly dtype: D;
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly outputSize: number;
  readonly parametersByName: Readonly<Record<string, Tensor<D>>>;
  forward(x: Tensor<D>, options?: { initialState?: Tensor<D>; initialCellState?: Tensor<D> }): { outputs: Tensor<D>; finalState: Tensor<D>; finalCellState?: Tensor<D> };
}

/** One group of equal-length sequences, time-major L × Bg × d, with optional initial states (Bg × n). */
export interface ForwardGroup<D extends FloatDType> {
  steps: number;
  count: number;
  x: ArrayFor<D>;
  h0?: ArrayFor<D>;
  c0?: ArrayFor<D>;
}

/** A group's results on the host: outputs L × Bg × k, states Bg × n. */
export interface GroupResult<D extends FloatDType> {
  outputs: ArrayFor<D>;
  finalState: ArrayFor<D>;
  finalCellState?: ArrayFor<D>;
}

/** A zeroed host array of `size` values of `dtype`. */
export function allocate<D extends FloatDType>(dtype: D, size: number): ArrayFor<D> {
  return (dtype === 'float32' ? new Float32Array(size) : new Float64Array(size)) as ArrayFor<D>;
}

/** `data` in the model's dtype (itself when it already is). */
export function inDType<D extends FloatDType>(dtype: D, data: FloatArray): ArrayFor<D> {
  if (dtype === 'float32') return (data instanceof Float32Array ? data : Float32Array.from(data)) as ArrayFor<D>;
  return (data instanceof Float64Array ? data : Float64Array.from(data)) as ArrayFor<D>;
}

/**
 * Queues one native forward per group, all before the first read, and returns every
 * group's outputs and final states. The host arrays must be finite (the caller checks).
 */
export async function forwardGroups<D extends FloatDType>(model: InferenceModel<D>, cell: boolean, groups: readonly ForwardGroup<D>[]): Promise<GroupResult<D>[]> {
  const ctx = model.context;
  const [d, n] = [model.inputSize, model.hiddenSize];
  const pending: Promise<[ArrayFor<D>, ArrayFor<D>, ArrayFor<D> | undefined]>[] = [];
  for (const g of groups) {
    const made: Tensor[] = [];
    try {
      const x = ctx.tensor(g.x, [g.steps, g.count, d], { allowNonFinite: true }) as unknown as Tensor<D>;
      made.push(x);
      const h = g.h0 && (ctx.tensor(g.h0, [g.count, n], { allowNonFinite: true }) as unknown as Tensor<D>);
      const c = g.c0 && (ctx.tensor(g.c0, [g.count, n], { allowNonFinite: true }) as unknown as Tensor<D>);
      if (h) made.push(h);
      if (c) made.push(c);
      const out = model.forward(x, cell ? { initialState: h, initialCellState: c } : h ? { initialState: h } : {});
      made.push(out.outputs, out.finalState, ...(out.finalCellState ? [out.finalCellState] : []));
      pending.push(Promise.all([out.outputs.read(), out.finalState.read(), out.finalCellState?.read()]) as never);
    } finally {
      // Queued work and reads keep their own references: the storage goes once they have run.
      for (const t of made) t.dispose();
    }
  }
  const results = await Promise.all(pending);
  return results.map(([outputs, finalState, finalCellState]) => ({ outputs, finalState, ...(finalCellState && { finalCellState }) }));
}

/**
 * Values for `rows` of a k-wide source (row indices into `source`, −1 for padding) as
 * `output` asks: the rows themselves, their softmax, or their argmax.
 */
export function emitRows<D extends FloatDType>(dtype: D, output: PredictOutput, source: ArrayLike<number>, k: number, rows: ArrayLike<number>): ArrayFor<D> | Int32Array {
  const R = rows.length;
  if (output === 'argmax') {
    const ids = new Int32Array(R);
    for (let r = 0; r < R; r++) {
      const row = rows[r];
      if (row < 0) {
        ids[r] = -1;
        continue;
      }
      const o = row * k;
      let best = 0;
      for (let j = 1; j < k; j++) if (source[o + j] > source[o + best]) best = j;
      ids[r] = best;
    }
    return ids;
  }
  const out = allocate(dtype, R * k);
  for (let r = 0; r < R; r++) {
    const row = rows[r];
    if (row < 0) continue;
    const [o, p] = [row * k, r * k];
    if (output === 'raw') {
      for (let j = 0; j < k; j++) out[p + j] = source[o + j];
      continue;
    }
    let max = -Infinity;
    for (let j = 0; j < k; j++) max = Math.max(max, source[o + j]);
    let sum = 0;
    for (let j = 0; j < k; j++) sum += Math.exp(source[o + j] - max);
    for (let j = 0; j < k; j++) out[p + j] = Math.exp(source[o + j] - max) / sum;
  }
  return out;
}

/** A host array argument of the given size, finite, in the model's dtype. */
function hostArray<D extends FloatDType>(fn: string, arg: string, v: unknown, dtype: D, size: number, what: string): ArrayFor<D> {
  const data = checkTypedArray(fn, arg, v, ['Float32Array', 'Float64Array']);
  if (data.length !== size) throw rangeError(fn, arg, `${size} values (${what})`, `${data.length}`);
  checkFinite(fn, arg, data);
  return inDType(dtype, data);
}

/** A B × n initial state given as a tensor of the model or a host array, on the host. */
async function hostState<D extends FloatDType>(fn: string, arg: string, model: InferenceModel<D>, v: unknown, B: number): Promise<ArrayFor<D> | undefined> {
  if (v === undefined) return undefined;
  const n = model.hiddenSize;
  if (!isTensor(v)) {
    if (typedArrayKind(v) === undefined) throw typeError(fn, arg, 'a Tensor, a Float32Array or a Float64Array', v);
    return hostArray(fn, arg, v, model.dtype, B * n, `B × n = ${B} × ${n}`);
  }
  checkStateTensor(fn, arg, model, v, B);
  return (await (v as Tensor<D>).read()) as ArrayFor<D>;
}

function checkStateTensor<D extends FloatDType>(fn: string, arg: string, model: InferenceModel<D>, v: unknown, B: number): Tensor<D> {
  const t = checkTensor(fn, arg, v);
  if (t.context !== model.context) throw rangeError(fn, arg, `a tensor of the model's context (${model.context.device})`, t.device);
  if (t.dtype !== model.dtype || t.shape.length !== 2 || t.shape[0] !== B || t.shape[1] !== model.hiddenSize) {
    throw rangeError(fn, arg, `a ${model.dtype} tensor of shape [${B}, ${model.hiddenSize}]`, `${t.dtype} ${shapeStr(t.shape)}`);
  }
  return t as Tensor<D>;
}

/** B lengths in [1, T]. */
export function checkLengths(fn: string, arg: string, v: unknown, B: number, T: number): Int32Array {
  let values: ArrayLike<unknown>;
  if (typedArrayKind(v) === 'Int32Array') values = v as Int32Array;
  else if (Array.isArray(v)) values = checkArray(fn, arg, v, 'an array of lengths or an Int32Array');
  else throw typeError(fn, arg, 'an array of lengths or an Int32Array', v);
  if (values.length !== B) throw rangeError(fn, arg, `${B} lengths (one per sequence)`, `${values.length}`);
  const out = new Int32Array(B);
  for (let b = 0; b < B; b++) out[b] = checkInteger(fn, `${arg}[${b}]`, values[b], 1, T);
  return out;
}

const PREDICT_KEYS = ['shape', 'output', 'last', 'lengths', 'initialState', 'initialCellState'];

/**
 * model.predict: see PredictOptions and Prediction. A tensor x of full-length sequences runs
 * as one forward on the device; host arrays and variable lengths run one forward per length.
 */
export async function predict<D extends FloatDType>(model: InferenceModel<D>, cell: boolean, x: unknown, options: PredictOptions<D> | undefined): Promise<Prediction<D>> {
  const fn = 'predict';
  const opts = checkOptions(fn, options, PREDICT_KEYS);
  const output = checkOneOf(fn, 'options.output', opts.output ?? 'probabilities', OUTPUTS);
  const last = checkBoolean(fn, 'options.last', opts.last ?? false);
  if (!cell && opts.initialCellState !== undefined) throw rangeError(fn, 'options.initialCellState', 'given only to an LSTM', 'a cell state for a model without one');
  const [d, k] = [model.inputSize, model.outputSize];
  let T: number, B: number;
  let tensor: Tensor<D> | undefined;
  let host: ArrayFor<D> | undefined;
  if (isTensor(x)) {
    checkTensor(fn, 'x', x);
    if (opts.shape !== undefined) throw rangeError(fn, 'options.shape', 'omitted for a tensor (it has its shape)', shapeStr(checkShape(fn, 'options.shape', opts.shape)));
    if (x.context !== model.context) throw rangeError(fn, 'x', `a tensor of the model's context (${model.context.device})`, x.device);
    if (x.dtype !== model.dtype) throw typeErrorText(fn, 'x', `a ${model.dtype} tensor`, `${x.dtype} tensor`);
    if (x.shape.length !== 3 || x.shape[2] !== d || x.shape[0] < 1 || x.shape[1] < 1) throw rangeError(fn, 'x', `T × B × ${d}`, shapeStr(x.shape));
    [T, B] = x.shape;
    tensor = x as Tensor<D>;
  } else {
    if (typedArrayKind(x) !== 'Float32Array' && typedArrayKind(x) !== 'Float64Array') throw typeError(fn, 'x', 'a Tensor, a Float32Array or a Float64Array', x);
    if (opts.shape === undefined) throw rangeError(fn, 'options.shape', '[T, B, d] for a host array x', 'undefined');
    const shape = checkShape(fn, 'options.shape', opts.shape);
    if (shape.length !== 3 || shape[2] !== d || shape[0] < 1 || shape[1] < 1) throw rangeError(fn, 'options.shape', `[T, B, ${d}] with T, B ≥ 1`, shapeStr(shape));
    [T, B] = shape;
    host = hostArray(fn, 'x', x, model.dtype, T * B * d, `T × B × d = ${shapeStr(shape)}`);
  }
  const lengths = opts.lengths === undefined ? new Int32Array(B).fill(T) : checkLengths(fn, 'options.lengths', opts.lengths, B, T);
  const full = lengths.every((L) => L === T);

  let outputs: ArrayFor<D>, finalState: ArrayFor<D>, finalCellState: ArrayFor<D> | undefined;
  const onDevice = (v: unknown) => v === undefined || isTensor(v);
  if (tensor && full && onDevice(opts.initialState) && onDevice(opts.initialCellState)) {
    // Everything is on the device already: one forward, no copies.
    const h = opts.initialState === undefined ? undefined : checkStateTensor(fn, 'options.initialState', model, opts.initialState, B);
    const c = opts.initialCellState === undefined ? undefined : checkStateTensor(fn, 'options.initialCellState', model, opts.initialCellState, B);
    const out = model.forward(tensor, cell ? { initialState: h, initialCellState: c } : h ? { initialState: h } : {});
    try {
      [outputs, finalState, finalCellState] = (await Promise.all([out.outputs.read(), out.finalState.read(), out.finalCellState?.read()])) as [ArrayFor<D>, ArrayFor<D>, ArrayFor<D> | undefined];
    } finally {
      out.outputs.dispose();
      out.finalState.dispose();
      out.finalCellState?.dispose();
    }
  } else {
    const h0 = await hostState(fn, 'options.initialState', model, opts.initialState, B);
    const c0 = await hostState(fn, 'options.initialCellState', model, opts.initialCellState, B);
    if (!host) {
      host = (await tensor!.read()) as ArrayFor<D>;
      checkFinite(fn, 'x', host);
    }
    ({ outputs, finalState, finalCellState } = await forwardPadded(model, cell, host, T, B, lengths, h0, c0));
  }
  const rows = new Int32Array(last ? B : T * B);
  if (last) for (let b = 0; b < B; b++) rows[b] = (lengths[b] - 1) * B + b;
  else for (let t = 0; t < T; t++) for (let b = 0; b < B; b++) rows[t * B + b] = t < lengths[b] ? t * B + b : -1;
  const values = emitRows(model.dtype, output, outputs, k, rows);
  const shape = last ? [B] : [T, B];
  if (output !== 'argmax') shape.push(k);
  return { values, shape, lengths, finalState, ...(finalCellState && { finalCellState }) };
}

/**
 * A padded batch (T × B × d, time-major) run as one forward per distinct length; returns the
 * outputs scattered back to T × B × k (zeros past each length) and the states (B × n).
 */
async function forwardPadded<D extends FloatDType>(
  model: InferenceModel<D>, cell: boolean, X: ArrayFor<D>, T: number, B: number, lengths: Int32Array, h0?: ArrayFor<D>, c0?: ArrayFor<D>,
): Promise<{ outputs: ArrayFor<D>; finalState: ArrayFor<D>; finalCellState?: ArrayFor<D> }> {
  const [d, n, k] = [model.inputSize, model.hiddenSize, model.outputSize];
  const byLength = new Map<number, number[]>();
  for (let b = 0; b < B; b++) {
    const list = byLength.get(lengths[b]);
    if (list) list.push(b);
    else byLength.set(lengths[b], [b]);
  }
  const members = [...byLength.entries()];
  const groups: ForwardGroup<D>[] = members.map(([L, bs]) => {
    if (L === T && bs.length === B) return { steps: T, count: B, x: X, h0, c0 };
    const G = bs.length;
    const x = allocate(model.dtype, L * G * d);
    for (let t = 0; t < L; t++) for (let j = 0; j < G; j++) x.set(X.subarray((t * B + bs[j]) * d, (t * B + bs[j] + 1) * d), (t * G + j) * d);
    return { steps: L, count: G, x, h0: h0 && gatherRows(model.dtype, h0, bs, n), c0: c0 && gatherRows(model.dtype, c0, bs, n) };
  });
  const results = await forwardGroups(model, cell, groups);
  if (members.length === 1 && members[0][0] === T) return results[0];
  const outputs = allocate(model.dtype, T * B * k);
  const finalState = allocate(model.dtype, B * n);
  const finalCellState = cell ? allocate(model.dtype, B * n) : undefined;
  members.forEach(([L, bs], i) => {
    const r = results[i];
    const G = bs.length;
    for (let j = 0; j < G; j++) {
      const b = bs[j];
      for (let t = 0; t < L; t++) outputs.set(r.outputs.subarray((t * G + j) * k, (t * G + j + 1) * k), (t * B + b) * k);
      finalState.set(r.finalState.subarray(j * n, (j + 1) * n), b * n);
      if (finalCellState && r.finalCellState) finalCellState.set(r.finalCellState.subarray(j * n, (j + 1) * n), b * n);
    }
  });
  return { outputs, finalState, finalCellState };
}

function gatherRows<D extends FloatDType>(dtype: D, source: ArrayFor<D>, rows: readonly number[], n: number): ArrayFor<D> {
  const out = allocate(dtype, rows.length * n);
  rows.forEach((b, j) => out.set(source.subarray(b * n, (b + 1) * n), j * n));
  return out;
}

export interface SessionOptions {
  /** The number of streams B, fed side by side. */
  batchSize: number;
  /** What step() returns (default 'probabilities'; see PredictOptions.output). */
  output?: PredictOutput;
}

export interface SessionStep<D extends FloatDType = FloatDType> {
  /** [S, B, k] for S steps fed ([S, B] class ids for 'argmax'), row-major. */
  values: ArrayFor<D> | Int32Array;
  shape: number[];
}

/**
 * B streams fed a few steps at a time: each step() continues from the state the previous
 * one left, as if the steps had come in one sequence. The state stays on the model's
 * device; step() calls may be issued without awaiting each other (they run in order).
 */
export class InferenceSession<D extends FloatDType = FloatDType> {
  readonly batchSize: number;
  readonly output: PredictOutput;
  /** Steps fed since creation or the last reset(). */
  steps = 0;
  private h?: Tensor<D>;
  private c?: Tensor<D>;
  private disposed = false;

  /** @internal use model.session(options). */
  constructor(
    private readonly model: InferenceModel<D>,
    private readonly cell: boolean,
    options: SessionOptions,
  ) {
    const fn = 'session';
    if (options === undefined) throw typeError(fn, 'options', 'an object with batchSize', options);
    const opts = checkOptions(fn, options, ['batchSize', 'output']);
    this.batchSize = checkInteger(fn, 'options.batchSize', opts.batchSize, 1);
    this.output = checkOneOf(fn, 'options.output', opts.output ?? 'probabilities', OUTPUTS);
  }

  private assertLive(fn: string): void {
    if (this.disposed) throw new DisposedError(`${fn}: the session has been disposed`);
  }

  /**
   * Feeds S steps of every stream: x is S × B × d, time-major (a tensor of the model, or a
   * host array whose length gives S). Returns the outputs of those steps.
   */
  async step(x: Tensor<D> | HostInput): Promise<SessionStep<D>> {
    const fn = 'session.step';
    this.assertLive(fn);
    const { model } = this;
    const [B, d, k] = [this.batchSize, model.inputSize, model.outputSize];
    let input: Tensor<D>;
    let owned = false;
    if (isTensor(x)) {
      checkTensor(fn, 'x', x);
      if (x.context !== model.context) throw rangeError(fn, 'x', `a tensor of the model's context (${model.context.device})`, x.device);
      if (x.dtype !== model.dtype) throw typeErrorText(fn, 'x', `a ${model.dtype} tensor`, `${x.dtype} tensor`);
      if (x.shape.length !== 3 || x.shape[0] < 1 || x.shape[1] !== B || x.shape[2] !== d) throw rangeError(fn, 'x', `S × ${B} × ${d}`, shapeStr(x.shape));
      input = x as Tensor<D>;
    } else {
      const data = checkTypedArray(fn, 'x', x, ['Float32Array', 'Float64Array']);
      if (data.length === 0 || data.length % (B * d) !== 0) throw rangeError(fn, 'x', `S × B × d values with S ≥ 1 (a multiple of ${B * d})`, `${data.length}`);
      checkFinite(fn, 'x', data);
      input = model.context.tensor(inDType(model.dtype, data), [data.length / (B * d), B, d], { allowNonFinite: true }) as unknown as Tensor<D>;
      owned = true;
    }
    const S = input.shape[0];
    let out;
    try {
      out = model.forward(input, this.cell ? { initialState: this.h, initialCellState: this.c } : this.h ? { initialState: this.h } : {});
    } finally {
      if (owned) input.dispose();
    }
    // The next step, even one issued before this one's outputs are read, starts from here.
    this.h?.dispose();
    this.c?.dispose();
    this.h = out.finalState;
    this.c = out.finalCellState;
    this.steps += S;
    const y = out.outputs.read();
    out.outputs.dispose();
    const outputs = (await y) as ArrayFor<D>;
    const rows = new Int32Array(S * B);
    for (let r = 0; r < rows.length; r++) rows[r] = r;
    const shape = this.output === 'argmax' ? [S, B] : [S, B, k];
    return { values: emitRows(model.dtype, this.output, outputs, k, rows), shape };
  }

  /** The streams' current hidden state (B × n; with an LSTM, the cell state too), read from the device. */
  async state(): Promise<{ hidden: ArrayFor<D>; cell?: ArrayFor<D> }> {
    const fn = 'session.state';
    this.assertLive(fn);
    const [h, c] = this.current();
    try {
      const [hidden, cellState] = await Promise.all([h.read(), c?.read()]);
      return { hidden: hidden as ArrayFor<D>, ...(cellState && { cell: cellState as ArrayFor<D> }) };
    } finally {
      if (!this.h) h.dispose();
      if (!this.c) c?.dispose();
    }
  }

  /** The state tensors, or the model's initial state (h0, zeros) before the first step. */
  private current(): [Tensor<D>, Tensor<D> | undefined] {
    const { model } = this;
    const shape = [this.batchSize, model.hiddenSize];
    const h = this.h ?? this.initialHidden();
    const c = this.cell ? (this.c ?? model.context.zeros<D>(shape, { dtype: model.dtype })) : undefined;
    return [h, c];
  }

  /** B × n copies of the model's h0 (learned, or zeros). */
  private initialHidden(): Tensor<D> {
    const { model } = this;
    const zeros = model.context.zeros<D>([this.batchSize, model.hiddenSize], { dtype: model.dtype });
    const h0 = model.parametersByName.h0;
    if (!h0) return zeros;
    const h = ops.biasActivation(zeros, h0, 'identity');
    zeros.dispose();
    return h;
  }

  /**
   * Starts streams over from the model's initial state: all of them, or those whose indices
   * `streams` lists (the others keep their state).
   */
  reset(streams?: readonly number[]): void {
    const fn = 'session.reset';
    this.assertLive(fn);
    if (streams === undefined) {
      this.h?.dispose();
      this.c?.dispose();
      this.h = this.c = undefined;
      this.steps = 0;
      return;
    }
    const list = checkArray(fn, 'streams', streams, 'an array of stream indices');
    const B = this.batchSize;
    const n = this.model.hiddenSize;
    const indices = list.map((v, i) => checkInteger(fn, `streams[${i}]`, v, 0, B - 1));
    if (!this.h) return; // every stream is at its initial state already
    const keep = allocate(this.model.dtype, B * n).fill(1);
    for (const b of indices) keep.fill(0, b * n, (b + 1) * n);
    const ctx = this.model.context;
    const keepT = ctx.tensor(keep, [B, n]) as unknown as Tensor<D>;
    // h ← keep ⊙ h + (h0 − keep ⊙ h0): the listed rows take h0's values; c ← keep ⊙ c.
    const h0 = this.initialHidden();
    const kept = ops.mul(this.h, keepT);
    const keptH0 = ops.mul(h0, keepT);
    const initialRows = ops.sub(h0, keptH0);
    ops.add(kept, initialRows, { out: this.h });
    for (const t of [h0, kept, keptH0, initialRows]) t.dispose();
    if (this.c) ops.mul(this.c, keepT, { out: this.c });
    keepT.dispose();
  }

  /** Frees the state; step() afterwards is a DisposedError. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.h?.dispose();
    this.c?.dispose();
    this.h = this.c = undefined;
  }
}
