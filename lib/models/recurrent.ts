/**
 * What every recurrent model shares: its context and dtype, named parameters and gradient
 * buffers, a native workspace, the batch → loss-weights preparation, the lossAndGradients
 * flow (one queued native call, then the loss and hidden gradient norms read back), and
 * state()/loadState()/dispose().
 */
import { defaultContext, type Context } from '../context';
import { DisposedError, NumericError, rangeError, show, typeError, typeErrorText } from '../errors';
import type { FloatDType, NativeTensors, NativeWorkspace } from '../native';
import * as ops from '../ops';
import type { Tensor } from '../tensor';
import { checkBoolean, checkContext, checkFloatDType, checkInteger, checkOptions, checkSeed, checkTensor, shapeStr } from '../validate';
import { InferenceSession, predict, type Prediction, type PredictOptions, type SessionOptions } from '../serve/inference';
import { prepareBatch, type PreparedBatch, type SequenceBatch } from './batch';
import { ParameterSet, type StateDict } from './parameters';

export interface ModelOptions<D extends FloatDType> {
  inputSize: number;
  hiddenSize: number;
  outputSize: number;
  /** Default 'float32'. */
  dtype?: D;
  /** The context to live on (default: the shared context of `device`). */
  context?: Context;
  /** Default 'cpu'. */
  device?: string;
  /** Seed of the initialisation (default 0). */
  seed?: number;
}

const MODEL_OPTION_KEYS = ['inputSize', 'hiddenSize', 'outputSize', 'dtype', 'context', 'device', 'seed'];

/** A model's options read once: the keys every model takes, and `extraKeys`. */
export function readModelOptions<O extends object>(fn: string, options: O, extraKeys: readonly string[] = []): O {
  if (options === undefined) throw typeError(fn, 'options', 'an object', options);
  return checkOptions(fn, options, [...MODEL_OPTION_KEYS, ...extraKeys]) as O;
}

/**
 * What lossAndGradients returns; `G` is the model's gradients by parameter name (ElmanParameters,
 * LSTMParameters: the same names and shapes as the parameters).
 */
export interface LossAndGradients<D extends FloatDType, G = Record<string, Tensor<D>>> {
  loss: number;
  /** ∂L/∂θ by parameter name; the model's own buffers, overwritten by the next call. */
  gradients: G;
  /** ‖∂L/∂h_t‖ over the batch for t = 1..T (the paper's diagnostic). */
  hiddenGradientNorms: Float32Array | Float64Array;
  /** ∂L/∂(initial state), B × n, when the batch gave one. */
  initialStateGradient?: Tensor<D>;
  /** ∂L/∂(initial cell state), B × n, when the batch gave one (LSTM). */
  initialCellStateGradient?: Tensor<D>;
  /**
   * With `frameGradients`: Uᵀ ∂L/∂U and Vᵀ ∂L/∂V (n × n each), for ops.cayleyStepInFrame;
   * `gradients` then has no U or V. For orthogonal U and V each has its Euclidean
   * gradient's Frobenius norm. The model's own buffers, overwritten by the next call.
   */
  frameGradients?: { U: Tensor<D>; V: Tensor<D> };
}

/** lossAndGradients with `{ frameGradients: true }`: U's and V's gradients in their frames, and not in `gradients`. */
export interface FrameLossAndGradients<D extends FloatDType, G> extends LossAndGradients<D, G> {
  frameGradients: { U: Tensor<D>; V: Tensor<D> };
}

export interface LossAndGradientsOptions {
  /**
   * An ElmanRNN with recurrent 'svd' only: return ∂L/∂U and ∂L/∂V in their own frames
   * (`frameGradients`) instead of `gradients.U` and `gradients.V`. Cayley steps taken from
   * them (ops.cayleyStepInFrame) skip the two n×n products that cayleyStep spends forming
   * its skew-symmetric matrix. Default false.
   */
  frameGradients?: boolean;
}

/** The outputs a model's native loss-and-gradients call writes besides the gradients. */
export interface StepOutputs<D extends FloatDType> {
  loss: Tensor<D>;
  hiddenGradientNorms: Tensor<D>;
  initialState?: Tensor<D>;
  initialCellState?: Tensor<D>;
  frames?: { U: Tensor<D>; V: Tensor<D> };
}

