/**
 * Model files: one safetensors file per model, the parameters under their names (docs/math.md §3)
 * (PyTorch's for the LSTM) with their shapes, and the architecture in the metadata, so that
 * `loadModel(file)` rebuilds the model in one call.
 *
 * Metadata (every value a string, as safetensors requires):
 *   format        'orthornn-model-1'
 *   model         'elman' or 'lstm'
 *   dtype         'float32' or 'float64' (every tensor is stored in it)
 *   inputSize, hiddenSize, outputSize
 *   elman only:   recurrent ('svd' | 'plain' | 'penalty'), activation, init, learnH0,
 *                 clipPreactivation, margin and spectrumPrior (svd), penalty (penalty)
 *   derived       a JSON object naming the tensors computed from the others, and how
 * An svd model's file also holds its materialised recurrent matrix `W` = U diag(s) Vᵀ (n × n),
 * for readers that do not know the parameterisation; it is listed under `derived`, and
 * loadModel recomputes it and refuses a file whose stored W disagrees.
 *
 * loadModel also reads a training checkpoint (`last.safetensors`, `best.safetensors`): the
 * architecture then comes from its config, the input and output sizes from its tensors.
 *
 * A file may come from anywhere, so loadModel checks everything it says before it allocates
 * anything of the model's size: the metadata's values and bounds, every tensor's name, dtype
 * and shape against the architecture, and that no value is NaN or Inf. Once the model is
 * built, U and V must be orthogonal (‖MᵀM − I‖_max ≤ 1e-2). Every refusal is a DataError
 * naming the file.
 */
import type { Context } from '../context';
import { DataError, rangeError, show, typeError } from '../errors';
import { fileError, readBytes } from '../io/files';
import { decodeSafetensors, writeSafetensors, type SafetensorsEntry } from '../io/safetensors';
import type { Activation, FloatDType } from '../native';
import type { Tensor } from '../tensor';
import { CHECKPOINT_FORMAT, checkCheckpointShapes, checkOrthogonalFactors, decodeCheckpoint, expectedParameterShapes } from '../train/checkpoint';
import { OPTIONS, resolveConfig, type TrainConfig } from '../train/config';
import { checkContext, checkOptions } from '../validate';
import { ElmanRNN, type RecurrentKind } from './elman';
import type { InitScheme } from './init';
import { LSTM } from './lstm';
import type { StateDict } from './parameters';
import type { RecurrentModel } from './recurrent';

export const MODEL_FORMAT = 'orthornn-model-1';

/** A model that loadModel returns. */
export type LoadedModel = ElmanRNN<FloatDType> | LSTM<FloatDType>;

export interface LoadModelOptions {
  /** The context to build the model on (default: the shared context of `device`). */
  context?: Context;
  /** Default 'cpu'; omitted when a context is given. */
  device?: string;
}

/** The architecture a file describes: everything needed to build the model. */
export interface ModelArchitecture {
  model: 'elman' | 'lstm';
  dtype: FloatDType;
  inputSize: number;
  hiddenSize: number;
  outputSize: number;
  /** The ElmanRNN's options (absent for the LSTM). */
  elman?: {
    recurrent: RecurrentKind;
    activation: Activation;
    init: InitScheme;
    learnH0: boolean;
    margin: number;
    penalty: number;
    spectrumPrior: number;
    clipPreactivation: number;
  };
}

/** The largest input or output size a file may declare (a vocabulary of a million symbols). */
export const MAX_FEATURES = 1 << 20;
/** The largest hidden size, as for training (lib/train/config.ts). */
export const MAX_HIDDEN = OPTIONS.hidden.max!;

const RECURRENT_MATRIX = 'U diag(s) Vᵀ with s = max(0, 1 + margin·(2σ(p) − 1)), the recurrent matrix; recomputed on load';

/** Parameter shapes by name, in the model's order. */
function parameterShapes(arch: ModelArchitecture): Record<string, number[]> {
  const [n, d, k] = [arch.hiddenSize, arch.inputSize, arch.outputSize];
  if (arch.model === 'lstm') return { weight_ih_l0: [4 * n, d], weight_hh_l0: [4 * n, n], bias_ih_l0: [4 * n], bias_hh_l0: [4 * n], W_out: [k, n], c: [k] };
  const shapes: Record<string, number[]> = { W_in: [n, d], b: [n] };
  if (arch.elman!.recurrent === 'svd') Object.assign(shapes, { U: [n, n], V: [n, n], p: [n] });
  else shapes.W = [n, n];
  Object.assign(shapes, { W_out: [k, n], c: [k] });
  if (arch.elman!.learnH0) shapes.h0 = [n];
  return shapes;
}

