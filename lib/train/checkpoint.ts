/**
 * Checkpoints as safetensors files: the model's parameters under their names (docs/math.md §3) (PyTorch's
 * for the LSTM), the optimiser state as `optimizer.<parameter>.<slot>`, and in the metadata the
 * configuration, the step, the optimiser step counts, the task stream's position and the best
 * validation so far. Written atomically (temporary file, then rename).
 *
 * A checkpoint is a file from elsewhere, so reading one checks it before anything is built from
 * it: readCheckpoint refuses malformed metadata and NaN/Inf values; checkCheckpointShapes
 * compares every tensor with the shapes the configured model has (expectedParameterShapes),
 * which bounds every allocation by the file's own size; checkOrthogonalFactors refuses U and V
 * that no training run could have produced.
 */
import { DataError, NumericError } from '../errors';
import { ElmanRNN } from '../models/elman';
import type { StateDict } from '../models/parameters';
import * as ops from '../ops';
import { readBytes, writeFileAtomic, writeFileAtomicAsync } from '../io/files';
import { decodeSafetensors, encodeSafetensors, setOwn, type SafetensorsEntry } from '../io/safetensors';
import type { TrainConfig } from './config';
import type { EvalRecord } from './records';
import type { Model } from './trainer';

export const CHECKPOINT_FORMAT = 'orthornn-checkpoint-1';

/**
 * The largest ‖MᵀM − I‖_max of U or V that a checkpoint may hold. Training re-orthonormalises
 * far below it (at 1e-4 by default), so a file above it did not come from a training run.
 */
export const ORTHOGONALITY_LIMIT = 1e-2;

export interface Checkpoint {
  config: TrainConfig;
  step: number;
  parameters: StateDict;
  /** Optimiser state by `<parameter>.<slot>`. */
  optimizer: Record<string, Float32Array | Float64Array>;
  /** Steps taken per optimiser group. */
  optimizerSteps: Record<string, number>;
  /** The task stream's position (JSON). */
  source: unknown;
  best?: EvalRecord;
  /** Seconds of training so far (resumed runs continue the clock). */
  seconds?: number;
  /** Parameter shapes by name (stored with the tensors; flat vectors without them). */
  shapes?: Record<string, readonly number[]>;
  /** The optimiser slots' shapes by `<parameter>.<slot>`, as read from a file. */
  optimizerShapes?: Record<string, readonly number[]>;
}

const OPTIMIZER_PREFIX = 'optimizer.';

/** The slots each optimiser keeps per parameter (lib/optim/optimizers.ts). */
const SLOTS: Record<TrainConfig['optimizer'], readonly string[]> = {
  rmsprop: ['square_avg'],
  adam: ['exp_avg', 'exp_avg_sq'],
  sgd: ['momentum_buffer'],
};

/** Writes a checkpoint atomically (see writeFileAtomic), blocking until it is on the disk. */
export function writeCheckpoint(file: string, ckpt: Checkpoint): void {
  writeFileAtomic(file, encodeCheckpoint(ckpt));
}

/** The same, with the file written and flushed off the JS thread. */
export function writeCheckpointAsync(file: string, ckpt: Checkpoint): Promise<void> {
  return writeFileAtomicAsync(file, encodeCheckpoint(ckpt));
}

