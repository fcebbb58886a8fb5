/**
 * The training loop (docs/math.md §5): batches from a task source, each taken by the training
 * step of lib/train/step.ts (one native loss-and-gradients call, optional clipping by global
 * norm, RMSprop/Adam/SGD on the Euclidean parameters with weight decay only on weight matrices,
 * Cayley steps on U and V, the spectrum p at its own learning rate, lr / 2m by default),
 * learning-rate schedules, re-orthonormalisation
 * when rounding drift passes a tolerance, validation with best-weight tracking, test metrics
 * on the best weights, metrics records and resumable checkpoints in a run folder.
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { totalmem } from 'node:os';
import path from 'node:path';
import { Context, defaultContext } from '../context';
import { DataError, rangeError, typeError } from '../errors';
import { fileError, removeStaleTemporaries, writeFileAtomic } from '../io/files';
import { ElmanRNN } from '../models/elman';
import { LSTM } from '../models/lstm';
import type { StateDict } from '../models/parameters';
import type { FloatDType } from '../native';
import * as ops from '../ops';
import type { Optimizer } from '../optim/optimizers';
import type { Tensor } from '../tensor';
import { checkBoolean, checkInteger, checkOneOf, checkOptions } from '../validate';
import { checkCheckpointShapes, checkOrthogonalFactors, expectedParameterShapes, readCheckpoint, writeCheckpointAsync, type Checkpoint } from './checkpoint';
import { GENERATED_EPOCH, resolveConfig, type TrainConfig } from './config';
import type { EvalRecord, GradientNormsRecord, RunRecord, SpectrumStats, TaskMetrics, TrainRecord } from './records';
import { createSource, MetricTotals, type EvalSplit, type HostBatch, type TaskSource } from './sources';
import { TrainingStep } from './step';

export type Model = ElmanRNN<FloatDType> | LSTM<FloatDType>;

/** Live progress for a progress bar. */
export interface Progress {
  step: number;
  totalSteps: number;
  epoch: number;
  loss: number;
  /** The latest validation. */
  valid?: EvalRecord;
}

export interface TrainHooks {
  /** After every step. */
  onStep?(progress: Progress): void;
  /** Every record, as it is written. */
  onRecord?(record: RunRecord): void;
  /**
   * Stops the run gracefully: the step in progress (with its validation, if one is due)
   * finishes, `last.safetensors` is written, and `run` resolves with `interrupted: true`
   * and without test metrics. `Trainer.resume` continues exactly where it stopped.
   */
  signal?: AbortSignal;
}

/** What Trainer.create and train take besides the configuration. */
export interface TrainerExtras {
  /** The context to train on (default: a private CPU context, or the device's shared one). */
  context?: Context;
  /**
   * Your own data (see InMemorySource, or implement TaskSource): the configuration's task is
   * then 'custom', and Trainer.resume needs the same source again.
   */
  source?: TaskSource;
  /**
   * false: no run folder. Records reach `hooks.onRecord` only, no checkpoint is written unless
   * `checkpoint(file)` is called, and the best weights are kept in memory. Default true.
   */
  runFolder?: boolean;
}

const SOURCE_MEMBERS = ['trainBatch', 'evalSize', 'evalSteps', 'evalBatch', 'score', 'state', 'restore'] as const;

/** A data source: the TaskSource members present, the sizes positive integers. */
export function checkSource(fn: string, source: unknown): TaskSource {
  const s = source as TaskSource;
  if (s === null || typeof s !== 'object' || SOURCE_MEMBERS.some((m) => typeof s[m] !== 'function')) {
    throw typeError(fn, 'extra.source', `a TaskSource (an InMemorySource, or an object with ${SOURCE_MEMBERS.join(', ')})`, source);
  }
  checkInteger(fn, 'source.inputSize', s.inputSize, 1);
  checkInteger(fn, 'source.outputSize', s.outputSize, 1);
  checkOneOf(fn, 'source.loss', s.loss, ['crossEntropy', 'mse'] as const);
  checkOneOf(fn, 'source.selectBy', s.selectBy, ['accuracy', 'loss'] as const);
  if (typeof s.name !== 'string') throw typeError(fn, 'source.name', 'a string', s.name);
  return s;
}