export abstract class RecurrentModel<D extends FloatDType, P extends object = Record<string, Tensor<D>>> {
  readonly context: Context;
  readonly dtype: D;
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly outputSize: number;
  /** The parameters by name, for code that walks them (`parameters` has each model's own type). */
  protected readonly tensors: Record<string, Tensor<D>> = {};
  protected readonly grads: Record<string, Tensor<D>> = {};
  protected readonly workspace: NativeWorkspace;
  private readonly weightCache = new Map<string, Tensor>();
  private readonly stateGrads = new Map<string, Tensor<D>>();
  private readonly stepBuffers = new Map<string, Tensor<D>>();
  private params?: ParameterSet<D>;
  private disposed = false;

  /** `options` is the model's options read once (see readModelOptions). */
  protected constructor(fn: string, options: ModelOptions<D>) {
    this.inputSize = checkInteger(fn, 'inputSize', options.inputSize, 1);
    this.hiddenSize = checkInteger(fn, 'hiddenSize', options.hiddenSize, 1);
    this.outputSize = checkInteger(fn, 'outputSize', options.outputSize, 1);
    this.dtype = checkFloatDType(fn, 'dtype', options.dtype ?? 'float32') as D;
    if (options.context !== undefined && options.device !== undefined) throw rangeError(fn, 'device', 'omitted when a context is given', show(options.device));
    if (options.seed !== undefined) checkSeed(fn, 'seed', options.seed);
    this.context = options.context === undefined ? defaultContext(options.device ?? 'cpu') : checkContext(fn, 'context', options.context);
    this.workspace = this.context.native.createWorkspace();
  }

  /** Parameters by name, typed per model (ElmanParameters, LSTMParameters; PyTorch's names for the LSTM). */
  get parameters(): P {
    return this.tensors as unknown as P;
  }

  /** The same parameters as a plain record, for code that walks them by name. */
  get parametersByName(): Readonly<Record<string, Tensor<D>>> {
    return this.tensors;
  }

  /**
   * Allocates the parameters (zeros) and their gradient buffers by name and shape; when one
   * cannot be allocated, frees the others and the workspace before rethrowing.
   */
  protected allocate(shapes: Record<string, number[]>): void {
    try {
      for (const [name, shape] of Object.entries(shapes)) {
        this.tensors[name] = this.context.zeros<D>(shape, { dtype: this.dtype });
        this.grads[name] = this.context.zeros<D>(shape, { dtype: this.dtype });
      }
    } catch (e) {
      this.dispose();
      throw e;
    }
    this.params = new ParameterSet(this.context, this.dtype, this.tensors);
  }

  /** Overwrites a parameter with `value` (and disposes `value`). */
  protected assign(name: string, value: Tensor<D>): void {
    ops.copy(value, { out: this.tensors[name] });
    value.dispose();
  }

  protected assertLive(fn: string): void {
    if (this.disposed) throw new DisposedError(`${fn}: the model has been disposed`);
    this.context.assertLive(fn);
  }

  protected static handles(tensors: Record<string, Tensor | undefined>): NativeTensors {
    const out: NativeTensors = {};
    for (const [name, t] of Object.entries(tensors)) if (t) out[name] = t.handle;
    return out;
  }

  /** A B × n gradient buffer for an initial state, reused while B stays the same. */
  private stateGradient(key: string, B: number): Tensor<D> {
    let t = this.stateGrads.get(key);
    if (!t || t.shape[0] !== B) {
      t?.dispose();
      t = this.context.empty<D>([B, this.hiddenSize], { dtype: this.dtype });
      this.stateGrads.set(key, t);
    }
    return t;
  }

  /** Queues the model's native loss-and-gradients call. */
  protected abstract queueLossAndGradients(prepared: PreparedBatch, batch: SequenceBatch<D>, outputs: StepOutputs<D>): void;

