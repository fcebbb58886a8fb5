/**
 * orthornn: recurrent networks whose recurrent matrix is kept near the orthogonal group
 * (Vorontsov et al., ICML 2017), trained natively on the CPU (OpenBLAS/LAPACKE) or an
 * NVIDIA GPU (CUDA/cuBLAS/cuSOLVER).
 *
 * The core: contexts, tensors, ops, the models, optimisers, safetensors and errors. It loads no
 * optional package. The rest lives under subpaths:
 *   orthornn/train  the training loop, its configuration table, checkpoints, data sources and the paper's tasks
 *   orthornn/plot   figures of a run (needs vega, vega-lite and, for PNG, @resvg/resvg-js)
 *   orthornn/cli    the `orthornn` command (needs commander, cli-progress and cli-table3)
 */
import { defaultContext } from './context';
import { native, type BackendInfo, type MemoryRecord } from './native';
import { checkOptions } from './validate';

export { Context, defaultContext } from './context';
export type { ContextOptions, RandomOptions, TensorOptions } from './context';
export { Tensor } from './tensor';
export type { ArrayFor } from './tensor';
export * as ops from './ops';
export { ElmanRNN } from './models/elman';
export type { ElmanCommonParameters, ElmanFrameGradients, ElmanParameters, ElmanRNNOptions, FreeParameters, RecurrentKind, SvdParameters } from './models/elman';
export { LSTM } from './models/lstm';
export type { LSTMOptions, LSTMParameters } from './models/lstm';
export type { FrameLossAndGradients, LossAndGradients, ModelOptions } from './models/recurrent';
export type { LossKind, Scoring, SequenceBatch } from './models/batch';
export { InferenceSession } from './serve/inference';
export type { Prediction, PredictOptions, PredictOutput, SessionOptions, SessionStep } from './serve/inference';
export { createPredictor, OverloadError, Predictor } from './serve/predictor';
export type { PredictorOptions, PredictorStats, SequencePrediction, SequencePredictOptions, TrainingSource, WeightsFeed } from './serve/predictor';
export type { InitScheme } from './models/init';
export type { StateDict } from './models/parameters';
export { loadModel, modelOf, readModelFile, MODEL_FORMAT } from './models/files';
export type { LoadedModel, LoadModelOptions, ModelArchitecture } from './models/files';
export { exportOnnx, encodeOnnx } from './export/onnx';
export type { OnnxExportOptions } from './export/onnx';
export { ReorthonormalizationPolicy } from './models/orthogonality';
export type { ReorthonormalizationOptions } from './models/orthogonality';
export { Adam, Optimizer, RMSprop, SGD } from './optim/optimizers';
export type { OptimizerOptions } from './optim/optimizers';
export { readSafetensors, writeSafetensors, encodeSafetensors, decodeSafetensors } from './io/safetensors';
export type { SafetensorsFile, SafetensorsEntry } from './io/safetensors';
export * from './errors';
export type { Activation, BackendInfo, DType, FloatDType, FusedOp, LaunchCounters, MemoryRecord, NativeBuildInfo, VariantReport } from './native';
export { nativeBuild } from './native';

/** Every backend of this build: `{ name, compiled, available, device }`. */
export function backends(): BackendInfo[] {
  return native().backends();
}

/** Live tensors and bytes per device ('cpu', 'cuda:0', …); devices never used are absent. */
export function memory(): MemoryRecord[] {
  return native().memory();
}

/** Live tensors and bytes on one device (zeros when it was never used). */
export function memoryOf(device = 'cpu'): MemoryRecord {
  return memory().find((m) => m.device === device) ?? { device, tensors: 0, bytes: 0 };
}

/** A tensor on the default context of a device (default 'cpu'): see Context.tensor. */
export function tensor<A extends Float32Array | Float64Array | Int32Array>(data: A, shape: readonly number[], options: { device?: string; allowNonFinite?: boolean } = {}) {
  const { device, ...rest } = checkOptions('tensor', options, ['device', 'allowNonFinite']);
  return defaultContext(device).tensor(data, shape, rest);
}

