/**
 * A predictor for services: its own context and its own copy of a model's weights, so that
 * requests never queue behind training work on the training model's context; concurrent
 * requests coalesced into batches (one native forward per batch and sequence length); a
 * bounded queue; weights refreshed from the training model on request or every N steps, or
 * pushed by a training run on another thread (a WeightsFeed: orthornn/train's trainInBackground).
 */
import { Context } from '../context';
import { DisposedError, OrthornnError, rangeError, typedArrayKind, typeError } from '../errors';
import { ElmanRNN } from '../models/elman';
import { architectureOf, modelOf, type ModelArchitecture } from '../models/files';
import { LSTM } from '../models/lstm';
import type { StateDict } from '../models/parameters';
import type { FloatDType } from '../native';
import type { ArrayFor, Tensor } from '../tensor';
import { checkArray, checkBoolean, checkCoefficient, checkFinite, checkInteger, checkOneOf, checkOptions, checkTypedArray } from '../validate';
import { allocate, emitRows, forwardGroups, type ForwardGroup, type PredictOutput } from './inference';

type Model = ElmanRNN<FloatDType> | LSTM<FloatDType>;

/**
 * The queue of pending requests is full (`maxQueue`): the request was refused without being
 * queued. A service answers it with 503 and the client retries later. Its code is
 * ERR_ORTHORNN_OUT_OF_MEMORY: the predictor is out of room for more work.
 */
export class OverloadError extends OrthornnError {
  constructor(message: string) {
    super(message, 'ERR_ORTHORNN_OUT_OF_MEMORY');
  }
}

/** A training run whose weights a predictor follows: a Trainer, or anything with its `model` and `step`. */
export interface TrainingSource {
  readonly model: Model;
  /** Steps taken so far. */
  readonly step: number;
}

/**
 * Weights that arrive from elsewhere, e.g. a training run on a worker thread posting its
 * weights (orthornn/train's `trainInBackground` returns one). The predictor builds the model
 * from `architecture` once `ready` settles, serves `weights`, and loads each posted set.
 */
export interface WeightsFeed {
  /** Settles once `architecture` and the first `weights` are there (rejects if they never come). */
  readonly ready: PromiseLike<unknown>;
  readonly architecture: ModelArchitecture;
  /** The device the predictor takes by default. */
  readonly device: string;
  /** The latest weights and the step they are from. */
  readonly weights: { state: StateDict; step: number } | undefined;
  /** Calls `listener` with each new set of weights; returns the function that stops it. */
  subscribe(listener: (state: StateDict, step: number) => void): () => void;
}

function isFeed(v: unknown): v is WeightsFeed {
  const f = v as WeightsFeed;
  return typeof f === 'object' && f !== null && typeof f.subscribe === 'function' && typeof (f.ready as Promise<unknown> | undefined)?.then === 'function';
}

export interface PredictorOptions {
  /** Most sequences in one batch (default 256). */
  maxBatch?: number;
  /**
   * How long the first request of a batch may wait for others while no batch is running, in
   * milliseconds (default 1). Under load, batches form while the previous one runs.
   */
  maxWaitMs?: number;
  /** Most requests waiting for a batch; more are refused with an OverloadError (default 10,000). */
  maxQueue?: number;
  /** Batches queued on the predictor's context at once (default 2: one runs while the next is prepared). */
  maxInFlight?: number;
  /**
   * With a training source: copy its weights when it has taken this many steps since the
   * last copy (checked as batches start and every 50 ms; the copy holds up neither the
   * batches nor the training loop). Default 0: only on refresh().
   */
  refreshEvery?: number;
  /** The predictor's device (default the model's). */
  device?: string;
  /**
   * CPU threads for the predictor's context (default 1: serving batches are small, and the
   * other cores stay with the training context and the event loops).
   */
  threads?: number;
}

export interface SequencePredictOptions {
  /** 'probabilities' (default), 'raw' or 'argmax': see PredictOptions.output. */
  output?: PredictOutput;
  /** Only the last step (default false). */
  last?: boolean;
}

/** One sequence's prediction: model.predict's values for that sequence alone, without the batch axis. */
export interface SequencePrediction<D extends FloatDType = FloatDType> {
  /** [L, k] ([k] with `last`) of the model's dtype, or int32 class ids [L] ([] with `last`) for 'argmax'. */
  values: ArrayFor<D> | Int32Array;
  shape: number[];
  /** The hidden state after the last step (n values: a view into the batch's final states, this request's own rows). */
  finalState: ArrayFor<D>;
  /** The LSTM's cell state after the last step (a view likewise). */
  finalCellState?: ArrayFor<D>;
  /** The training step of the weights that computed it (null when the source is a plain model). */
  weightsStep: number | null;
}