export interface TrainResult {
  /** The run folder ('' for a run without one). */
  runDir: string;
  steps: number;
  /** Whether a target (accuracy or loss) was reached. */
  reachedTarget: boolean;
  best?: EvalRecord;
  test?: EvalRecord;
  seconds: number;
  /** Whether `hooks.signal` stopped the run before its budget or target. */
  interrupted: boolean;
}

/**
 * @internal A fresh run's configuration resolved (Trainer.create, and each member of a
 * TrainerGroup): with a source of the user's the task is 'custom', and a run without a folder
 * names none. `arg` names the options in errors.
 */
export function resolveRunConfig(fn: string, arg: string, options: Partial<TrainConfig>, given: TaskSource | undefined, persistent: boolean): TrainConfig {
  if (given && options?.task !== undefined && options.task !== 'custom') {
    throw rangeError(fn, `${arg}.task`, "'custom' (or omitted) when a source is given", `'${options.task}'`);
  }
  const config = resolveConfig(given ? { ...options, task: 'custom' } : options);
  if (!persistent && config.out) throw rangeError(fn, `${arg}.out`, 'omitted when runFolder is false', `'${config.out}'`);
  return config;
}

/**
 * @internal The context a run trains on: the given one, else a private CPU context (which the
 * run owns and disposes), else the device's shared one.
 */
export function trainingContext(config: TrainConfig, given?: Context): { context: Context; owns: boolean } {
  if (given) return { context: given, owns: false };
  const owns = config.device === 'cpu';
  return { context: owns ? new Context() : defaultContext(config.device), owns };
}

/** Builds the model a configuration describes, on `context`. */
export async function createModel(config: TrainConfig, source: Pick<TaskSource, 'inputSize' | 'outputSize'>, context: Context): Promise<Model> {
  const common = { inputSize: source.inputSize, hiddenSize: config.hidden, outputSize: source.outputSize, dtype: config.dtype, context, seed: config.seed };
  if (config.model === 'lstm') return LSTM.create({ ...common, init: config.lstmInit });
  return ElmanRNN.create({
    ...common,
    activation: config.activation,
    recurrent: config.model,
    init: config.init,
    learnH0: config.learnH0,
    clipPreactivation: config.clipPreactivation || undefined,
    ...(config.model === 'svd' ? { margin: config.margin, spectrumPrior: config.spectrumPrior } : {}),
    ...(config.model === 'penalty' ? { penalty: config.penalty } : {}),
  });
}

/** The learning-rate factor of a schedule at `step` (counted from 1). */
export function scheduleFactor(config: TrainConfig, step: number): number {
  return config.schedule === 'step' ? config.decayRate ** Math.floor((step - 1) / config.decayEvery) : 1;
}

function spectrumStats(values: ArrayLike<number>): SpectrumStats {
  let min = Infinity, max = -Infinity, sum = 0, sq = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    min = Math.min(min, v);
    max = Math.max(max, v);
    sum += v;
    sq += v * v;
  }
  const mean = sum / values.length;
  return { min, mean, max, std: Math.sqrt(Math.max(0, sq / values.length - mean * mean)) };
}

/**
 * Evaluates a model on (a prefix of) a held-out split with forward passes, `batchSize`
 * sequences at a time, or fewer where one batch would pass either of two budgets: 64 MB of
 * activations (the hidden states with the pre-activations or gates, the inputs and outputs
 * on the device: about T × B × (hidden + input + output) values), and 2 MB of host arrays (the
 * batch's inputs and targets and the outputs read back), which become garbage after each batch
 * and which V8 collects only every few tens of MB. The metrics are summed sequence by sequence,
 * so the batch size does not change them.
 */