  /**
   * The buffers for `options.frameGradients` when it is true (the model's own, kept across
   * calls); only an 'svd' ElmanRNN has them.
   */
  protected frameBuffers(fn: string, flag: boolean): { U: Tensor<D>; V: Tensor<D> } | undefined {
    if (!flag) return undefined;
    throw rangeError(fn, 'options.frameGradients', "true only for an ElmanRNN with recurrent 'svd'", 'true');
  }

  /** Gradient buffers by name, without U and V when their frame gradients replace them. */
  protected gradientBuffers(frames: boolean): Record<string, Tensor<D>> {
    if (!frames) return this.grads;
    const { U: _u, V: _v, ...rest } = this.grads;
    return rest;
  }

  /** Whether batches may carry an initial cell state (the LSTM). */
  protected readonly hasCellState: boolean = false;

  /**
   * Loss, every parameter gradient and the hidden gradient norms for one batch: the forward
   * pass, the loss and BPTT run natively as one queued call.
   */
  async lossAndGradients(batch: SequenceBatch<D>, options: LossAndGradientsOptions = {}): Promise<LossAndGradients<D, P>> {
    const fn = 'lossAndGradients';
    this.assertLive(fn);
    const opts = checkOptions(fn, options, ['frameGradients']);
    const flag = checkBoolean(fn, 'options.frameGradients', opts.frameGradients ?? false);
    const frames = this.frameBuffers(fn, flag);
    const prepared = prepareBatch(fn, this, batch, this.weightCache);
    batch = prepared.batch as SequenceBatch<D>;
    if (batch.initialCellState !== undefined && !this.hasCellState) {
      for (const t of prepared.temporary) t.dispose();
      throw rangeError(fn, 'batch.initialCellState', 'given only to an LSTM', 'a cell state for a model without one');
    }
    // Kept across calls like the gradients: a steady-state training step allocates nothing
    // (on a GPU an allocation and its free would each stall the stream).
    const loss = this.stepBuffer('loss', []);
    const norms = this.stepBuffer('hiddenGradientNorms', [prepared.T]);
    const dInit = batch.initialState ? this.stateGradient('h', prepared.B) : undefined;
    const dCell = batch.initialCellState ? this.stateGradient('c', prepared.B) : undefined;
    try {
      this.queueLossAndGradients(prepared, batch, { loss, hiddenGradientNorms: norms, initialState: dInit, initialCellState: dCell, frames });
    } finally {
      for (const t of prepared.temporary) t.dispose();
    }
    // Both reads are queued now, right behind this call's work, so that a next call queued
    // before these resolve cannot overwrite the buffers first.
    const [value, hiddenGradientNorms] = await Promise.all([loss.item(), norms.read()]);
    if (!Number.isFinite(value)) await this.diagnoseNonFinite(fn, batch, value);
    return {
      loss: value,
      gradients: this.gradientBuffers(frames !== undefined) as unknown as P,
      hiddenGradientNorms: hiddenGradientNorms as Float32Array | Float64Array,
      initialStateGradient: dInit,
      initialCellStateGradient: dCell,
      ...(frames && { frameGradients: frames }),
    };
  }

  /** An output buffer of lossAndGradients, reused while its shape stays the same. */
  private stepBuffer(key: string, shape: number[]): Tensor<D> {
    let t = this.stepBuffers.get(key);
    if (!t || t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      t?.dispose();
      t = this.context.empty<D>(shape, { dtype: this.dtype });
      this.stepBuffers.set(key, t);
    }
    return t;
  }

  /** A non-finite loss: say whether the data or the model is to blame. */
  private async diagnoseNonFinite(fn: string, batch: SequenceBatch<D>, value: number): Promise<never> {
    const inputs: [string, Tensor | undefined][] = [['batch.x', batch.x], ['batch.targets', batch.targets], ['batch.initialState', batch.initialState], ['batch.initialCellState', batch.initialCellState]];
    for (const [name, t] of inputs) {
      if (!t || t.dtype === 'int32') continue;
      const bad = await ops.countNonFinite(t as Tensor<D>).item();
      if (bad > 0) throw new NumericError(`${fn}: '${name}' contains ${bad} NaN/Inf values`);
    }
    for (const [name, t] of Object.entries(this.tensors)) {
      const bad = await ops.countNonFinite(t).item();
      if (bad > 0) throw new NumericError(`${fn}: parameter '${name}' contains ${bad} NaN/Inf values (training diverged?)`);
    }
    throw new NumericError(`${fn}: the loss is ${value} (the model's outputs overflowed)`);
  }

