/**
 * The Elman RNN of DESIGN §2.1 with the paper's recurrent parameterisations:
 *   'svd'     W = U diag(s) Vᵀ, s = 2m(σ(p) − ½) + 1 ∈ [1 − m, 1 + m] (U, V kept orthogonal
 *             by Cayley steps: see ops.cayleyStep)
 *   'plain'   W free (the "no constraint" baseline)
 *   'penalty' W free plus λ‖WᵀW − I‖²_F in the loss
 * Forward, loss and BPTT run natively as one queued call per batch.
 */
import { Context, defaultContext } from '../context';
import { NumericError, rangeError, typeError } from '../errors';
import { native, type Activation, type ElmanNativeConfig, type FloatDType, type NativeTensors, type NativeWorkspace } from '../native';
import * as ops from '../ops';
import type { Tensor } from '../tensor';
import { checkOptions, checkSeed, checkTensor, shapeStr } from '../validate';
import { prepareBatch, type SequenceBatch } from './batch';
import { glorotUniform, identity, marginLogit, randomOrthogonal, transpose, type InitScheme } from './init';
import { ParameterSet, type StateDict } from './parameters';

export type RecurrentKind = 'svd' | 'plain' | 'penalty';

export interface ElmanRNNOptions<D extends FloatDType = 'float32'> {
  inputSize: number;
  hiddenSize: number;
  outputSize: number;
  /** Default 'tanh'. */
  activation?: Activation;
  /** Default 'svd'. */
  recurrent?: RecurrentKind;
  /** m for 'svd' (default 0.1, the paper's best); 0 is hard orthogonality. */
  margin?: number;
  /** λ for 'penalty' (default 1). */
  penalty?: number;
  /** γ of the spectrum prior γ Σ (s_i − 1)² for 'svd' (default 0). */
  spectrumPrior?: number;
  /** Default 'orthogonal'. */
  init?: InitScheme;
  /** Learn the initial state h0 (default false: h0 = 0). */
  learnH0?: boolean;
  /** Default 'float32'. */
  dtype?: D;
  /** The context to live on (default: the shared context of `device`). */
  context?: Context;
  /** Default 'cpu'. */
  device?: string;
  /** Seed of the initialisation (default 0). */
  seed?: number;
}

export interface LossAndGradients<D extends FloatDType> {
  loss: number;
  /** ∂L/∂θ by parameter name; the model's own buffers, overwritten by the next call. */
  gradients: Record<string, Tensor<D>>;
  /** ‖∂L/∂h_t‖ over the batch for t = 1..T (the paper's diagnostic). */
  hiddenGradientNorms: Float32Array | Float64Array;
  /** ∂L/∂(initial state), B × n, when the batch gave one. */
  initialStateGradient?: Tensor<D>;
}

const OPTION_KEYS = ['inputSize', 'hiddenSize', 'outputSize', 'activation', 'recurrent', 'margin', 'penalty', 'spectrumPrior', 'init', 'learnH0', 'dtype', 'context', 'device', 'seed'];

function positiveInt(fn: string, arg: string, v: unknown): number {
  if (typeof v !== 'number') throw typeError(fn, arg, 'a positive integer', v);
  if (!Number.isSafeInteger(v) || v < 1) throw rangeError(fn, arg, 'a positive integer', String(v));
  return v;
}

function nonNegative(fn: string, arg: string, v: unknown): number {
  if (typeof v !== 'number') throw typeError(fn, arg, 'a number', v);
  if (!Number.isFinite(v) || v < 0) throw rangeError(fn, arg, 'a finite non-negative number', String(v));
  return v;
}

export class ElmanRNN<D extends FloatDType = 'float32'> {
  readonly context: Context;
  readonly dtype: D;
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly outputSize: number;
  readonly activation: Activation;
  readonly recurrent: RecurrentKind;
  readonly margin: number;
  readonly penalty: number;
  readonly spectrumPrior: number;
  readonly init: InitScheme;
  readonly learnH0: boolean;
  /** Parameters by their DESIGN §2.5 names: W_in, b, (U, V, p | W), W_out, c, (h0). */
  readonly parameters: Record<string, Tensor<D>>;
  private readonly params: ParameterSet<D>;
  private readonly grads: Record<string, Tensor<D>>;
  private readonly workspace: NativeWorkspace;
  private readonly weightCache = new Map<string, Tensor>();
  private initialStateGrad?: Tensor<D>;
  private disposed = false;