/** A checkpoint's safetensors bytes. */
export function encodeCheckpoint(ckpt: Checkpoint): Buffer {
  const tensors: Record<string, SafetensorsEntry> = {};
  const shape = (param: string, data: ArrayLike<number>) => [...(ckpt.shapes?.[param] ?? [data.length])];
  for (const [name, data] of Object.entries(ckpt.parameters)) tensors[name] = { data, shape: shape(name, data) };
  // Optimiser slots are shaped like their parameter: '<parameter>.<slot>'.
  for (const [name, data] of Object.entries(ckpt.optimizer)) tensors[OPTIMIZER_PREFIX + name] = { data, shape: shape(name.slice(0, name.lastIndexOf('.')), data) };
  const metadata: Record<string, string> = {
    format: CHECKPOINT_FORMAT,
    config: JSON.stringify(ckpt.config),
    step: String(ckpt.step),
    seconds: String(ckpt.seconds ?? 0),
    optimizerSteps: JSON.stringify(ckpt.optimizerSteps),
    source: JSON.stringify(ckpt.source ?? null),
  };
  if (ckpt.best) metadata.best = JSON.stringify(ckpt.best);
  return encodeSafetensors({ tensors, metadata });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Reads and checks a checkpoint file: its format, its metadata (the config an object, the
 * step and the optimiser step counts non-negative integers), F32/F64 tensors only, and no
 * NaN or Inf anywhere. Every failure is a DataError naming the file.
 */
export function readCheckpoint(file: string): Checkpoint {
  return decodeCheckpoint(readBytes(file), file);
}

/** readCheckpoint of a file's bytes; `file` names it in errors. */
export function decodeCheckpoint(bytes: Uint8Array, file: string): Checkpoint {
  const { tensors, metadata } = decodeSafetensors(bytes, file);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new DataError(`'${file}' is not an orthornn checkpoint (metadata format ${JSON.stringify(metadata.format) ?? 'missing'}, expected '${CHECKPOINT_FORMAT}')`);
  }
  const json = (key: string): unknown => {
    if (!Object.hasOwn(metadata, key)) throw new DataError(`'${file}': checkpoint metadata '${key}' is missing`);
    try {
      return JSON.parse(metadata[key]);
    } catch (err) {
      throw new DataError(`'${file}': checkpoint metadata '${key}' is not JSON (${(err as Error).message})`);
    }
  };
  const parameters: StateDict = {};
  const optimizer: Record<string, Float32Array | Float64Array> = {};
  const shapes: Record<string, readonly number[]> = {};
  const optimizerShapes: Record<string, readonly number[]> = {};
  for (const [name, { data, shape }] of Object.entries(tensors)) {
    if (!(data instanceof Float32Array || data instanceof Float64Array)) throw new DataError(`'${file}': tensor '${name}' is I32; checkpoints hold F32 or F64`);
    for (let i = 0; i < data.length; i++) {
      if (!Number.isFinite(data[i])) throw new DataError(`'${file}': tensor '${name}' holds ${data[i]} at index ${i}; checkpoints hold finite values only`);
    }
    if (name.startsWith(OPTIMIZER_PREFIX)) {
      const key = name.slice(OPTIMIZER_PREFIX.length);
      setOwn(optimizer, key, data);
      setOwn(optimizerShapes, key, shape);
    } else {
      setOwn(parameters, name, data);
      setOwn(shapes, name, shape);
    }
  }
  const step = Number(metadata.step);
  if (!/^\d+$/.test(metadata.step ?? '') || !Number.isSafeInteger(step)) throw new DataError(`'${file}': checkpoint step ${JSON.stringify(metadata.step) ?? 'missing'} is not a non-negative integer`);
  const config = json('config');
  if (!isRecord(config)) throw new DataError(`'${file}': checkpoint metadata 'config' is not a JSON object`);
  const optimizerSteps = json('optimizerSteps');
  if (!isRecord(optimizerSteps) || !Object.values(optimizerSteps).every((v) => Number.isSafeInteger(v) && (v as number) >= 0)) {
    throw new DataError(`'${file}': checkpoint metadata 'optimizerSteps' is not an object of non-negative integers`);
  }
  let best: EvalRecord | undefined;
  if (metadata.best !== undefined) {
    const value = json('best');
    if (!isRecord(value)) throw new DataError(`'${file}': checkpoint metadata 'best' is not a JSON object`);
    best = value as unknown as EvalRecord;
  }
  const seconds = Number(metadata.seconds);
  return {
    config: config as unknown as TrainConfig,
    step,
    parameters,
    optimizer,
    optimizerSteps: optimizerSteps as Record<string, number>,
    source: json('source'),
    best,
    seconds: Number.isFinite(seconds) && seconds >= 0 ? seconds : 0,
    shapes,
    optimizerShapes,
  };
}

/**
 * The shape of every parameter of the model that `createModel` builds for `config` on a task
 * with these input and output sizes, by name, in the model's order.
 */