/** The architecture of a live model. */
export function architectureOf(model: LoadedModel): ModelArchitecture {
  const sizes = { dtype: model.dtype, inputSize: model.inputSize, hiddenSize: model.hiddenSize, outputSize: model.outputSize };
  if (model instanceof LSTM) return { model: 'lstm', ...sizes };
  const { recurrent, activation, init, learnH0, margin, penalty, spectrumPrior, clipPreactivation } = model;
  return { model: 'elman', ...sizes, elman: { recurrent, activation, init, learnH0, margin, penalty, spectrumPrior, clipPreactivation } };
}

function metadataOf(arch: ModelArchitecture): Record<string, string> {
  const metadata: Record<string, string> = {
    format: MODEL_FORMAT,
    model: arch.model,
    dtype: arch.dtype,
    inputSize: String(arch.inputSize),
    hiddenSize: String(arch.hiddenSize),
    outputSize: String(arch.outputSize),
  };
  const e = arch.elman;
  if (e) {
    Object.assign(metadata, { recurrent: e.recurrent, activation: e.activation, init: e.init, learnH0: String(e.learnH0), clipPreactivation: String(e.clipPreactivation) });
    if (e.recurrent === 'svd') Object.assign(metadata, { margin: String(e.margin), spectrumPrior: String(e.spectrumPrior), derived: JSON.stringify({ W: RECURRENT_MATRIX }) });
    if (e.recurrent === 'penalty') metadata.penalty = String(e.penalty);
  }
  return metadata;
}

/**
 * Writes `model` to `file` (safetensors, atomically: a reader sees the old file or the whole
 * new one): its parameters, an svd model's materialised W, and its architecture.
 * RecurrentModel.save(file) calls this.
 */
export async function saveModel(model: RecurrentModel<FloatDType, object>, file: string): Promise<void> {
  const fn = 'save';
  if (typeof file !== 'string' || file === '') throw typeError(fn, 'file', 'a non-empty string', file);
  if (!(model instanceof ElmanRNN || model instanceof LSTM)) throw typeError(fn, 'model', 'an ElmanRNN or LSTM', model);
  const arch = architectureOf(model);
  const state = await model.state();
  const tensors: Record<string, SafetensorsEntry> = {};
  for (const [name, data] of Object.entries(state)) tensors[name] = { data, shape: [...model.parametersByName[name]!.shape] };
  if (model instanceof ElmanRNN && model.recurrent === 'svd') {
    const w = model.recurrentMatrix();
    try {
      tensors.W = { data: (await w.read()) as Float32Array | Float64Array, shape: [model.hiddenSize, model.hiddenSize] };
    } finally {
      w.dispose();
    }
  }
  writeSafetensors(file, { tensors, metadata: metadataOf(arch) });
}

/** The metadata's `format`, read from the header alone; undefined when there is none to read. */
function formatOf(bytes: Buffer): string | undefined {
  try {
    if (bytes.length < 8) return undefined;
    const length = bytes.readBigUInt64LE(0);
    if (length > BigInt(bytes.length - 8)) return undefined;
    const header = JSON.parse(bytes.subarray(8, 8 + Number(length)).toString('utf8')) as { __metadata__?: { format?: unknown } };
    const format = header?.__metadata__?.format;
    return typeof format === 'string' ? format : undefined;
  } catch {
    // decodeSafetensors says what is wrong.
    return undefined;
  }
}

/**
 * Reads `file` and checks it, allocating nothing of the model's size: an orthornn model file
 * or a training checkpoint. Returns the architecture and the parameters by name (plus the
 * stored W, when the file holds one as a derived tensor).
 */