export interface PredictorStats {
  /** Requests answered (resolved or rejected by a failed batch). */
  requests: number;
  /** Batches run, and native forward calls (one per batch and distinct length). */
  batches: number;
  forwardCalls: number;
  /** The largest batch so far, in sequences. */
  largestBatch: number;
  /** Requests refused with an OverloadError. */
  refused: number;
  /** Requests waiting for a batch now. */
  queued: number;
  /** Weight copies taken, and the training step of the latest (null for a plain model). */
  refreshes: number;
  weightsStep: number | null;
  /** The latest failed automatic refresh (the predictor keeps its previous weights). */
  refreshError?: Error;
}

interface Request<D extends FloatDType> {
  x: ArrayFor<D>;
  steps: number;
  output: PredictOutput;
  last: boolean;
  resolve(p: SequencePrediction<D>): void;
  reject(e: unknown): void;
}

/**
 * The requests' sequences (each L × d) time-major into `x`: step t of request j at (t·G + j)·d.
 * Element by element (a subarray per row, L·G of them, cost more than the copying).
 */
function timeMajor(x: Float32Array | Float64Array, requests: readonly { x: Float32Array | Float64Array }[], L: number, d: number): void {
  const G = requests.length;
  let to = 0;
  for (let t = 0; t < L; t++) {
    const from = t * d;
    for (let j = 0; j < G; j++) {
      const src = requests[j].x;
      for (let i = 0; i < d; i++) x[to++] = src[from + i];
    }
  }
}

/** The size of the slabs requests' sequences are copied into (see Predictor.stage). */
const SLAB_BYTES = 1 << 20;

/** Answers resolved in one turn of the event loop when a batch ends (see Predictor.run). */
const RESOLVE_SLICE = 32;

const PREDICTOR_KEYS = ['maxBatch', 'maxWaitMs', 'maxQueue', 'maxInFlight', 'refreshEvery', 'device', 'threads'];

function isModel(v: unknown): v is Model {
  return v instanceof ElmanRNN || v instanceof LSTM;
}

/** A model of the same architecture on `context` (initialised, then overwritten by a refresh). */
/**
 * A predictor serving `source`'s weights from its own context: an ElmanRNN or LSTM; a training
 * run on this thread (a Trainer, or `{ model, step }`), copied on refresh() or every
 * `refreshEvery` steps; or a WeightsFeed (a run on a worker thread: trainInBackground), whose
 * posted weights it loads as they come. Resolves once the first copy is in place.
 */
export async function createPredictor<D extends FloatDType = FloatDType>(source: Model | TrainingSource | WeightsFeed, options: PredictorOptions = {}): Promise<Predictor<D>> {
  const fn = 'createPredictor';
  const expected = 'an ElmanRNN, an LSTM, a training run (a Trainer, or { model, step }) or a WeightsFeed (trainInBackground)';
  const feed = isFeed(source) ? source : undefined;
  let model: unknown;
  try {
    model = isModel(source) ? source : feed ? undefined : (source as TrainingSource)?.model;
  } catch {
    model = undefined;
  }
  if (!feed && !isModel(model)) throw typeError(fn, 'source', expected, source);
  const training = !feed && !isModel(source);
  const opts = checkOptions(fn, options, PREDICTOR_KEYS);
  const settings = {
    maxBatch: checkInteger(fn, 'options.maxBatch', opts.maxBatch ?? 256, 1),
    maxWaitMs: checkCoefficient(fn, 'options.maxWaitMs', opts.maxWaitMs ?? 1, { max: 60_000 }),
    maxQueue: checkInteger(fn, 'options.maxQueue', opts.maxQueue ?? 10_000, 1),
    maxInFlight: checkInteger(fn, 'options.maxInFlight', opts.maxInFlight ?? 2, 1, 64),
    refreshEvery: checkInteger(fn, 'options.refreshEvery', opts.refreshEvery ?? 0),
    threads: checkInteger(fn, 'options.threads', opts.threads ?? 1, 1, 4096),
  };
  if (settings.refreshEvery > 0 && !training) {
    throw rangeError(fn, 'options.refreshEvery', `given only with a training source on this thread (a Trainer, or { model, step })${feed ? ': a WeightsFeed pushes its weights' : ''}`, String(settings.refreshEvery));
  }
  if (feed) await feed.ready;
  const architecture = feed ? feed.architecture : architectureOf(model as Model);
  const context = new Context({ device: opts.device ?? (feed ? feed.device : (model as Model).context.device), threads: settings.threads });
  let copy: Model | undefined;
  try {
    copy = await modelOf(architecture, { context });
    const predictor = new Predictor<D>(feed ?? (source as Model | TrainingSource), feed ? undefined : (model as Model), copy as never, context, settings);
    await predictor.refresh();
    return predictor;
  } catch (err) {
    copy?.dispose();
    context.dispose();
    throw err;
  }
}