export async function evaluate(model: Model, source: TaskSource, split: EvalSplit, options: { batchSize: number; limit?: number }): Promise<TaskMetrics & { sequences: number }> {
  const [activationBudget, hostBudget] = [64 * 2 ** 20, 2 * 2 ** 20];
  if (!Number.isSafeInteger(options.batchSize) || options.batchSize < 1) throw rangeError('evaluate', 'batchSize', 'a positive integer', String(options.batchSize));
  const total = Math.min(source.evalSize(split), options.limit ?? Infinity);
  if (total < 1) throw rangeError('evaluate', split, 'at least one sequence', 'an empty split');
  const bytes = model.dtype === 'float64' ? 8 : 4;
  const [n, d, k] = [model.hiddenSize, source.inputSize, source.outputSize];
  const steps = Math.max(1, source.evalSteps(split));
  // Per time step of one sequence. Elman keeps h and a, the LSTM h, c and four gates. The
  // host holds the float32 inputs (and a float64 copy for float64 models), the outputs read
  // back, and the targets and mask.
  const activations = bytes * ((model instanceof LSTM ? 6 : 2) * n + d + k);
  const host = 4 * d + (bytes === 8 ? 8 * d : 0) + bytes * k + 8;
  const fits = Math.min(Math.floor(activationBudget / (steps * activations)), Math.floor(hostBudget / (steps * host)));
  const batchSize = Math.max(1, Math.min(options.batchSize, fits));
  const totals = new MetricTotals();
  for (let from = 0; from < total; from += batchSize) {
    const batch = source.evalBatch(split, from, Math.min(batchSize, total - from));
    const x = toTensor(model, batch.x, [batch.T, batch.B, source.inputSize]);
    const { outputs, ...rest } = model.forward(x);
    x.dispose();
    const y = (await outputs.read()) as Float32Array | Float64Array;
    for (const t of [outputs, ...Object.values(rest)]) t.dispose();
    source.score(batch, y, totals);
  }
  return { ...totals.metrics(source), sequences: totals.sequences };
}

/**
 * Refuses a configuration whose training step would hold more activations than half of this
 * machine's memory (about T × B × (3n + d + k) values for an Elman network, T × B × (8n + d + k)
 * for an LSTM), before anything is allocated: a typo or a hostile file is an error, not a
 * machine brought to a halt.
 */
export function checkStepMemory(config: TrainConfig, source: Pick<TaskSource, 'inputSize' | 'outputSize' | 'evalSteps'>): void {
  const T = Math.max(1, source.evalSteps('valid'));
  const perValue = config.dtype === 'float64' ? 8 : 4;
  const n = config.hidden;
  const bytes = T * config.batchSize * ((config.model === 'lstm' ? 8 : 3) * n + source.inputSize + source.outputSize) * perValue;
  const limit = totalmem() / 2;
  if (bytes > limit) {
    const gb = (b: number) => `${(b / 2 ** 30).toFixed(1)} GB`;
    throw rangeError('train', 'batchSize', `small enough that a step's activations fit in half of this machine's ${gb(totalmem())}`,
      `${config.batchSize} sequences of ${T} steps with ${n} units (about ${gb(bytes)})`);
  }
}

function toTensor(model: Model, data: Float32Array, shape: number[]): Tensor<FloatDType> {
  const values = model.dtype === 'float32' ? data : Float64Array.from(data);
  return model.context.tensor(values, shape) as Tensor<FloatDType>;
}

export class Trainer {
  readonly config: TrainConfig;
  readonly source: TaskSource;
  readonly model: Model;
  readonly runDir: string;
  /** Steps taken (restored from a checkpoint when resuming). */
  step = 0;
  /** The step training takes (its optimisers are part of the run's state). */
  private readonly training: TrainingStep;
  /** The budget in steps (epochs converted). */
  readonly totalSteps: number;
  private best?: { record: EvalRecord; state: StateDict };
  private lastValid?: EvalRecord;
  /** Whether a validation reached the configured target (the run then ends). */
  private reachedTarget = false;
  private startedAt = 0;
  /** Seconds trained before this process (a resumed run's clock goes on from there). */
  private priorSeconds = 0;
  private readonly ownsContext: boolean;