export function readModelFile(file: string): { architecture: ModelArchitecture; parameters: StateDict; derivedW?: Float32Array | Float64Array } {
  if (typeof file !== 'string' || file === '') throw typeError('loadModel', 'file', 'a non-empty string', file);
  const bytes = readBytes(file);
  const format = formatOf(bytes);
  if (format === CHECKPOINT_FORMAT) return readCheckpointModel(bytes, file);
  const { tensors, metadata } = decodeSafetensors(bytes, file);
  if (metadata.format !== MODEL_FORMAT) {
    throw new DataError(`'${file}' is neither an orthornn model file nor a checkpoint (metadata format ${JSON.stringify(metadata.format) ?? 'missing'}, expected '${MODEL_FORMAT}' or '${CHECKPOINT_FORMAT}')`);
  }
  const architecture = architectureFromMetadata(file, metadata);
  const expected = parameterShapes(architecture);
  const derived: Record<string, number[]> = architecture.elman?.recurrent === 'svd' ? { W: [architecture.hiddenSize, architecture.hiddenSize] } : {};
  const Expected = architecture.dtype === 'float64' ? Float64Array : Float32Array;
  for (const name of Object.keys(tensors)) {
    if (!Object.hasOwn(expected, name) && !Object.hasOwn(derived, name)) {
      throw new DataError(`'${file}': unknown tensor ${JSON.stringify(name)} (the model has ${[...Object.keys(expected), ...Object.keys(derived)].map((n) => `'${n}'`).join(', ')})`);
    }
  }
  const parameters: StateDict = {};
  let derivedW: Float32Array | Float64Array | undefined;
  for (const [name, shape] of [...Object.entries(expected), ...Object.entries(derived)]) {
    const isDerived = !Object.hasOwn(expected, name);
    if (!Object.hasOwn(tensors, name)) {
      if (isDerived) continue;
      throw new DataError(`'${file}': parameter '${name}' ${shapeText(shape)} is missing`);
    }
    const { data, shape: has } = tensors[name];
    if (!(data instanceof Expected)) throw new DataError(`'${file}': tensor '${name}' is ${dtypeName(data)}, but the metadata says dtype ${architecture.dtype}`);
    if (has.length !== shape.length || has.some((v, i) => v !== shape[i])) {
      throw new DataError(`'${file}': tensor '${name}' has shape ${shapeText(has)}, expected ${shapeText(shape)} (${describeSizes(architecture)})`);
    }
    checkFiniteValues(file, name, data);
    if (isDerived) derivedW = data;
    else parameters[name] = data;
  }
  return { architecture, parameters, derivedW };
}

/** A checkpoint's model: its config (checked as training checks it) and its parameters. */
function readCheckpointModel(bytes: Buffer, file: string): { architecture: ModelArchitecture; parameters: StateDict } {
  const ckpt = decodeCheckpoint(bytes, file);
  let config: TrainConfig;
  try {
    config = resolveConfig(ckpt.config, { stored: true });
  } catch (err) {
    throw fileError(`'${file}' holds a config that orthornn refuses`, err);
  }
  // The input and output sizes are not in the config (the task sets them): the first and
  // output layers' shapes give them, and checkCheckpointShapes then checks every tensor.
  const first = config.model === 'lstm' ? 'weight_ih_l0' : 'W_in';
  const sizeFrom = (name: string, axis: number, max: number): number => {
    const shape = ckpt.shapes?.[name];
    if (!Object.hasOwn(ckpt.parameters, name) || !shape) throw new DataError(`'${file}': parameter '${name}' is missing`);
    const v = shape[axis];
    if (shape.length !== 2 || !Number.isSafeInteger(v) || v < 1 || v > max) throw new DataError(`'${file}': parameter '${name}' has shape ${shapeText(shape)}, which gives no size in [1, ${max}]`);
    return v;
  };
  const inputSize = sizeFrom(first, 1, MAX_FEATURES);
  const outputSize = sizeFrom('W_out', 0, MAX_FEATURES);
  checkCheckpointShapes(file, ckpt, expectedParameterShapes(config, inputSize, outputSize));
  const sizes = { dtype: config.dtype, inputSize, hiddenSize: config.hidden, outputSize };
  if (config.model === 'lstm') return { architecture: { model: 'lstm', ...sizes }, parameters: ckpt.parameters };
  const svd = config.model === 'svd';
  const elman = {
    recurrent: config.model,
    activation: config.activation,
    init: config.init,
    learnH0: config.learnH0,
    margin: svd ? config.margin : 0,
    penalty: config.model === 'penalty' ? config.penalty : 0,
    spectrumPrior: svd ? config.spectrumPrior : 0,
    clipPreactivation: config.clipPreactivation,
  };
  return { architecture: { model: 'elman', ...sizes, elman }, parameters: ckpt.parameters };
}