  /** Builds and initialises a model (awaits the initialisation, which runs on the device). */
  static async create<D extends FloatDType = 'float32'>(options: ElmanRNNOptions<D>): Promise<ElmanRNN<D>> {
    const model = new ElmanRNN<D>(options);
    await model.initialize(options.seed ?? 0);
    return model;
  }

  private constructor(options: ElmanRNNOptions<D>) {
    const fn = 'ElmanRNN';
    if (options === null || typeof options !== 'object') throw typeError(fn, 'options', 'an object', options);
    checkOptions(fn, options, OPTION_KEYS);
    this.inputSize = positiveInt(fn, 'inputSize', options.inputSize);
    this.hiddenSize = positiveInt(fn, 'hiddenSize', options.hiddenSize);
    this.outputSize = positiveInt(fn, 'outputSize', options.outputSize);
    this.activation = options.activation ?? 'tanh';
    if (!['tanh', 'relu', 'identity'].includes(this.activation)) throw rangeError(fn, 'activation', "'tanh', 'relu' or 'identity'", String(this.activation));
    this.recurrent = options.recurrent ?? 'svd';
    if (!['svd', 'plain', 'penalty'].includes(this.recurrent)) throw rangeError(fn, 'recurrent', "'svd', 'plain' or 'penalty'", String(this.recurrent));
    if (this.recurrent !== 'svd' && options.margin !== undefined) throw rangeError(fn, 'margin', "given only with recurrent: 'svd'", `recurrent '${this.recurrent}'`);
    if (this.recurrent !== 'svd' && options.spectrumPrior !== undefined) throw rangeError(fn, 'spectrumPrior', "given only with recurrent: 'svd'", `recurrent '${this.recurrent}'`);
    if (this.recurrent !== 'penalty' && options.penalty !== undefined) throw rangeError(fn, 'penalty', "given only with recurrent: 'penalty'", `recurrent '${this.recurrent}'`);
    this.margin = this.recurrent === 'svd' ? nonNegative(fn, 'margin', options.margin ?? 0.1) : 0;
    this.penalty = this.recurrent === 'penalty' ? nonNegative(fn, 'penalty', options.penalty ?? 1) : 0;
    this.spectrumPrior = nonNegative(fn, 'spectrumPrior', options.spectrumPrior ?? 0);
    this.init = options.init ?? 'orthogonal';
    if (!['orthogonal', 'identity', 'glorot'].includes(this.init)) throw rangeError(fn, 'init', "'orthogonal', 'identity' or 'glorot'", String(this.init));
    this.learnH0 = options.learnH0 ?? false;
    if (typeof this.learnH0 !== 'boolean') throw typeError(fn, 'learnH0', 'a boolean', this.learnH0);
    this.dtype = (options.dtype ?? 'float32') as D;
    if (this.dtype !== 'float32' && this.dtype !== 'float64') throw rangeError(fn, 'dtype', "'float32' or 'float64'", String(this.dtype));
    if (options.context !== undefined && options.device !== undefined) throw rangeError(fn, 'device', 'omitted when a context is given', String(options.device));
    if (options.context !== undefined && !(options.context instanceof Context)) throw typeError(fn, 'context', 'a Context', options.context);
    if (options.seed !== undefined) checkSeed(fn, 'seed', options.seed);
    this.context = options.context ?? defaultContext(options.device ?? 'cpu');
    this.context.assertLive(fn);

    const [n, d, k] = [this.hiddenSize, this.inputSize, this.outputSize];
    const shapes: Record<string, number[]> = { W_in: [n, d], b: [n] };
    if (this.recurrent === 'svd') Object.assign(shapes, { U: [n, n], V: [n, n], p: [n] });
    else shapes.W = [n, n];
    Object.assign(shapes, { W_out: [k, n], c: [k] });
    if (this.learnH0) shapes.h0 = [n];
    const make = () => Object.fromEntries(Object.entries(shapes).map(([name, s]) => [name, this.context.zeros<D>(s, { dtype: this.dtype })]));
    this.parameters = make();
    this.grads = make();
    this.params = new ParameterSet(this.context, this.dtype, this.parameters);
    this.workspace = native().createWorkspace(this.context.native);
  }