export class Predictor<D extends FloatDType = FloatDType> {
  /** The predictor's own context (disposed by close()). */
  readonly context: Context;
  readonly maxBatch: number;
  readonly maxWaitMs: number;
  readonly maxQueue: number;
  readonly maxInFlight: number;
  readonly refreshEvery: number;
  private readonly queue: Request<D>[] = [];
  private inFlight = 0;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private closing?: Promise<void>;
  private idle?: () => void;
  private refreshing?: Promise<void>;
  private readonly watch?: NodeJS.Timeout;
  private readonly counts = { requests: 0, batches: 0, forwardCalls: 0, largestBatch: 0, refused: 0, refreshes: 0 };
  private weightsStep: number | null = null;
  private refreshError?: Error;
  /** Where requests' sequences are copied (see stage()). */
  private slab?: ArrayFor<D>;
  private slabUsed = 0;
  /** With a WeightsFeed: stops its calls. */
  private readonly unsubscribe?: () => void;

  /** @internal use createPredictor. */
  constructor(
    private readonly source: Model | TrainingSource | WeightsFeed,
    private readonly trainingModel: Model | undefined,
    private readonly model: ElmanRNN<D> | LSTM<D>,
    context: Context,
    settings: { maxBatch: number; maxWaitMs: number; maxQueue: number; maxInFlight: number; refreshEvery: number },
  ) {
    this.context = context;
    ({ maxBatch: this.maxBatch, maxWaitMs: this.maxWaitMs, maxQueue: this.maxQueue, maxInFlight: this.maxInFlight, refreshEvery: this.refreshEvery } = settings);
    if (this.refreshEvery > 0) {
      // Also while no requests come: the first request after a quiet spell gets recent weights.
      this.watch = setInterval(() => this.maybeRefresh(), 50);
      this.watch.unref();
    }
    if (isFeed(source)) {
      this.unsubscribe = source.subscribe((state, step) => {
        try {
          this.load(state, step);
          this.refreshError = undefined;
        } catch (err) {
          this.refreshError = err as Error; // the weights served stay as they were (stats.refreshError)
        }
      });
    }
  }

  get inputSize(): number {
    return this.model.inputSize;
  }
  get outputSize(): number {
    return this.model.outputSize;
  }
  get dtype(): D {
    return this.model.dtype;
  }