/**
 * A model of this architecture (its parameters freshly initialised), on `where`'s context or
 * device. The architecture is trusted: one read from a file is checked by readModelFile.
 */
export async function modelOf(arch: ModelArchitecture, where: { context?: Context; device?: string } = {}): Promise<LoadedModel> {
  const sizes = { inputSize: arch.inputSize, hiddenSize: arch.hiddenSize, outputSize: arch.outputSize, dtype: arch.dtype, ...where };
  if (arch.model === 'lstm') return LSTM.create<FloatDType>(sizes);
  const e = arch.elman!;
  return ElmanRNN.create<FloatDType>({
    ...sizes,
    recurrent: e.recurrent,
    activation: e.activation,
    init: e.init,
    learnH0: e.learnH0,
    clipPreactivation: e.clipPreactivation,
    ...(e.recurrent === 'svd' ? { margin: e.margin, spectrumPrior: e.spectrumPrior } : {}),
    ...(e.recurrent === 'penalty' ? { penalty: e.penalty } : {}),
  });
}

/**
 * Reads a model file written by `model.save(file)`, or a training checkpoint (last or best
 * safetensors of a run folder), and builds the model it holds on `context` (or `device`'s
 * shared context). See the top of this file for what is checked; every refusal is a DataError.
 */
export async function loadModel(file: string, options: LoadModelOptions = {}): Promise<LoadedModel> {
  const fn = 'loadModel';
  const opts = checkOptions(fn, options, ['context', 'device']);
  if (opts.context !== undefined) checkContext(fn, 'options.context', opts.context);
  if (opts.context !== undefined && opts.device !== undefined) throw rangeError(fn, 'options.device', 'omitted when a context is given', show(opts.device));
  const { architecture: arch, parameters, derivedW } = readModelFile(file);
  const model = await modelOf(arch, opts.context !== undefined ? { context: opts.context } : opts.device !== undefined ? { device: opts.device } : {});
  try {
    model.loadState(parameters);
    if (model instanceof ElmanRNN && model.recurrent === 'svd') {
      await checkOrthogonalFactors(model, file);
      if (derivedW) await checkDerivedW(model, derivedW, file);
    }
  } catch (err) {
    model.dispose();
    throw err;
  }
  return model;
}

/**
 * The stored W against U diag(s) Vᵀ recomputed here: equal up to the rounding of the product
 * (another backend may sum in another order), which is far below the tolerance.
 */
async function checkDerivedW(model: ElmanRNN<FloatDType>, stored: Float32Array | Float64Array, file: string): Promise<void> {
  const w: Tensor<FloatDType> = model.recurrentMatrix();
  let values: ArrayLike<number>;
  try {
    values = await w.read();
  } finally {
    w.dispose();
  }
  const tolerance = (model.dtype === 'float32' ? 1e-3 : 1e-9) * (1 + model.margin);
  let worst = 0, at = 0;
  for (let i = 0; i < stored.length; i++) {
    const diff = Math.abs(stored[i] - values[i]);
    if (diff > worst) [worst, at] = [diff, i];
  }
  if (worst > tolerance) {
    const n = model.hiddenSize;
    throw new DataError(
      `'${file}': the stored W is not U diag(s) Vᵀ of the stored factors (|ΔW| = ${worst.toPrecision(3)} at [${Math.floor(at / n)}, ${at % n}]); W is derived, so edit U, V and p instead`,
    );
  }
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;
const dtypeName = (data: ArrayLike<number>) => (data instanceof Float64Array ? 'F64' : data instanceof Float32Array ? 'F32' : 'I32');

function describeSizes(arch: ModelArchitecture): string {
  return `inputSize ${arch.inputSize}, hiddenSize ${arch.hiddenSize}, outputSize ${arch.outputSize}${arch.elman ? `, recurrent '${arch.elman.recurrent}'` : ''}`;
}

function checkFiniteValues(file: string, name: string, data: Float32Array | Float64Array): void {
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) throw new DataError(`'${file}': tensor '${name}' holds ${data[i]} at index ${i}; model files hold finite values only`);
  }
}