  private constructor(config: TrainConfig, source: TaskSource, model: Model, runDir: string, ownsContext: boolean) {
    this.config = config;
    this.source = source;
    this.model = model;
    this.runDir = runDir;
    this.ownsContext = ownsContext;
    this.training = new TrainingStep(config, model);
    // An epoch is a pass over the training split, or GENERATED_EPOCH batches of a generated task.
    const perEpoch = source.epochLength ? Math.floor(source.epochLength / config.batchSize) : GENERATED_EPOCH;
    this.totalSteps = config.steps || Math.max(1, Math.round(config.epochs * perEpoch));
  }

  /** A fresh run: resolves the configuration, loads the task, builds the model, creates the run folder. */
  static async create(options: Partial<TrainConfig>, extra: TrainerExtras = {}): Promise<Trainer> {
    const fn = 'Trainer.create';
    const more = checkOptions(fn, extra, ['context', 'source', 'runFolder']);
    const given = more.source === undefined ? undefined : checkSource(fn, more.source);
    const persistent = checkBoolean(fn, 'extra.runFolder', more.runFolder ?? true);
    const config = resolveRunConfig(fn, 'options', options, given, persistent);
    const runDir = persistent ? config.out || path.join('runs', `${given?.name ?? config.task}-${config.model}-${new Date().toISOString().replace(/[:.]/g, '-')}`) : '';
    return Trainer.open(config, given ?? (() => createSource(config)), runDir, more.context);
  }