  /**
   * Copies the source's current weights. Every parameter's read is queued on the training
   * context at once, so the copy is one consistent state between two of its queued ops, and
   * the training loop waits at most for those reads. Batches queued after the copy use it.
   * A refresh requested while one runs shares it. With a WeightsFeed: loads its latest weights
   * (which the predictor also loads as they are posted).
   */
  refresh(): Promise<void> {
    if (this.closed) return Promise.reject(new DisposedError('refresh: the predictor has been closed'));
    this.refreshing ??= this.copyWeights().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /**
   * Loads weights given by value (a StateDict: parameter name → Float32Array or Float64Array,
   * e.g. the `model.state()` a training worker thread posted): the batches queued from now on
   * use them, and `step` (when given) is the `weightsStep` they answer with. Unknown or missing
   * names and wrong sizes are RangeErrors that leave the weights as they were.
   */
  setWeights(state: StateDict, step?: number): void {
    const fn = 'predictor.setWeights';
    if (this.closed) throw new DisposedError(`${fn}: the predictor has been closed`);
    this.load(state, step === undefined ? null : checkInteger(fn, 'step', step, 0));
  }

  /** Loads `state` into the served copy: the batches queued from now on use it. */
  private load(state: StateDict, step: number | null): void {
    this.model.loadState(state);
    this.counts.refreshes++;
    this.weightsStep = step;
  }

  private async copyWeights(): Promise<void> {
    if (isFeed(this.source)) {
      const latest = this.source.weights;
      if (latest) this.load(latest.state, latest.step);
      return;
    }
    const step = isModel(this.source) ? null : this.source.step;
    const entries = Object.entries(this.trainingModel!.parameters as Record<string, Tensor<FloatDType>>);
    const values = await Promise.all(entries.map(([, t]) => t.read()));
    if (this.closed) return;
    const state: StateDict = {};
    entries.forEach(([name], i) => (state[name] = values[i] as Float32Array | Float64Array));
    this.load(state, step);
  }

  /** Counters for monitoring (and for tests: batches and forward calls show the coalescing). */
  get stats(): PredictorStats {
    return { ...this.counts, queued: this.queue.length, weightsStep: this.weightsStep, ...(this.refreshError && { refreshError: this.refreshError }) };
  }

  /**
   * Predicts one sequence: `x` is L × d, a Float32Array or Float64Array (row-major: step, then
   * feature) or an array of L arrays of d numbers. Requests arriving together run as one
   * batch. Rejects with an OverloadError when maxQueue requests are waiting, and with a
   * DisposedError once the predictor is closed.
   */
  predict(x: Float32Array | Float64Array | readonly (readonly number[])[], options?: SequencePredictOptions): Promise<SequencePrediction<D>> {
    const fn = 'predictor.predict';
    try {
      if (this.closed) throw new DisposedError(`${fn}: the predictor has been closed`);
      const opts = checkOptions(fn, options, ['output', 'last']);
      const output = checkOneOf(fn, 'options.output', opts.output ?? 'probabilities', ['probabilities', 'raw', 'argmax'] as const);
      const last = checkBoolean(fn, 'options.last', opts.last ?? false);
      const { data, steps } = this.sequence(fn, x);
      if (this.queue.length >= this.maxQueue) {
        this.counts.refused++;
        throw new OverloadError(`${fn}: ${this.queue.length} requests are waiting already (maxQueue ${this.maxQueue}); try again later`);
      }
      return new Promise((resolve, reject) => {
        this.queue.push({ x: data, steps, output, last, resolve, reject });
        this.schedule();
      });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Room for `length` values of the model's dtype: a view into the current slab (SLAB_BYTES,
   * bump-allocated; a new slab when it is full), or an array of its own for a long sequence.
   * One allocation per slab instead of per request: a fresh off-heap array per request cost
   * the server's thread more than the copying (allocation, then its sweeping).
   */
  private stage(length: number): ArrayFor<D> {
    const { dtype } = this.model;
    const bytes = dtype === 'float32' ? 4 : 8;
    if (length * bytes > SLAB_BYTES / 8) return allocate(dtype, length);
    if (!this.slab || this.slabUsed + length > this.slab.length) {
      this.slab = allocate(dtype, SLAB_BYTES / bytes);
      this.slabUsed = 0;
    }
    const view = this.slab.subarray(this.slabUsed, this.slabUsed + length) as ArrayFor<D>;
    this.slabUsed += length;
    return view;
  }

  /** The sequence as L × d values of the model's dtype, checked. */
  private sequence(fn: string, x: unknown): { data: ArrayFor<D>; steps: number } {
    const d = this.model.inputSize;
    let data: ArrayFor<D>;
    if (typedArrayKind(x) !== undefined) {
      const values = checkTypedArray(fn, 'x', x, ['Float32Array', 'Float64Array']);
      if (values.length === 0 || values.length % d !== 0) throw rangeError(fn, 'x', `L × d values with L ≥ 1 (a multiple of d = ${d})`, `${values.length}`);
      checkFinite(fn, 'x', values);
      // A copy (the caller may reuse its array before the batch runs), in the model's dtype.
      data = this.stage(values.length);
      data.set(values);
      if (data.constructor !== values.constructor) {
        const i = data.findIndex((v) => !Number.isFinite(v));
        if (i >= 0) throw rangeError(fn, 'x', "values a float32 can hold (the model's dtype; |v| < 3.4e38)", `${values[i]} at index ${i}`);
      }
    } else {
      const rows = checkArray(fn, 'x', x, 'a Float32Array, a Float64Array or an array of steps');
      if (rows.length === 0) throw rangeError(fn, 'x', 'at least one step', 'an empty array');
      data = this.stage(rows.length * d);
      rows.forEach((row, t) => {
        const values = checkArray(fn, `x[${t}]`, row, `an array of ${d} numbers`);
        if (values.length !== d) throw rangeError(fn, `x[${t}]`, `${d} numbers (the input size)`, `${values.length}`);
        values.forEach((v, i) => {
          if (typeof v !== 'number') throw typeError(fn, `x[${t}][${i}]`, 'a number', v);
          data[t * d + i] = v;
        });
      });
      checkFinite(fn, 'x', data);
    }
    return { data, steps: data.length / d };
  }

  /**
   * Starts a batch when one is due: a full batch at once; after a batch, whatever waits (it
   * queued while that batch ran); otherwise, with nothing running, after maxWaitMs.
   */
  private schedule(afterBatch = false): void {
    if (this.closed || this.queue.length === 0 || this.inFlight >= this.maxInFlight) return;
    if (this.queue.length >= this.maxBatch || afterBatch || this.maxWaitMs === 0) {
      this.dispatch();
      return;
    }
    if (this.inFlight > 0) return; // the running batch's end starts the next
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      if (this.inFlight < this.maxInFlight) this.dispatch();
    }, this.maxWaitMs);
  }