/** The architecture in a model file's metadata, every value checked. */
function architectureFromMetadata(file: string, metadata: Record<string, string>): ModelArchitecture {
  const bad = (key: string, expected: string) =>
    new DataError(`'${file}': metadata '${key}' must be ${expected}, got ${Object.hasOwn(metadata, key) ? JSON.stringify(metadata[key]) : 'nothing'}`);
  const has = (key: string) => Object.hasOwn(metadata, key);
  const oneOf = <S extends string>(key: string, values: readonly S[], fallback?: S): S => {
    if (!has(key) && fallback !== undefined) return fallback;
    if (!values.includes(metadata[key] as S)) throw bad(key, `one of ${values.map((v) => `'${v}'`).join(', ')}`);
    return metadata[key] as S;
  };
  const integer = (key: string, max: number): number => {
    const text = metadata[key];
    if (!has(key) || !/^[1-9]\d{0,15}$/.test(text) || Number(text) > max) throw bad(key, `an integer in [1, ${max}]`);
    return Number(text);
  };
  const number = (key: string, max: number, fallback?: number): number => {
    if (!has(key) && fallback !== undefined) return fallback;
    const text = metadata[key];
    const v = Number(text);
    if (!has(key) || !/^(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(text) || !(v >= 0 && v <= max)) throw bad(key, `a number in [0, ${max}]`);
    return v;
  };
  const flag = (key: string, fallback: boolean): boolean => {
    if (!has(key)) return fallback;
    if (metadata[key] !== 'true' && metadata[key] !== 'false') throw bad(key, "'true' or 'false'");
    return metadata[key] === 'true';
  };
  const absent = (key: string, why: string) => {
    if (has(key)) throw new DataError(`'${file}': metadata '${key}' is given only ${why}`);
  };

  const model = oneOf('model', ['elman', 'lstm'] as const);
  const arch: ModelArchitecture = {
    model,
    dtype: oneOf('dtype', ['float32', 'float64'] as const),
    inputSize: integer('inputSize', MAX_FEATURES),
    hiddenSize: integer('hiddenSize', MAX_HIDDEN),
    outputSize: integer('outputSize', MAX_FEATURES),
  };
  const elmanKeys = ['recurrent', 'activation', 'init', 'learnH0', 'clipPreactivation', 'margin', 'spectrumPrior', 'penalty', 'derived'];
  if (model === 'lstm') {
    for (const key of elmanKeys) absent(key, "for model 'elman'");
    return arch;
  }
  const recurrent = oneOf('recurrent', ['svd', 'plain', 'penalty'] as const);
  if (recurrent !== 'svd') for (const key of ['margin', 'spectrumPrior', 'derived']) absent(key, "with recurrent 'svd'");
  if (recurrent !== 'penalty') absent('penalty', "with recurrent 'penalty'");
  if (recurrent === 'svd') {
    let derived: unknown;
    try {
      derived = JSON.parse(metadata.derived ?? '{}');
    } catch {
      derived = undefined;
    }
    const keys = derived !== null && typeof derived === 'object' && !Array.isArray(derived) ? Object.keys(derived) : undefined;
    if (!keys || keys.some((k) => k !== 'W')) throw bad('derived', "a JSON object whose only key is 'W'");
  }
  arch.elman = {
    recurrent,
    activation: oneOf('activation', ['tanh', 'relu', 'identity'] as const),
    init: oneOf('init', ['orthogonal', 'identity', 'glorot'] as const, 'orthogonal'),
    learnH0: flag('learnH0', false),
    margin: recurrent === 'svd' ? number('margin', OPTIONS.margin.max!) : 0,
    penalty: recurrent === 'penalty' ? number('penalty', OPTIONS.penalty.max!) : 0,
    spectrumPrior: recurrent === 'svd' ? number('spectrumPrior', OPTIONS.spectrumPrior.max!, 0) : 0,
    clipPreactivation: number('clipPreactivation', OPTIONS.clipPreactivation.max!, 0),
  };
  return arch;
}