  /** Checks an inference input x (T × B × d) and an optional B × n state; returns [T, B]. */
  protected checkForwardInput(fn: string, x: Tensor<D>, states: Record<string, Tensor<D> | undefined>): [number, number] {
    checkTensor(fn, 'x', x);
    if (x.context !== this.context) throw rangeError(fn, 'x', `a tensor of the model's context (${this.context.device})`, x.device);
    if (x.dtype !== this.dtype) throw typeErrorText(fn, 'x', `a ${this.dtype} tensor`, `${x.dtype} tensor`);
    if (x.shape.length !== 3 || x.shape[2] !== this.inputSize || x.shape[0] < 1 || x.shape[1] < 1) throw rangeError(fn, 'x', `T × B × ${this.inputSize}`, shapeStr(x.shape));
    const [T, B] = x.shape;
    for (const [name, s] of Object.entries(states)) {
      if (s === undefined) continue;
      checkTensor(fn, name, s);
      if (s.context !== this.context) throw rangeError(fn, name, `a tensor of the model's context (${this.context.device})`, s.device);
      if (s.dtype !== this.dtype || s.shape.length !== 2 || s.shape[0] !== B || s.shape[1] !== this.hiddenSize) {
        throw rangeError(fn, name, `a ${this.dtype} tensor of shape [${B}, ${this.hiddenSize}]`, `${s.dtype} ${shapeStr(s.shape)}`);
      }
    }
    return [T, B];
  }

  /** Inference: outputs y (T × B × k) and the final state(s) (B × n), as tensors of the model's context. */
  abstract forward(
    x: Tensor<D>,
    options?: { initialState?: Tensor<D>; initialCellState?: Tensor<D> },
  ): { outputs: Tensor<D>; finalState: Tensor<D>; finalCellState?: Tensor<D> };

  /**
   * Inference on host arrays: probabilities (softmax over the outputs), raw outputs or class
   * ids for every step or each sequence's last, with variable lengths (each sequence runs for
   * its own number of steps). `x` is a T × B × d tensor of the model or a host array with
   * `options.shape`. See PredictOptions and Prediction (lib/serve/inference.ts).
   */
  async predict(x: Tensor<D> | Float32Array | Float64Array, options?: PredictOptions<D>): Promise<Prediction<D>> {
    this.assertLive('predict');
    return predict(this, this.hasCellState, x, options);
  }

  /**
   * A stateful stream of `batchSize` sequences fed a few steps at a time: `step(x)` returns
   * the outputs and keeps the state, `state()`, `reset()`, `dispose()`.
   */
  session(options: SessionOptions): InferenceSession<D> {
    this.assertLive('session');
    return new InferenceSession(this, this.hasCellState, options);
  }

  /** Parameter values by name (what checkpoints hold). */
  state(): Promise<StateDict> {
    this.assertLive('state');
    return this.params!.state();
  }

  /** Overwrites every parameter; unknown or missing names and wrong sizes are RangeErrors, and leave the model untouched. */
  loadState(state: StateDict): void {
    this.assertLive('loadState');
    this.params!.load('loadState', state);
  }

  /**
   * Writes the model to a safetensors file, atomically: its parameters and its architecture,
   * which `loadModel(file)` reads back (lib/models/files.ts).
   */
  async save(file: string): Promise<void> {
    this.assertLive('save');
    // Required here rather than imported: files.ts builds models, so it imports the model classes.
    const { saveModel } = require('./files') as typeof import('./files');
    await saveModel(this, file);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of Object.values(this.tensors)) t.dispose();
    for (const t of Object.values(this.grads)) t.dispose();
    for (const t of this.weightCache.values()) t.dispose();
    for (const t of this.stateGrads.values()) t.dispose();
    for (const t of this.stepBuffers.values()) t.dispose();
    if (!this.context.disposed) this.context.native.releaseWorkspace(this.workspace);
  }
}