  private dispatch(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const batch = this.queue.splice(0, this.maxBatch);
    if (batch.length === 0) return;
    this.inFlight++;
    this.counts.batches++;
    this.counts.largestBatch = Math.max(this.counts.largestBatch, batch.length);
    this.maybeRefresh();
    this.run(batch).finally(() => {
      this.inFlight--;
      if (this.inFlight === 0) this.idle?.();
      this.schedule(true);
    });
  }

  /** With refreshEvery: a copy when the training run is far enough ahead (not awaited). */
  private maybeRefresh(): void {
    if (this.refreshEvery === 0 || this.refreshing || this.closed || isModel(this.source) || isFeed(this.source)) return;
    let step: number;
    try {
      step = this.source.step;
    } catch {
      return;
    }
    if (step - (this.weightsStep ?? 0) < this.refreshEvery) return;
    this.refresh().then(
      () => (this.refreshError = undefined),
      (err: Error) => (this.refreshError = err),
    );
  }

  /** One batch: one forward per distinct length, then each request's rows. */
  private async run(batch: Request<D>[]): Promise<void> {
    const model = this.model;
    const [d, n, k] = [model.inputSize, model.hiddenSize, model.outputSize];
    const byLength = new Map<number, Request<D>[]>();
    for (const r of batch) {
      const list = byLength.get(r.steps);
      if (list) list.push(r);
      else byLength.set(r.steps, [r]);
    }
    const members = [...byLength.values()];
    const groups: ForwardGroup<D>[] = members.map((reqs) => {
      const [L, G] = [reqs[0].steps, reqs.length];
      let x: ArrayFor<D>;
      if (G === 1) x = reqs[0].x;
      else {
        x = allocate(model.dtype, L * G * d);
        timeMajor(x, reqs, L, d);
      }
      return { steps: L, count: G, x };
    });
    this.counts.forwardCalls += groups.length;
    // The forwards are queued before the first await below: these are the weights they use.
    const weightsStep = this.weightsStep;
    let results;
    try {
      results = await forwardGroups(model, model instanceof LSTM, groups);
    } catch (err) {
      for (const r of batch) r.reject(err);
      this.counts.requests += batch.length;
      return;
    }
    // The answers go out RESOLVE_SLICE at a time, a turn of the event loop between slices, so
    // that the callers' continuations (writing responses) for a large batch do not hold the
    // loop for all of it at once.
    let answered = 0;
    for (const [g, reqs] of members.entries()) {
      const { outputs, finalState, finalCellState } = results[g];
      const [L, G] = [reqs[0].steps, reqs.length];
      for (const [j, r] of reqs.entries()) {
        if (answered > 0 && answered % RESOLVE_SLICE === 0) await new Promise<void>((resolve) => setImmediate(resolve));
        answered++;
        const rows = new Int32Array(r.last ? 1 : L);
        if (r.last) rows[0] = (L - 1) * G + j;
        else for (let t = 0; t < L; t++) rows[t] = t * G + j;
        const shape = r.last ? [] : [L];
        if (r.output !== 'argmax') shape.push(k);
        r.resolve({
          values: emitRows(model.dtype, r.output, outputs, k, rows),
          shape,
          finalState: finalState.subarray(j * n, (j + 1) * n) as ArrayFor<D>,
          ...(finalCellState && { finalCellState: finalCellState.subarray(j * n, (j + 1) * n) as ArrayFor<D> }),
          weightsStep,
        });
      }
    }
    this.counts.requests += batch.length;
  }

  /**
   * Refuses new requests, rejects those still waiting with a DisposedError, lets the batches
   * already running finish, and frees the context and the weights. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    if (this.watch) clearInterval(this.watch);
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const waiting = this.queue.splice(0);
    for (const r of waiting) r.reject(new DisposedError('predictor.predict: the predictor was closed before the request ran'));
    this.counts.requests += waiting.length;
    if (this.inFlight > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    await this.refreshing?.catch(() => undefined);
    this.model.dispose();
    this.context.dispose();
  }
}

