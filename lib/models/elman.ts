/**
 * The Elman RNN of docs/math.md (M1)–(M3) with the paper's recurrent parameterisations:
 *   'svd'     W = U diag(s) Vᵀ, s = 2m(σ(p) − ½) + 1 ∈ [1 − m, 1 + m] (U, V kept orthogonal
 *             by Cayley steps: see ops.cayleyStep)
 *   'plain'   W free (the "no constraint" baseline)
 *   'penalty' W free plus λ‖WᵀW − I‖²_F in the loss
 * Forward, loss and BPTT run natively as one queued call per batch.
 */
import { rangeError } from '../errors';
import type { Activation, ElmanNativeConfig, FloatDType } from '../native';
import * as ops from '../ops';
import type { Tensor } from '../tensor';
import { checkActivation, checkBoolean, checkCoefficient, checkOneOf, checkOptions } from '../validate';
import type { PreparedBatch, SequenceBatch } from './batch';
import { glorotUniform, identity, marginLogit, randomOrthogonal, transpose, type InitScheme } from './init';
import { readModelOptions, RecurrentModel, type FrameLossAndGradients, type LossAndGradients, type LossAndGradientsOptions, type ModelOptions, type StepOutputs } from './recurrent';

export type RecurrentKind = 'svd' | 'plain' | 'penalty';

/** The parameters every Elman network has (docs/math.md §3's names); `h0` when it is learnt. */
export type ElmanCommonParameters<D extends FloatDType = 'float32'> = {
  W_in: Tensor<D>;
  b: Tensor<D>;
  W_out: Tensor<D>;
  c: Tensor<D>;
  h0?: Tensor<D>;
};
/** recurrent 'svd': W = U diag(s(p)) Vᵀ. */
export type SvdParameters<D extends FloatDType = 'float32'> = ElmanCommonParameters<D> & { U: Tensor<D>; V: Tensor<D>; p: Tensor<D> };
/** recurrent 'plain' or 'penalty': a free W. */
export type FreeParameters<D extends FloatDType = 'float32'> = ElmanCommonParameters<D> & { W: Tensor<D> };
/** An ElmanRNN's parameters (and its gradients, by the same names) for its recurrent kind R. */
export type ElmanParameters<D extends FloatDType = 'float32', R extends RecurrentKind = RecurrentKind> = R extends 'svd' ? SvdParameters<D> : FreeParameters<D>;
/** The gradients of lossAndGradients with `{ frameGradients: true }`: all but U's and V's. */
export type ElmanFrameGradients<D extends FloatDType = 'float32'> = Omit<SvdParameters<D>, 'U' | 'V'>;

export interface ElmanRNNOptions<D extends FloatDType = 'float32'> extends ModelOptions<D> {
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
  /**
   * Clip ∂L/∂a_t, the gradient of the recurrent pre-activations, element-wise to [−c, c]
   * during BPTT (the authors clipped at 100). Default 0: no clipping.
   */
  clipPreactivation?: number;
}

const ELMAN_KEYS = ['activation', 'recurrent', 'margin', 'penalty', 'spectrumPrior', 'init', 'learnH0', 'clipPreactivation'];

/**
 * An Elman network. `R` is its recurrent kind, known from `create`'s options ('svd' when
 * omitted), and types `parameters` and the gradients: `model.parameters.U` for an 'svd' model,
 * `.W` for the others.
 */
export class ElmanRNN<D extends FloatDType = 'float32', R extends RecurrentKind = RecurrentKind> extends RecurrentModel<D, ElmanParameters<D, R>> {
  readonly activation: Activation;
  readonly recurrent: RecurrentKind;
  readonly margin: number;
  readonly penalty: number;
  readonly spectrumPrior: number;
  readonly init: InitScheme;
  readonly learnH0: boolean;
  readonly clipPreactivation: number;
  /** The frame gradients' buffers, made on first request (lossAndGradients' `frameGradients`). */
  private frames?: { U: Tensor<D>; V: Tensor<D> };

  /** Builds and initialises a model (awaits the initialisation, which runs on the device). */
  static create<D extends FloatDType = 'float32'>(options: ElmanRNNOptions<D> & { recurrent?: 'svd' }): Promise<ElmanRNN<D, 'svd'>>;
  static create<D extends FloatDType = 'float32'>(options: ElmanRNNOptions<D> & { recurrent: 'plain' | 'penalty' }): Promise<ElmanRNN<D, 'plain' | 'penalty'>>;
  static create<D extends FloatDType = 'float32'>(options: ElmanRNNOptions<D>): Promise<ElmanRNN<D>>;
  static async create<D extends FloatDType = 'float32'>(options: ElmanRNNOptions<D>): Promise<ElmanRNN<D>> {
    const opts = readModelOptions('ElmanRNN', options, ELMAN_KEYS);
    const model = new ElmanRNN<D>(opts);
    await model.initialize(opts.seed ?? 0);
    return model;
  }