  /**
   * @internal A fresh run of a resolved configuration in `runDir` ('' for none) on `source`
   * (one of its own, or one a TrainerGroup's members share): checks, builds, creates the folder.
   */
  static async open(config: TrainConfig, source: TaskSource | (() => TaskSource), runDir: string, context?: Context): Promise<Trainer> {
    const persistent = runDir !== '';
    config.out = runDir;
    const metricsFile = path.join(runDir, 'metrics.jsonl');
    if (persistent && existsSync(metricsFile) && statSync(metricsFile).size > 0) {
      throw rangeError('train', 'out', 'a new run folder (or resume this one)', `'${runDir}', which already holds a run`);
    }
    if (typeof source === 'function') source = source();
    checkStepMemory(config, source);
    const trainer = await Trainer.build(config, source, runDir, context);
    if (!persistent) return trainer;
    try {
      try {
        mkdirSync(runDir, { recursive: true });
      } catch (err) {
        throw fileError(`cannot create the run folder '${runDir}'`, err);
      }
      removeStaleTemporaries(runDir);
      writeFileAtomic(path.join(runDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
      writeFileAtomic(metricsFile, '');
    } catch (err) {
      trainer.dispose();
      throw err;
    }
    return trainer;
  }

  /** The model on its context (a private CPU context unless one is given), and the trainer; nothing leaks on failure. */
  private static async build(config: TrainConfig, source: TaskSource, runDir: string, given?: Context): Promise<Trainer> {
    const { context, owns } = trainingContext(config, given);
    try {
      return new Trainer(config, source, await createModel(config, source, context), runDir, owns);
    } catch (err) {
      if (owns) context.dispose();
      throw err;
    }
  }

  /**
   * Continues a run from its checkpoint (default `<runDir>/last.safetensors`): parameters,
   * optimiser state, step, the task's data stream and the best weights so far. The next step
   * computes exactly what the uninterrupted run computed.
   */
  static async resume(runDir: string, extra: { context?: Context; checkpoint?: string; steps?: number; source?: TaskSource } = {}): Promise<Trainer> {
    return Trainer.reopen(runDir, extra);
  }

  /**
   * @internal Trainer.resume, or with `shared` a resume on the context and the source a
   * TrainerGroup's members share (built for the first member from its configuration; the
   * source is restored again by each, all at the same step).
   */
  static async reopen(
    runDir: string,
    extra: { context?: Context; checkpoint?: string; steps?: number; source?: TaskSource },
    shared?: { context(config: TrainConfig): Context; source(config: TrainConfig): TaskSource },
  ): Promise<Trainer> {
    const fn = 'Trainer.resume';
    const more = checkOptions(fn, extra, ['context', 'checkpoint', 'steps', 'source']);
    const given = more.source === undefined ? undefined : checkSource(fn, more.source);
    const file = extra.checkpoint ?? path.join(runDir, 'last.safetensors');
    const ckpt = readCheckpoint(file);
    let config: TrainConfig;
    try {
      config = resolveConfig({ ...ckpt.config, out: runDir }, { stored: true });
    } catch (err) {
      throw fileError(`'${file}' holds a config that orthornn refuses`, err);
    }
    if (extra.steps) config = resolveConfig({ ...config, steps: extra.steps, epochs: 0 }, { stored: true });
    if (given && config.task !== 'custom') throw rangeError(fn, 'extra.source', `omitted: the run trains the built-in task '${config.task}'`, given.name);
    const source = given ?? (shared ? shared.source(config) : createSource(config));
    // Every size is checked against the file before anything of the model's size is allocated.
    const shapes = expectedParameterShapes(config, source.inputSize, source.outputSize);
    checkCheckpointShapes(file, ckpt, shapes);
    checkStepMemory(config, source);
    const trainer = await Trainer.build(config, source, runDir, more.context ?? shared?.context(config));
    try {
      if (trainer.totalSteps <= ckpt.step) {
        const given = extra.steps ? `${extra.steps} steps` : `a budget of ${trainer.totalSteps} steps`;
        throw rangeError('resume', 'steps', `more than the ${ckpt.step} steps the checkpoint has taken`, given);
      }
      trainer.restore(ckpt);
      await checkOrthogonalFactors(trainer.model, file);
      const bestFile = path.join(runDir, 'best.safetensors');
      if (ckpt.best && existsSync(bestFile)) {
        const best = readCheckpoint(bestFile);
        checkCheckpointShapes(bestFile, best, shapes);
        trainer.best = { record: ckpt.best, state: best.parameters };
      }
      removeStaleTemporaries(runDir);
      truncateMetrics(path.join(runDir, 'metrics.jsonl'), ckpt.step);
      if (extra.steps) writeFileAtomic(path.join(runDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    } catch (err) {
      trainer.dispose();
      throw err;
    }
    return trainer;
  }

  private restore(ckpt: Checkpoint): void {
    this.model.loadState(ckpt.parameters);
    for (const [name, opt] of Object.entries(this.optimizers())) {
      const steps = ckpt.optimizerSteps[name];
      if (steps === undefined) throw rangeError('resume', 'checkpoint', `optimiser state for the '${name}' group`, 'none');
      opt.loadState(ckpt.optimizer, steps);
    }
    this.source.restore(ckpt.source);
    this.step = ckpt.step;
    this.lastValid = ckpt.best;
    this.priorSeconds = ckpt.seconds ?? 0;
  }

  private optimizers(): Record<string, Optimizer<FloatDType>> {
    return this.training.optimizers();
  }

  /** Whether the run has a folder (records, checkpoints); false for `runFolder: false`. */
  get persistent(): boolean {
    return this.runDir !== '';
  }

  private record(record: RunRecord, hooks: TrainHooks): void {
    hooks.onRecord?.(record);
    if (!this.persistent) return;
    const file = path.join(this.runDir, 'metrics.jsonl');
    try {
      appendFileSync(file, `${JSON.stringify(record)}\n`);
    } catch (err) {
      throw fileError(`cannot write '${file}'`, err);
    }
  }

  private elapsed(): number {
    return this.priorSeconds + (performance.now() - this.startedAt) / 1000;
  }

  /**
   * Writes a checkpoint (by default the run folder's last.safetensors) atomically, the bytes
   * written and flushed off the JS thread.
   */
  async checkpoint(file?: string): Promise<void> {
    if (file === undefined && !this.persistent) throw rangeError('checkpoint', 'file', 'a path (the run has no folder)', 'undefined');
    file ??= path.join(this.runDir, 'last.safetensors');
    const optimizer: Record<string, Float32Array | Float64Array> = {};
    const optimizerSteps: Record<string, number> = {};
    for (const [name, opt] of Object.entries(this.optimizers())) {
      Object.assign(optimizer, await opt.state());
      optimizerSteps[name] = opt.steps;
    }
    await writeCheckpointAsync(file, {
      config: this.config,
      step: this.step,
      parameters: await this.model.state(),
      optimizer,
      optimizerSteps,
      source: this.source.state(),
      best: this.best?.record,
      seconds: this.elapsed(),
      shapes: this.shapes(),
    });
  }

  private shapes(): Record<string, readonly number[]> {
    return Object.fromEntries(Object.entries(this.model.parameters).map(([name, t]) => [name, t.shape]));
  }

  /** One training step; returns the loss. */
  async trainStep(hooks: TrainHooks = {}): Promise<number> {
    return this.stepOn(this.source.trainBatch(this.config.batchSize), hooks);
  }

  /** @internal One training step on `batch` (the source's next; a TrainerGroup draws it once for all its members). */
  async stepOn(batch: HostBatch, hooks: TrainHooks = {}): Promise<number> {
    const { config, model, source } = this;
    const step = ++this.step;
    const x = toTensor(model, batch.x, [batch.T, batch.B, source.inputSize]);
    const targetShape = source.loss === 'mse' ? [batch.B, source.outputSize] : batch.score === 'last' ? [batch.B] : [batch.T, batch.B];
    const targets =
      source.loss === 'mse'
        ? toTensor(model, batch.targets as Float32Array, targetShape)
        : model.context.tensor(batch.targets as Int32Array, targetShape);
    const logging = step % config.logEvery === 0 || step === this.totalSteps;
    const factor = scheduleFactor(config, step);
    let result;
    try {
      result = await this.training.run({ x: x as never, targets, loss: source.loss, score: batch.score, mask: batch.mask }, { factor, norm: logging });
    } finally {
      x.dispose();
      targets.dispose();
    }
    if (logging) {
      const record: TrainRecord = { type: 'train', step, epoch: source.epoch, time: this.elapsed(), loss: result.loss, lr: this.training.groups.baseLr.weights * factor, gradientNorm: result.gradientNorm };
      if (this.training.svd) {
        const errors = [model.parametersByName.U!, model.parametersByName.V!].map((m) => ops.orthogonalityError(m));
        const [u, v] = [await errors[0].item(), await errors[1].item()];
        for (const e of errors) e.dispose();
        record.orthogonality = { U: u, V: v };
        if (config.reorthTolerance > 0) {
          if (u > config.reorthTolerance) ops.reorthonormalize(model.parametersByName.U!);
          if (v > config.reorthTolerance) ops.reorthonormalize(model.parametersByName.V!);
        }
      }
      if (model instanceof ElmanRNN) record.singularValues = spectrumStats(await model.singularValues());
      this.record(record, hooks);
    }
    const normsEvery = config.gradientNormsEvery || Math.max(1, Math.floor(this.totalSteps / 100));
    if (step % normsEvery === 0 || step === 1) {
      const norms: GradientNormsRecord = { type: 'gradientNorms', step, norms: Array.from(result.hiddenGradientNorms) };
      this.record(norms, hooks);
    }
    return result.loss;
  }

  /** Validation on the configured number of sequences; tracks the best weights. */
  async validate(hooks: TrainHooks = {}): Promise<EvalRecord> {
    const { config, source } = this;
    const metrics = await evaluate(this.model, source, 'valid', { batchSize: config.evalBatchSize, limit: config.validSize || undefined });
    const record: EvalRecord = { type: 'valid', step: this.step, time: this.elapsed(), ...metrics };
    this.record(record, hooks);
    this.lastValid = record;
    const better =
      !this.best ||
      (source.selectBy === 'accuracy' ? (record.accuracy ?? 0) > (this.best.record.accuracy ?? 0) : record.loss < this.best.record.loss);
    if (better) {
      this.best = { record, state: await this.model.state() };
      if (this.persistent) await writeCheckpointAsync(path.join(this.runDir, 'best.safetensors'), {
        config: this.config, step: this.step, parameters: this.best.state, optimizer: {}, optimizerSteps: {}, source: null, shapes: this.shapes(),
      });
    }
    return record;
  }

  private reached(record: EvalRecord): boolean {
    const { targetAccuracy, targetLoss } = this.config;
    return (targetAccuracy > 0 && (record.accuracy ?? 0) >= targetAccuracy) || (targetLoss > 0 && record.loss <= targetLoss);
  }

  /** Trains to the configured budget (or a target), then tests the best weights. */
  async run(hooks: TrainHooks = {}): Promise<TrainResult> {
    this.start();
    while (!this.done && hooks.signal?.aborted !== true) {
      const loss = await this.trainStep(hooks);
      await this.afterStep(hooks);
      hooks.onStep?.({ step: this.step, totalSteps: this.totalSteps, epoch: this.source.epoch, loss, valid: this.lastValid });
    }
    return this.finish(hooks);
  }

  /** @internal The run's clock starts (run, or a TrainerGroup's run). */
  start(): void {
    this.startedAt = performance.now();
    this.reachedTarget = false;
  }

  /** @internal Whether the budget is spent or a target reached. */
  get done(): boolean {
    return this.step >= this.totalSteps || this.reachedTarget;
  }

  /** @internal After a step: the validation and the checkpoint that are due. */
  async afterStep(hooks: TrainHooks): Promise<void> {
    const { config } = this;
    const validating = this.step % config.validEvery === 0 || this.step === this.totalSteps;
    if (validating) this.reachedTarget = this.reached(await this.validate(hooks));
    const saving = config.checkpointEvery > 0 ? this.step % config.checkpointEvery === 0 : validating;
    // The last step is saved once, in finish().
    if (saving && this.persistent && !this.done && hooks.signal?.aborted !== true) await this.checkpoint();
  }

  /** @internal The end of a run (the budget, a target or a stop): the last checkpoint, then the test on the best weights. */
  async finish(hooks: TrainHooks): Promise<TrainResult> {
    const { config } = this;
    const reachedTarget = this.reachedTarget;
    if (this.persistent) await this.checkpoint();
    const interrupted = this.step < this.totalSteps && !reachedTarget;
    if (interrupted) return { runDir: this.runDir, steps: this.step, reachedTarget, best: this.best?.record, seconds: this.elapsed(), interrupted };
    let test: EvalRecord | undefined;
    if (this.best && this.source.evalSize('test') > 0) {
      // Test metrics on the best validation weights.
      this.model.loadState(this.best.state);
      const metrics = await evaluate(this.model, this.source, 'test', { batchSize: config.evalBatchSize });
      test = { type: 'test', step: this.best.record.step, time: this.elapsed(), ...metrics };
      this.record(test, hooks);
    }
    return { runDir: this.runDir, steps: this.step, reachedTarget, best: this.best?.record, test, seconds: this.elapsed(), interrupted };
  }

  get plannedSteps(): number {
    return this.totalSteps;
  }

  dispose(): void {
    this.training.dispose();
    this.model.dispose();
    if (this.ownsContext) this.model.context.dispose();
  }
}

/** Trains one configuration end to end (see Trainer). */
export async function train(options: Partial<TrainConfig>, hooks: TrainHooks = {}, extra: TrainerExtras = {}): Promise<TrainResult> {
  const trainer = await Trainer.create(options, extra);
  try {
    return await trainer.run(hooks);
  } finally {
    trainer.dispose();
  }
}

/**
 * Drops from a run's metrics.jsonl what was written after the checkpoint a run resumes from:
 * records of later steps, and test records (written when a run ends). The file then holds what
 * an uninterrupted run would have written so far. A last line cut short by a killed process
 * is dropped too; a malformed line before it is a DataError.
 */
export function truncateMetrics(file: string, step: number): void {
  if (!existsSync(file)) return;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new DataError(`cannot read '${file}': ${(err as Error).message}`);
  }
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  const kept: string[] = [];
  for (const [i, line] of lines.entries()) {
    let record: { type?: unknown; step?: unknown };
    try {
      record = JSON.parse(line);
    } catch {
      if (i === lines.length - 1) break;
      throw new DataError(`'${file}' line ${i + 1} is not a JSON record`);
    }
    if (record === null || typeof record !== 'object' || typeof record.step !== 'number') throw new DataError(`'${file}' line ${i + 1} is not a run record`);
    if (record.type !== 'test' && record.step <= step) kept.push(line);
  }
  const out = kept.map((l) => `${l}\n`).join('');
  if (out !== text) writeFileAtomic(file, out);
}
