/**
 * The LSTM baseline of the paper's comparisons, natively: one layer with PyTorch nn.LSTM's
 * parameter names, shapes and gate order (i, f, g, o), plus the same linear output layer
 * (W_out, c) and the same losses and scoring as ElmanRNN.
 */
import type { FloatDType, LstmNativeConfig } from '../native';
import type { Tensor } from '../tensor';
import { checkOneOf, checkOptions } from '../validate';
import type { PreparedBatch, SequenceBatch } from './batch';
import { glorotUniform, randomOrthogonal } from './init';
import { readModelOptions, RecurrentModel, type ModelOptions, type StepOutputs } from './recurrent';

export interface LSTMOptions<D extends FloatDType = 'float32'> extends ModelOptions<D> {
  /**
   * 'pytorch' (the default): every LSTM weight and bias U(±1/√n), as nn.LSTM. 'paper': the
   * paper's baseline: each gate's n × n recurrent block a random orthogonal matrix, input
   * weights Glorot-uniform, biases 0 but the forget gate's, 1.
   */
  init?: 'pytorch' | 'paper';
}

/** An LSTM's parameters (and its gradients, by the same names): nn.LSTM's, and the output layer. */
export type LSTMParameters<D extends FloatDType = 'float32'> = {
  weight_ih_l0: Tensor<D>;
  weight_hh_l0: Tensor<D>;
  bias_ih_l0: Tensor<D>;
  bias_hh_l0: Tensor<D>;
  W_out: Tensor<D>;
  c: Tensor<D>;
};

export class LSTM<D extends FloatDType = 'float32'> extends RecurrentModel<D, LSTMParameters<D>> {
  protected override readonly hasCellState = true;

  /** Builds and initialises a model (`options.init`: as PyTorch does, or as the paper's baseline). */
  static async create<D extends FloatDType = 'float32'>(options: LSTMOptions<D>): Promise<LSTM<D>> {
    const opts = readModelOptions('LSTM', options, ['init']);
    const init = checkOneOf('LSTM', 'init', opts.init ?? 'pytorch', ['pytorch', 'paper'] as const);
    const model = new LSTM<D>(opts);
    try {
      if (init === 'paper') await model.initializeAsPaper(opts.seed ?? 0);
      else await model.initialize(opts.seed ?? 0);
    } catch (err) {
      model.dispose();
      throw err;
    }
    return model;
  }

  private constructor(options: LSTMOptions<D>) {
    super('LSTM', options);
    const [n, d, k] = [this.hiddenSize, this.inputSize, this.outputSize];
    this.allocate({
      weight_ih_l0: [4 * n, d],
      weight_hh_l0: [4 * n, n],
      bias_ih_l0: [4 * n],
      bias_hh_l0: [4 * n],
      W_out: [k, n],
      c: [k],
    });
  }

  private async initialize(seed: number): Promise<void> {
    const ctx = this.context;
    const dtype: D = this.dtype;
    const a = 1 / Math.sqrt(this.hiddenSize);
    let stream = 0;
    for (const name of ['weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0']) {
      this.assign(name, ctx.rand<D>(this.tensors[name].shape, { dtype, seed: seed * 16 + 8 + stream++, low: -a, high: a }));
    }
    this.assign('W_out', glorotUniform(ctx, this.outputSize, this.hiddenSize, dtype, seed * 16 + 2));
    await ctx.sync();
  }

  /** Orthogonal recurrent blocks (gate order i, f, g, o), Glorot input weights, forget-gate bias 1. */
  private async initializeAsPaper(seed: number): Promise<void> {
    const ctx = this.context;
    const dtype: D = this.dtype;
    const n = this.hiddenSize;
    const recurrent = dtype === 'float32' ? new Float32Array(4 * n * n) : new Float64Array(4 * n * n);
    for (let gate = 0; gate < 4; gate++) {
      const q = randomOrthogonal(ctx, n, dtype, seed * 16 + 8 + gate);
      recurrent.set(await q.read(), gate * n * n);
      q.dispose();
    }
    this.assign('weight_hh_l0', ctx.tensor(recurrent, [4 * n, n]) as Tensor<D>);
    this.assign('weight_ih_l0', glorotUniform(ctx, 4 * n, this.inputSize, dtype, seed * 16 + 12));
    const bias = dtype === 'float32' ? new Float32Array(4 * n) : new Float64Array(4 * n);
    bias.fill(1, n, 2 * n);
    this.assign('bias_ih_l0', ctx.tensor(bias, [4 * n]) as Tensor<D>);
    this.assign('bias_hh_l0', ctx.zeros<D>([4 * n], { dtype }));
    this.assign('W_out', glorotUniform(ctx, this.outputSize, n, dtype, seed * 16 + 2));
    await ctx.sync();
  }

  private config(loss: 'crossEntropy' | 'mse', lastStepOnly: boolean): LstmNativeConfig {
    return { inputSize: this.inputSize, hiddenSize: this.hiddenSize, outputSize: this.outputSize, loss, lastStepOnly };
  }

  protected queueLossAndGradients(
    prepared: PreparedBatch,
    batch: SequenceBatch<D>,
    out: StepOutputs<D>,
  ): void {
    this.context.native.lstmLossAndGradients(this.workspace,
      this.config(prepared.loss, prepared.lastStepOnly),
      RecurrentModel.handles(this.tensors),
      RecurrentModel.handles({ x: batch.x, targets: batch.targets, weights: prepared.weights, h0: batch.initialState, c0: batch.initialCellState }),
      RecurrentModel.handles({ ...this.grads, loss: out.loss, hiddenGradientNorms: out.hiddenGradientNorms, h0: out.initialState, c0: out.initialCellState }),
    );
  }

  /** Inference: outputs y (T × B × k) and the final states h_T, c_T (B × n). */
  forward(
    x: Tensor<D>,
    options: { initialState?: Tensor<D>; initialCellState?: Tensor<D> } = {},
  ): { outputs: Tensor<D>; finalState: Tensor<D>; finalCellState: Tensor<D> } {
    const fn = 'forward';
    this.assertLive(fn);
    const opts = checkOptions(fn, options, ['initialState', 'initialCellState']);
    const [T, B] = this.checkForwardInput(fn, x, { initialState: opts.initialState, initialCellState: opts.initialCellState });
    const outputs = this.context.empty<D>([T, B, this.outputSize], { dtype: this.dtype });
    const finalState = this.context.empty<D>([B, this.hiddenSize], { dtype: this.dtype });
    const finalCellState = this.context.empty<D>([B, this.hiddenSize], { dtype: this.dtype });
    this.context.native.lstmForward(this.workspace, this.config('crossEntropy', false), RecurrentModel.handles(this.tensors), x.handle,
      opts.initialState?.handle ?? null, opts.initialCellState?.handle ?? null, outputs.handle, finalState.handle, finalCellState.handle,
    );
    return { outputs, finalState, finalCellState };
  }
}