  private constructor(options: ElmanRNNOptions<D>) {
    const fn = 'ElmanRNN';
    super(fn, options);
    this.activation = checkActivation(fn, 'activation', options.activation ?? 'tanh');
    this.recurrent = checkOneOf(fn, 'recurrent', options.recurrent ?? 'svd', ['svd', 'plain', 'penalty'] as const);
    if (this.recurrent !== 'svd' && options.margin !== undefined) throw rangeError(fn, 'margin', "given only with recurrent: 'svd'", `recurrent '${this.recurrent}'`);
    if (this.recurrent !== 'svd' && options.spectrumPrior !== undefined) throw rangeError(fn, 'spectrumPrior', "given only with recurrent: 'svd'", `recurrent '${this.recurrent}'`);
    if (this.recurrent !== 'penalty' && options.penalty !== undefined) throw rangeError(fn, 'penalty', "given only with recurrent: 'penalty'", `recurrent '${this.recurrent}'`);
    this.margin = this.recurrent === 'svd' ? checkCoefficient(fn, 'margin', options.margin ?? 0.1) : 0;
    this.penalty = this.recurrent === 'penalty' ? checkCoefficient(fn, 'penalty', options.penalty ?? 1) : 0;
    this.spectrumPrior = checkCoefficient(fn, 'spectrumPrior', options.spectrumPrior ?? 0);
    this.init = checkOneOf(fn, 'init', options.init ?? 'orthogonal', ['orthogonal', 'identity', 'glorot'] as const);
    this.learnH0 = checkBoolean(fn, 'learnH0', options.learnH0 ?? false);
    this.clipPreactivation = checkCoefficient(fn, 'clipPreactivation', options.clipPreactivation ?? 0);

    const [n, d, k] = [this.hiddenSize, this.inputSize, this.outputSize];
    const shapes: Record<string, number[]> = { W_in: [n, d], b: [n] };
    if (this.recurrent === 'svd') Object.assign(shapes, { U: [n, n], V: [n, n], p: [n] });
    else shapes.W = [n, n];
    Object.assign(shapes, { W_out: [k, n], c: [k] });
    if (this.learnH0) shapes.h0 = [n];
    this.allocate(shapes);
  }

  private async initialize(seed: number): Promise<void> {
    const ctx = this.context;
    const [n, d, k] = [this.hiddenSize, this.inputSize, this.outputSize];
    const dtype: D = this.dtype;
    // The authors' input weights U(±0.01); output weights Glorot uniform; biases and h0 zero.
    this.assign('W_in', ctx.rand<D>([n, d], { dtype, seed: seed * 16 + 1, low: -0.01, high: 0.01 }));
    this.assign('W_out', glorotUniform(ctx, k, n, dtype, seed * 16 + 2));
    if (this.recurrent === 'svd') {
      if (this.init === 'orthogonal') {
        this.assign('U', randomOrthogonal(ctx, n, dtype, seed * 16 + 3));
        this.assign('V', randomOrthogonal(ctx, n, dtype, seed * 16 + 4));
      } else if (this.init === 'identity') {
        this.assign('U', identity(ctx, n, dtype));
        this.assign('V', identity(ctx, n, dtype));
      } else {
        // SVD of a Glorot matrix, its singular values clipped into the margin.
        const g = glorotUniform(ctx, n, n, dtype, seed * 16 + 5);
        const { u, s, vt } = ops.svd(g);
        g.dispose();
        this.assign('U', u);
        this.assign('V', transpose(ctx, vt));
        vt.dispose();
        const sv = await s.read();
        s.dispose();
        if (this.margin > 0) {
          const p = dtype === 'float32' ? new Float32Array(n) : new Float64Array(n);
          for (let i = 0; i < n; i++) p[i] = marginLogit(sv[i], this.margin);
          this.assign('p', ctx.tensor(p, [n]) as Tensor<D>);
        }
      }
    } else if (this.init === 'orthogonal') {
      this.assign('W', randomOrthogonal(ctx, n, dtype, seed * 16 + 3));
    } else if (this.init === 'identity') {
      this.assign('W', identity(ctx, n, dtype));
    } else {
      this.assign('W', glorotUniform(ctx, n, n, dtype, seed * 16 + 5));
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
      clipPreactivation: this.clipPreactivation,
    };
  }

