/**
 * orthornn: recurrent networks whose recurrent matrix is kept near the orthogonal group
 * (Vorontsov et al., ICML 2017), trained natively on the CPU (OpenBLAS/LAPACKE) or an
 * NVIDIA GPU (CUDA/cuBLAS/cuSOLVER).
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
export type { ElmanRNNOptions, RecurrentKind } from './models/elman';
export { LSTM } from './models/lstm';
export type { LSTMOptions } from './models/lstm';
export type { LossAndGradients, ModelOptions } from './models/recurrent';
export type { LossKind, Scoring, SequenceBatch } from './models/batch';
export { InferenceSession } from './serve/inference';
export type { Prediction, PredictOptions, PredictOutput, SessionOptions, SessionStep } from './serve/inference';
export { createPredictor, OverloadError, Predictor } from './serve/predictor';
export type { PredictorOptions, PredictorStats, SequencePrediction, SequencePredictOptions, TrainingSource } from './serve/predictor';
export type { InitScheme } from './models/init';
export type { StateDict } from './models/parameters';
export { loadModel, readModelFile, MODEL_FORMAT } from './models/files';
export type { LoadedModel, LoadModelOptions, ModelArchitecture } from './models/files';
export { exportOnnx, encodeOnnx } from './export/onnx';
export type { OnnxExportOptions } from './export/onnx';
export { ReorthonormalizationPolicy } from './models/orthogonality';
export type { ReorthonormalizationOptions } from './models/orthogonality';
export { Adam, Optimizer, RMSprop, SGD } from './optim/optimizers';
export type { OptimizerOptions } from './optim/optimizers';
export { CopyTask } from './tasks/copy';
export type { CopyBatch } from './tasks/copy';
export { AddingTask } from './tasks/adding';
export { MnistTask, readIdx, defaultMnistDir } from './tasks/mnist';
export { PtbCharTask, bitsPerCharacter, END_OF_SENTENCE } from './tasks/ptb';
export type { PtbBatch } from './tasks/ptb';
export type { MnistBatch, MnistSplit } from './tasks/mnist';
export type { AddingBatch } from './tasks/adding';
export { TextCorpusTask } from './tasks/text';
export type { TextBatch, TextSplit } from './tasks/text';
export { train, Trainer, evaluate, createModel, scheduleFactor } from './train/trainer';
export type { Model, Progress, TrainHooks, TrainResult, TrainerExtras } from './train/trainer';
export { resolveConfig, parseOption, OPTIONS, TASKS, MODELS } from './train/config';
export type { TrainConfig, TaskName, ModelName, OptionSpec } from './train/config';
export type { RunRecord, TrainRecord, EvalRecord, GradientNormsRecord, TaskMetrics, SpectrumStats } from './train/records';
export { createSource, MetricTotals } from './train/sources';
export type { TaskSource, HostBatch, EvalSplit } from './train/sources';
export { InMemorySource } from './train/memory-source';
export type { InMemoryData, SequenceSplit } from './train/memory-source';
export { readCheckpoint, writeCheckpoint } from './train/checkpoint';
export type { Checkpoint } from './train/checkpoint';
export { readSafetensors, writeSafetensors, encodeSafetensors, decodeSafetensors } from './io/safetensors';
export type { SafetensorsFile, SafetensorsEntry } from './io/safetensors';
export { plotRun, renderSpec } from './plot/index';
export * from './errors';
export type { Activation, BackendInfo, DType, FloatDType, LaunchCounters, MemoryRecord } from './native';

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

