/**
 * Checkpoints as safetensors files: the model's parameters under their DESIGN names (PyTorch's
 * for the LSTM), the optimiser state as `optimizer.<parameter>.<slot>`, and in the metadata the
 * configuration, the step, the optimiser step counts, the task stream's position and the best
 * validation so far. Written atomically (temporary file, then rename).
 */
import type { StateDict } from '../models/parameters';
import { DataError } from '../errors';
import { readSafetensors, writeSafetensors, type SafetensorsEntry } from '../io/safetensors';
import type { TrainConfig } from './config';
import type { EvalRecord } from './records';

export const CHECKPOINT_FORMAT = 'orthornn-checkpoint-1';

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
}

const OPTIMIZER_PREFIX = 'optimizer.';

export function writeCheckpoint(file: string, ckpt: Checkpoint): void {
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
  writeSafetensors(file, { tensors, metadata });
}

export function readCheckpoint(file: string): Checkpoint {
  const { tensors, metadata } = readSafetensors(file);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    throw new DataError(`'${file}' is not an orthornn checkpoint (metadata format ${JSON.stringify(metadata.format)}, expected '${CHECKPOINT_FORMAT}')`);
  }
  const json = (key: string): unknown => {
    if (metadata[key] === undefined) throw new DataError(`'${file}': checkpoint metadata '${key}' is missing`);
    try {
      return JSON.parse(metadata[key]);
    } catch (err) {
      throw new DataError(`'${file}': checkpoint metadata '${key}' is not JSON (${(err as Error).message})`);
    }
  };
  const parameters: StateDict = {};
  const optimizer: Record<string, Float32Array | Float64Array> = {};
  for (const [name, { data }] of Object.entries(tensors)) {
    if (data instanceof Int32Array) throw new DataError(`'${file}': tensor '${name}' is I32; checkpoints hold F32 or F64`);
    if (name.startsWith(OPTIMIZER_PREFIX)) optimizer[name.slice(OPTIMIZER_PREFIX.length)] = data;
    else parameters[name] = data;
  }
  const step = Number(metadata.step);
  if (!Number.isSafeInteger(step) || step < 0) throw new DataError(`'${file}': checkpoint step ${JSON.stringify(metadata.step)} is not a non-negative integer`);
  return {
    config: json('config') as TrainConfig,
    step,
    parameters,
    optimizer,
    optimizerSteps: json('optimizerSteps') as Record<string, number>,
    source: json('source'),
    best: metadata.best ? (json('best') as EvalRecord) : undefined,
    seconds: Number.isFinite(Number(metadata.seconds)) ? Number(metadata.seconds) : 0,
  };
}