  /** Whether W = U diag(s) Vᵀ; narrows `parameters` and the gradients to the svd model's (e.g. after loadModel). */
  isSvd(): this is ElmanRNN<D, 'svd'> {
    return this.recurrent === 'svd';
  }

  /**
   * Loss, every parameter gradient and the hidden gradient norms for one batch (see
   * RecurrentModel.lossAndGradients). With `{ frameGradients: true }` (svd only) the result's
   * `frameGradients` holds Uᵀ∂L/∂U and Vᵀ∂L/∂V, and `gradients` the others.
   */
  override lossAndGradients(batch: SequenceBatch<D>, options: LossAndGradientsOptions & { frameGradients: true }): Promise<FrameLossAndGradients<D, ElmanFrameGradients<D>>>;
  override lossAndGradients(batch: SequenceBatch<D>, options?: LossAndGradientsOptions): Promise<LossAndGradients<D, ElmanParameters<D, R>>>;
  override lossAndGradients(batch: SequenceBatch<D>, options: LossAndGradientsOptions = {}): Promise<LossAndGradients<D, ElmanParameters<D, R>> | FrameLossAndGradients<D, ElmanFrameGradients<D>>> {
    return super.lossAndGradients(batch, options);
  }

  protected override frameBuffers(fn: string, flag: boolean): { U: Tensor<D>; V: Tensor<D> } | undefined {
    if (!flag || this.recurrent !== 'svd') return super.frameBuffers(fn, flag);
    if (!this.frames) {
      const shape = [this.hiddenSize, this.hiddenSize];
      this.frames = { U: this.context.empty<D>(shape, { dtype: this.dtype }), V: this.context.empty<D>(shape, { dtype: this.dtype }) };
    }
    return this.frames;
  }

  protected queueLossAndGradients(prepared: PreparedBatch, batch: SequenceBatch<D>, out: StepOutputs<D>): void {
    this.context.native.elmanLossAndGradients(this.workspace,
      this.config(prepared.loss, prepared.lastStepOnly),
      RecurrentModel.handles(this.tensors),
      RecurrentModel.handles({ x: batch.x, targets: batch.targets, weights: prepared.weights, initialState: batch.initialState }),
      RecurrentModel.handles({
        ...this.gradientBuffers(out.frames !== undefined),
        loss: out.loss,
        hiddenGradientNorms: out.hiddenGradientNorms,
        initialState: out.initialState,
        frameU: out.frames?.U,
        frameV: out.frames?.V,
      }),
    );
  }

  override dispose(): void {
    super.dispose();
    this.frames?.U.dispose();
    this.frames?.V.dispose();
    this.frames = undefined;
  }

  /** Inference: outputs y (T × B × k) and the final state h_T (B × n). */
  forward(x: Tensor<D>, options: { initialState?: Tensor<D> } = {}): { outputs: Tensor<D>; finalState: Tensor<D> } {
    const fn = 'forward';
    this.assertLive(fn);
    const opts = checkOptions(fn, options, ['initialState']);
    const [T, B] = this.checkForwardInput(fn, x, { initialState: opts.initialState });
    const outputs = this.context.empty<D>([T, B, this.outputSize], { dtype: this.dtype });
    const finalState = this.context.empty<D>([B, this.hiddenSize], { dtype: this.dtype });
    this.context.native.elmanForward(this.workspace, this.config('crossEntropy', false), RecurrentModel.handles(this.tensors), x.handle, opts.initialState?.handle ?? null, outputs.handle, finalState.handle);
    return { outputs, finalState };
  }

  /** The materialised recurrent matrix W (n × n): U diag(s) Vᵀ for 'svd'. */
  recurrentMatrix(): Tensor<D> {
    this.assertLive('recurrentMatrix');
    if (this.recurrent !== 'svd') return ops.copy(this.tensors.W);
    const s = ops.marginSigmoid(this.tensors.p, this.margin);
    const us = ops.scaleColumns(this.tensors.U, s);
    const w = ops.gemm(us, this.tensors.V, { transB: true });
    for (const t of [s, us]) t.dispose();
    return w;
  }

  /** The singular values of W, descending: s for 'svd', the SVD of W otherwise. */
  async singularValues(): Promise<Float64Array> {
    this.assertLive('singularValues');
    let values: ArrayLike<number>;
    if (this.recurrent === 'svd') {
      const s = ops.marginSigmoid(this.tensors.p, this.margin);
      values = await s.read();
      s.dispose();
    } else {
      const { u, s, vt } = ops.svd(this.tensors.W);
      values = await s.read();
      for (const t of [u, s, vt]) t.dispose();
    }
    return Float64Array.from(values).sort().reverse();
  }
}
