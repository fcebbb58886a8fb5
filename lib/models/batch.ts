/**
 * What a batch of sequences means for the loss (docs/math.md (M8)–(M9)): which (t, b) positions are
 * scored and with what weight, shared by every recurrent model.
 */
import type { Context } from '../context';
import { rangeError, typeError, typeErrorText } from '../errors';
import type { FloatDType } from '../native';
import { Tensor } from '../tensor';
import { checkOneOf, checkOptions, checkTensor, checkTypedArray, shapeStr } from '../validate';

export type LossKind = 'crossEntropy' | 'mse';
/** 'all' steps, the 'last' step only, or the positions of a T × B `mask`. */
export type Scoring = 'all' | 'last' | 'mask';

export interface SequenceBatch<D extends FloatDType = FloatDType> {
  /** Inputs, time-major: T × B × d. */
  x: Tensor<D>;
  /**
   * Cross-entropy: int32 class ids, T × B (or B when scoring the last step).
   * MSE: values of the model's dtype, T × B × k (or B × k).
   */
  targets: Tensor;
  /** Default 'crossEntropy'. */
  loss?: LossKind;
  /** Default 'all'. */
  score?: Scoring;
  /** With score 'mask': T × B non-negative weights, row-major (1 = scored, 0 = padding). */
  mask?: Float32Array | Float64Array;
  /** B × n: start from this state instead of h0 (truncated BPTT); its gradient is returned. */
  initialState?: Tensor<D>;
  /** B × n: the initial cell state of an LSTM (zeros when absent); its gradient is returned. */
  initialCellState?: Tensor<D>;
}

export interface PreparedBatch {
  /** The batch, read once. */
  batch: SequenceBatch;
  T: number;
  B: number;
  loss: LossKind;
  lastStepOnly: boolean;
  /** Per scored row: the loss is Σ weight · per-row loss, so weights hold the 1/|S| of the mean. */
  weights: Tensor;
  /** Tensors made for this call only (disposed once queued: queued work keeps its own reference). */
  temporary: Tensor[];
}

export interface BatchShape {
  context: Context;
  dtype: FloatDType;
  inputSize: number;
  outputSize: number;
  hiddenSize: number;
}

const BATCH_KEYS = ['x', 'targets', 'loss', 'score', 'mask', 'initialState', 'initialCellState'];

/** Validates a batch against a model and builds its loss weights (constant ones are cached). */
export function prepareBatch(fn: string, model: BatchShape, input: SequenceBatch, cache: Map<string, Tensor>): PreparedBatch {
  if (input === undefined) throw typeError(fn, 'batch', 'an object', input);
  const batch = checkOptions(fn, input, BATCH_KEYS, 'batch') as SequenceBatch;
  const x = checkTensor(fn, 'batch.x', batch.x);
  const targets = checkTensor(fn, 'batch.targets', batch.targets);
  if (x.context !== model.context || targets.context !== model.context) {
    throw rangeError(fn, 'batch', `tensors on the model's context (${model.context.device})`, 'tensors of another context');
  }
  const loss = checkOneOf(fn, 'batch.loss', batch.loss ?? 'crossEntropy', ['crossEntropy', 'mse'] as const);
  const score = checkOneOf(fn, 'batch.score', batch.score ?? 'all', ['all', 'last', 'mask'] as const);
  if (x.dtype !== model.dtype) throw typeErrorText(fn, 'batch.x', `a ${model.dtype} tensor like the model`, `${x.dtype} tensor`);
  if (x.shape.length !== 3 || x.shape[2] !== model.inputSize || x.shape[0] < 1 || x.shape[1] < 1) {
    throw rangeError(fn, 'batch.x', `T × B × ${model.inputSize} with T, B ≥ 1`, shapeStr(x.shape));
  }
  const [T, B] = x.shape;
  const k = model.outputSize;
  const lastStepOnly = score === 'last';
  const rows = lastStepOnly ? [B] : [T, B];
  if (loss === 'crossEntropy') {
    if (targets.dtype !== 'int32') throw typeErrorText(fn, 'batch.targets', 'an int32 tensor of class ids for cross-entropy', `${targets.dtype} tensor`);
    expectShape(fn, 'batch.targets', targets, rows);
  } else {
    if (targets.dtype !== model.dtype) throw typeErrorText(fn, 'batch.targets', `a ${model.dtype} tensor for MSE`, `${targets.dtype} tensor`);
    expectShape(fn, 'batch.targets', targets, [...rows, k]);
  }
  for (const key of ['initialState', 'initialCellState'] as const) {
    const s = batch[key];
    if (s === undefined) continue;
    checkTensor(fn, `batch.${key}`, s);
    if (s.context !== model.context) throw rangeError(fn, `batch.${key}`, `a tensor of the model's context (${model.context.device})`, s.device);
    if (s.dtype !== model.dtype) throw typeErrorText(fn, `batch.${key}`, `a ${model.dtype} tensor`, `${s.dtype} tensor`);
    expectShape(fn, `batch.${key}`, s, [B, model.hiddenSize]);
  }
  const perRow = loss === 'mse' ? 1 / k : 1; // MSE is a mean over the k outputs too
  if (score === 'mask') {
    const mask = checkTypedArray(fn, 'batch.mask', batch.mask, ['Float32Array', 'Float64Array'], " (score: 'mask')");
    if (mask.length !== T * B) throw rangeError(fn, 'batch.mask', `${T * B} values (T × B)`, `${mask.length}`);
    let total = 0;
    for (let i = 0; i < mask.length; i++) {
      const v = mask[i];
      if (!(v >= 0) || v === Infinity) throw rangeError(fn, 'batch.mask', 'finite and non-negative', `${v} at index ${i}`);
      total += v;
    }
    if (total === 0) throw rangeError(fn, 'batch.mask', 'at least one scored position', 'an all-zero mask');
    const w = model.dtype === 'float32' ? new Float32Array(T * B) : new Float64Array(T * B);
    for (let i = 0; i < w.length; i++) w[i] = (mask[i] / total) * perRow;
    const weights = model.context.tensor(w, [T * B]);
    return { batch, T, B, loss, lastStepOnly, weights, temporary: [weights] };
  }
  if (batch.mask !== undefined) throw rangeError(fn, 'batch.mask', "given only with score: 'mask'", `score '${score}'`);
  const count = lastStepOnly ? B : T * B;
  const key = `${count}:${perRow}`;
  let weights = cache.get(key);
  if (!weights || weights.disposed) {
    if (cache.size >= 8) {
      for (const t of cache.values()) t.dispose();
      cache.clear();
    }
    weights = model.context.full([count], perRow / count, { dtype: model.dtype });
    cache.set(key, weights);
  }
  return { batch, T, B, loss, lastStepOnly, weights, temporary: [] };
}

function expectShape(fn: string, arg: string, t: Tensor, shape: number[]): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) throw rangeError(fn, arg, `of shape ${shapeStr(shape)}`, shapeStr(t.shape));
}

export { Tensor };