export function expectedParameterShapes(config: TrainConfig, inputSize: number, outputSize: number): Record<string, number[]> {
  const [n, d, k] = [config.hidden, inputSize, outputSize];
  if (config.model === 'lstm') {
    return { weight_ih_l0: [4 * n, d], weight_hh_l0: [4 * n, n], bias_ih_l0: [4 * n], bias_hh_l0: [4 * n], W_out: [k, n], c: [k] };
  }
  const shapes: Record<string, number[]> = { W_in: [n, d], b: [n] };
  if (config.model === 'svd') Object.assign(shapes, { U: [n, n], V: [n, n], p: [n] });
  else shapes.W = [n, n];
  Object.assign(shapes, { W_out: [k, n], c: [k] });
  if (config.learnH0) shapes.h0 = [n];
  return shapes;
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Refuses a checkpoint whose tensors are not exactly the model's: every expected parameter
 * present with exactly its shape (a flat [160] is not a [16, 10]), no unknown parameter, and
 * every optimiser slot `<parameter>.<slot>` of a known parameter and slot, shaped like the
 * parameter; all in the dtype of the checkpoint's config. The DataError names the file, the
 * tensor and both shapes.
 */
export function checkCheckpointShapes(file: string, ckpt: Checkpoint, expected: Record<string, readonly number[]>): void {
  const found = (name: string, data: ArrayLike<number>, stored?: Record<string, readonly number[]>) =>
    stored && Object.hasOwn(stored, name) ? stored[name] : [data.length];
  // A training run writes every tensor in its model's dtype.
  const dtype = ckpt.config?.dtype;
  const Expected = dtype === 'float64' ? Float64Array : dtype === 'float32' ? Float32Array : undefined;
  const checkDtype = (tensor: string, data: Float32Array | Float64Array) => {
    if (Expected && !(data instanceof Expected)) {
      throw new DataError(`'${file}': tensor '${tensor}' is ${data instanceof Float64Array ? 'F64' : 'F32'}, but the checkpoint's config says dtype ${dtype}`);
    }
  };
  for (const [name, shape] of Object.entries(expected)) {
    if (!Object.hasOwn(ckpt.parameters, name)) throw new DataError(`'${file}': parameter '${name}' ${shapeText(shape)} is missing`);
    const data = ckpt.parameters[name];
    checkDtype(name, data);
    const has = found(name, data, ckpt.shapes);
    const size = shape.reduce((a, b) => a * b, 1);
    if (!sameShape(has, shape) || data.length !== size) {
      throw new DataError(`'${file}': parameter '${name}' has shape ${shapeText(has)} (${data.length} values), expected ${shapeText(shape)}`);
    }
  }
  for (const name of Object.keys(ckpt.parameters)) {
    if (!Object.hasOwn(expected, name)) {
      throw new DataError(`'${file}': unknown parameter ${JSON.stringify(name)} (the model has ${Object.keys(expected).map((n) => `'${n}'`).join(', ')})`);
    }
  }
  const optimizer = ckpt.config && Object.hasOwn(SLOTS, ckpt.config.optimizer) ? ckpt.config.optimizer : undefined;
  const slots = optimizer ? SLOTS[optimizer] : Object.values(SLOTS).flat();
  for (const [key, data] of Object.entries(ckpt.optimizer)) {
    const cut = key.lastIndexOf('.');
    const param = key.slice(0, cut), slot = key.slice(cut + 1);
    const tensor = `${OPTIMIZER_PREFIX}${key}`;
    if (cut < 0 || !Object.hasOwn(expected, param)) throw new DataError(`'${file}': optimiser state '${tensor}' belongs to no parameter of the model`);
    if (!slots.includes(slot)) throw new DataError(`'${file}': optimiser state '${tensor}' is not a slot of ${optimizer ?? 'any optimiser'} (${slots.join(', ')})`);
    checkDtype(tensor, data);
    const has = found(key, data, ckpt.optimizerShapes);
    const shape = expected[param];
    if (!sameShape(has, shape) || data.length !== shape.reduce((a, b) => a * b, 1)) {
      throw new DataError(`'${file}': optimiser state '${tensor}' has shape ${shapeText(has)} (${data.length} values), expected ${shapeText(shape)} like '${param}'`);
    }
  }
}

/**
 * Refuses an svd ElmanRNN whose U or V is not orthogonal: ‖MᵀM − I‖_max above
 * ORTHOGONALITY_LIMIT (or NaN) is a NumericError naming the file and the factor. Other models
 * have nothing to check.
 */
export async function checkOrthogonalFactors(model: Model, file: string): Promise<void> {
  if (!(model instanceof ElmanRNN) || model.recurrent !== 'svd') return;
  for (const name of ['U', 'V'] as const) {
    const e = ops.orthogonalityError(model.parametersByName[name]!);
    let error: number;
    try {
      error = await e.item();
    } finally {
      e.dispose();
    }
    if (!(error <= ORTHOGONALITY_LIMIT)) {
      throw new NumericError(
        `'${file}': the factor ${name} is not orthogonal: ‖${name}ᵀ${name} − I‖_max = ${error.toPrecision(3)} > ${ORTHOGONALITY_LIMIT} (training keeps it below its re-orthonormalisation tolerance)`,
      );
    }
  }
}