  private async initialize(seed: number): Promise<void> {
    const ctx = this.context;
    const [n, d, k] = [this.hiddenSize, this.inputSize, this.outputSize];
    const dtype: D = this.dtype;
    const P = this.parameters;
    const set = (name: string, t: Tensor<D>) => {
      ops.copy(t, { out: P[name] });
      t.dispose();
    };
    // The authors' input weights U(±0.01); output weights Glorot uniform; biases and h0 zero.
    set('W_in', ctx.rand<D>([n, d], { dtype, seed: seed * 16 + 1, low: -0.01, high: 0.01 }));
    set('W_out', glorotUniform(ctx, k, n, dtype, seed * 16 + 2));
    if (this.recurrent === 'svd') {
      if (this.init === 'orthogonal') {
        set('U', randomOrthogonal(ctx, n, dtype, seed * 16 + 3));
        set('V', randomOrthogonal(ctx, n, dtype, seed * 16 + 4));
      } else if (this.init === 'identity') {
        set('U', identity(ctx, n, dtype));
        set('V', identity(ctx, n, dtype));
      } else {
        // SVD of a Glorot matrix, its singular values clipped into the margin.
        const g = glorotUniform(ctx, n, n, dtype, seed * 16 + 5);
        const { u, s, vt } = ops.svd(g);
        g.dispose();
        set('U', u);
        set('V', transpose(ctx, vt));
        vt.dispose();
        const sv = await s.read();
        s.dispose();
        if (this.margin > 0) {
          const p = dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
          for (let i = 0; i < n; i++) p[i] = marginLogit(sv[i], this.margin);
          set('p', ctx.tensor(p, [n]) as Tensor<D>);
        }
      }
    } else if (this.init === 'orthogonal') {
      set('W', randomOrthogonal(ctx, n, dtype, seed * 16 + 3));
    } else if (this.init === 'identity') {
      set('W', identity(ctx, n, dtype));
    } else {
      set('W', glorotUniform(ctx, n, n, dtype, seed * 16 + 5));
    }
    await ctx.sync();
  }

  private config(loss: 'crossEntropy' | 'mse', lastStepOnly: boolean): ElmanNativeConfig {
    return {
      inputSize: this.inputSize,
      hiddenSize: this.hiddenSize,
      outputSize: this.outputSize,
      activation: this.activation,
      recurrent: this.recurrent,
      margin: this.margin,
      penalty: this.penalty,
      spectrumPrior: this.spectrumPrior,
      loss,
      lastStepOnly,
    };
  }

  private handles(tensors: Record<string, Tensor | undefined>): NativeTensors {
    const out: NativeTensors = {};
    for (const [name, t] of Object.entries(tensors)) if (t) out[name] = t.handle;
    return out;
  }

  private assertLive(fn: string): void {
    if (this.disposed) throw rangeError(fn, 'this', 'a live model', 'a disposed model');
    this.context.assertLive(fn);
  }

  /**
   * Loss, every parameter gradient and the hidden gradient norms for one batch: the forward
   * pass, the loss and BPTT run natively as one queued call.
   */
  async lossAndGradients(batch: SequenceBatch<D>): Promise<LossAndGradients<D>> {
    const fn = 'lossAndGradients';
    this.assertLive(fn);
    const prepared = prepareBatch(fn, this, batch, this.weightCache);
    const { T, B } = prepared;
    const norms = this.context.empty<D>([T], { dtype: this.dtype });
    const loss = this.context.empty<D>([], { dtype: this.dtype });
    let dInit: Tensor<D> | undefined;
    if (batch.initialState) {
      if (!this.initialStateGrad || this.initialStateGrad.shape[0] !== B) {
        this.initialStateGrad?.dispose();
        this.initialStateGrad = this.context.empty<D>([B, this.hiddenSize], { dtype: this.dtype });
      }
      dInit = this.initialStateGrad;
    }
    try {
      native().elmanLossAndGradients(
        this.context.native,
        this.workspace,
        this.config(prepared.loss, prepared.lastStepOnly),
        this.handles(this.parameters),
        this.handles({ x: batch.x, targets: batch.targets, weights: prepared.weights, initialState: batch.initialState }),
        this.handles({ ...this.grads, loss, hiddenGradientNorms: norms, initialState: dInit }),
      );
    } finally {
      for (const t of prepared.temporary) t.dispose();
    }
    try {
      const value = await loss.item();
      if (!Number.isFinite(value)) await this.diagnoseNonFinite(fn, batch, value);
      return { loss: value, gradients: this.grads, hiddenGradientNorms: (await norms.read()) as Float32Array | Float64Array, initialStateGradient: dInit };
    } finally {
      loss.dispose();
      norms.dispose();
    }
  }

  /** A non-finite loss: say whether the data or the model is to blame. */
  private async diagnoseNonFinite(fn: string, batch: SequenceBatch<D>, value: number): Promise<never> {
    for (const [name, t] of [['batch.x', batch.x], ['batch.targets', batch.targets], ['batch.initialState', batch.initialState]] as const) {
      if (!t || t.dtype === 'int32') continue;
      const bad = await ops.countNonFinite(t as Tensor<D>).item();
      if (bad > 0) throw new NumericError(`${fn}: '${name}' contains ${bad} NaN/Inf values`);
    }
    for (const [name, t] of Object.entries(this.parameters)) {
      const bad = await ops.countNonFinite(t).item();
      if (bad > 0) throw new NumericError(`${fn}: parameter '${name}' contains ${bad} NaN/Inf values (training diverged?)`);
    }
    throw new NumericError(`${fn}: the loss is ${value} (the model's outputs overflowed)`);
  }

  /** Inference: outputs y (T × B × k) and the final state h_T (B × n). */
  forward(x: Tensor<D>, options: { initialState?: Tensor<D> } = {}): { outputs: Tensor<D>; finalState: Tensor<D> } {
    const fn = 'forward';
    this.assertLive(fn);
    checkOptions(fn, options, ['initialState']);
    checkTensor(fn, 'x', x);
    if (x.dtype !== this.dtype) throw typeError(fn, 'x', `a ${this.dtype} tensor`, `${x.dtype} tensor`);
    if (x.shape.length !== 3 || x.shape[2] !== this.inputSize || x.shape[0] < 1 || x.shape[1] < 1) throw rangeError(fn, 'x', `T × B × ${this.inputSize}`, shapeStr(x.shape));
    const [T, B] = x.shape;
    const init = options.initialState;
    if (init !== undefined) {
      checkTensor(fn, 'initialState', init);
      if (init.dtype !== this.dtype || init.shape.length !== 2 || init.shape[0] !== B || init.shape[1] !== this.hiddenSize) {
        throw rangeError(fn, 'initialState', `a ${this.dtype} tensor of shape [${B}, ${this.hiddenSize}]`, `${init.dtype} ${shapeStr(init.shape)}`);
      }
    }
    const outputs = this.context.empty<D>([T, B, this.outputSize], { dtype: this.dtype });
    const finalState = this.context.empty<D>([B, this.hiddenSize], { dtype: this.dtype });
    native().elmanForward(this.context.native, this.workspace, this.config('crossEntropy', false), this.handles(this.parameters), x.handle, init?.handle ?? null, outputs.handle, finalState.handle);
    return { outputs, finalState };
  }

  /** The materialised recurrent matrix W (n × n): U diag(s) Vᵀ for 'svd'. */
  recurrentMatrix(): Tensor<D> {
    this.assertLive('recurrentMatrix');
    if (this.recurrent !== 'svd') return ops.copy(this.parameters.W);
    const s = ops.marginSigmoid(this.parameters.p, this.margin);
    const us = ops.gemm(this.parameters.U, diagonal(this.context, s), {});
    const w = ops.gemm(us, this.parameters.V, { transB: true });
    for (const t of [s, us]) t.dispose();
    return w;
  }

  /** The singular values of W, descending: s for 'svd', the SVD of W otherwise. */
  async singularValues(): Promise<Float64Array> {
    this.assertLive('singularValues');
    let values: ArrayLike<number>;
    if (this.recurrent === 'svd') {
      const s = ops.marginSigmoid(this.parameters.p, this.margin);
      values = await s.read();
      s.dispose();
    } else {
      const { u, s, vt } = ops.svd(this.parameters.W);
      values = await s.read();
      for (const t of [u, s, vt]) t.dispose();
    }
    return Float64Array.from(values).sort().reverse();
  }

  /** Parameter values by DESIGN name (what checkpoints hold). */
  state(): Promise<StateDict> {
    this.assertLive('state');
    return this.params.state();
  }

  /** Overwrites every parameter; unknown or missing names and wrong sizes are RangeErrors. */
  loadState(state: StateDict): void {
    this.assertLive('loadState');
    this.params.load('loadState', state);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.params.dispose();
    for (const t of Object.values(this.grads)) t.dispose();
    for (const t of this.weightCache.values()) t.dispose();
    this.initialStateGrad?.dispose();
  }
}

function diagonal<D extends FloatDType>(ctx: Context, s: Tensor<D>): Tensor<D> {
  const n = s.shape[0];
  const eye = identity(ctx, n, s.dtype);
  // diag(s) = I scaled column-wise: (1·s) on the diagonal.
  const d = ops.biasActivation(ops.scale(eye, 0), s, 'identity');
  const out = ops.mul(d, eye);
  for (const t of [eye, d]) t.dispose();
  return out;
}
