/**
 * Training on a worker thread of this process: `trainInBackground(config, options)`, for a
 * service that trains and serves at once.
 *
 * The run's steps get their own event loop (on the service's thread each step's turns would
 * wait behind the requests' callbacks), and by default its context is one thread at the
 * background priority (Linux: SCHED_IDLE) with the thread's event loop at niceness 19, so the
 * training takes only the cores the service leaves idle (docs/benchmarks.md, "Serving"). The
 * run posts its weights every `weightsEvery` steps (the buffers transferred, not copied again);
 * `createPredictor(training)` serves them, loading each set as it comes.
 *
 * Messages between the threads: `ToWorker` and `FromWorker` below. The worker is
 * background-worker.ts.
 */
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { DisposedError, ERROR_CLASSES, InternalError, OrthornnError, rangeError, typeError, typeErrorText, type ErrorCode } from '../errors';
import type { ModelArchitecture } from '../models/files';
import type { StateDict } from '../models/parameters';
import type { WeightsFeed } from '../serve/predictor';
import { checkBoolean, checkInteger, checkOneOf, checkOptions, readObject } from '../validate';
import type { TrainConfig } from './config';
import type { RunRecord } from './records';
import type { Progress, TrainResult } from './trainer';

export interface BackgroundOptions {
  /** The training context's device (default: the configuration's `device`, or a resumed run's). */
  device?: string;
  /** The training context's threads (default 1: the rest of the cores serve). */
  threads?: number;
  /** The training context's priority (default 'background': Linux's SCHED_IDLE). */
  priority?: 'normal' | 'background';
  /** The training thread's niceness, 0–19 (default 19; Linux; left as it is where not permitted). */
  nice?: number;
  /** Post the weights every this many steps (default 100; 0: at the start and the end only). */
  weightsEvery?: number;
  /**
   * Your own data, built on the training thread (a TaskSource cannot cross threads): the module
   * (a path, resolved from the working directory, or a package name), the name of its export
   * (default 'createSource'), a function called with `options` (anything structured clone can
   * copy) that returns a TaskSource or a promise of one.
   */
  source?: { module: string; export?: string; options?: unknown };
  /** false: no run folder (see TrainerExtras.runFolder). Default true. */
  runFolder?: boolean;
  /** Resume the run in this folder (Trainer.resume) instead of starting one; `config` is then ignored. */
  resume?: string | { runDir: string; steps?: number };
}

/** What the run says once it has started. */
export interface BackgroundStart {
  /** The run folder ('' without one). */
  runDir: string;
  plannedSteps: number;
  /** The step it starts from (0, or the checkpoint's when resuming). */
  step: number;
  /** The device it trains on. */
  device: string;
  /** The model's architecture (modelOf / a predictor builds the same model from it). */
  architecture: ModelArchitecture;
}

/** @internal The worker's setup (workerData). */
export interface WorkerSetup {
  config: Partial<TrainConfig>;
  device?: string;
  threads?: number;
  priority: 'normal' | 'background';
  nice: number;
  weightsEvery: number;
  source?: { module: string; export?: string; options?: unknown };
  runFolder: boolean;
  resume?: { runDir: string; steps?: number };
  /** Int32 [0]: the steps taken; Float64 at byte 8: the latest loss. */
  shared: SharedArrayBuffer;
}

/** @internal To the worker. */
export type ToWorker = { type: 'stop' } | { type: 'progress'; on: boolean };

/** @internal From the worker. */
export type FromWorker =
  | ({ type: 'ready' } & BackgroundStart)
  | { type: 'weights'; step: number; state: Record<string, Float32Array | Float64Array> }
  | { type: 'step'; progress: Progress }
  | { type: 'record'; record: RunRecord }
  | { type: 'done'; result: TrainResult }
  | { type: 'failed'; error: { name: string; message: string; code?: string } };

const OPTION_KEYS = ['device', 'threads', 'priority', 'nice', 'weightsEvery', 'source', 'runFolder', 'resume'];

/** The worker's error again on this thread: the same class (by its code) and message. */
function reviveError(e: { name: string; message: string; code?: string }): Error {
  const Class = e.code ? ERROR_CLASSES[e.code as ErrorCode] : undefined;
  if (Class) return new Class(e.message);
  const err = e.name === 'TypeError' ? new TypeError(e.message) : e.name === 'RangeError' ? new RangeError(e.message) : new Error(e.message);
  if (e.code) Object.defineProperty(err, 'code', { value: e.code, enumerable: true });
  return err;
}

/**
 * The worker: the compiled file beside this one; or, running from the TypeScript sources (a
 * Node 20 worker does not take the parent's `--import tsx`), the .ts through tsx-worker.cjs.
 */
function startWorker(setup: WorkerSetup): Worker {
  const entry = path.join(__dirname, `background-worker${path.extname(__filename)}`);
  if (entry.endsWith('.ts')) return new Worker(path.join(__dirname, 'tsx-worker.cjs'), { argv: [entry], workerData: setup });
  return new Worker(entry, { workerData: setup });
}

/** A module named by a path resolved from the working directory; a package name as it is. */
function moduleSpecifier(module: string): string {
  return module.startsWith('.') || path.isAbsolute(module) ? path.resolve(module) : module;
}

export interface BackgroundTraining {
  /** Each set of weights the run posts: at the start, every `weightsEvery` steps, at the end. */
  on(event: 'weights', listener: (state: StateDict, step: number) => void): this;
  /** After every step (posted only while someone listens). */
  on(event: 'step', listener: (progress: Progress) => void): this;
  /** Every record of the run (train logs, validations, gradient norms, the test), as written. */
  on(event: 'record', listener: (record: RunRecord) => void): this;
  once(event: 'weights', listener: (state: StateDict, step: number) => void): this;
  once(event: 'step', listener: (progress: Progress) => void): this;
  once(event: 'record', listener: (record: RunRecord) => void): this;
  on(event: string | symbol, listener: (...args: any[]) => void): this; // eslint-disable-line @typescript-eslint/no-explicit-any
  once(event: string | symbol, listener: (...args: any[]) => void): this; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/**
 * A training run on a worker thread (see the top of this file). `ready` resolves when it has
 * started and posted its first weights, `result` when it ends (or rejects with its error, of
 * the class the worker raised); `stop()` ends it gracefully (the step in progress finishes,
 * `last.safetensors` is written, the result says `interrupted`), `terminate()` at once.
 * Pass it to `createPredictor` to serve the weights it posts.
 */
export class BackgroundTraining extends EventEmitter implements WeightsFeed {
  readonly ready: Promise<BackgroundStart>;
  readonly result: Promise<TrainResult>;
  private readonly worker: Worker;
  private readonly counters: Int32Array;
  private readonly lossView: Float64Array;
  private start?: BackgroundStart;
  private latest?: { state: StateDict; step: number };
  private settled = false;
  private terminating = false;

  /** @internal use trainInBackground. */
  constructor(setup: WorkerSetup) {
    super();
    this.counters = new Int32Array(setup.shared, 0, 2);
    this.lossView = new Float64Array(setup.shared, 8, 1);
    this.worker = startWorker(setup);
    let started!: (s: BackgroundStart) => void;
    let finished!: (r: TrainResult) => void;
    let failed!: (e: Error) => void;
    this.ready = new Promise((resolve) => (started = resolve));
    this.result = new Promise((resolve, reject) => {
      finished = resolve;
      failed = reject;
    });
    // A failure before the start rejects `ready` too; `result` carries it for those who await only that.
    this.ready = Promise.race([this.ready, this.result.then(() => {
      throw new InternalError('trainInBackground: the run ended before it started');
    })]);
    this.ready.catch(() => undefined);
    const fail = (err: Error) => {
      if (this.settled) return;
      this.settled = true;
      failed(err);
    };
    this.worker.on('message', (m: FromWorker) => {
      switch (m.type) {
        case 'ready':
          this.start = { runDir: m.runDir, plannedSteps: m.plannedSteps, step: m.step, device: m.device, architecture: m.architecture };
          break;
        case 'weights':
          this.latest = { state: m.state, step: m.step };
          if (this.start && m.step === this.start.step) started(this.start);
          this.emit('weights', m.state, m.step);
          break;
        case 'step':
          this.emit('step', m.progress);
          break;
        case 'record':
          this.emit('record', m.record);
          break;
        case 'done':
          this.settled = true;
          finished(m.result);
          break;
        case 'failed':
          fail(reviveError(m.error));
          break;
      }
    });
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => {
      fail(
        this.terminating
          ? new DisposedError('trainInBackground: the training thread was terminated (the run folder keeps its last checkpoint)')
          : new InternalError(`trainInBackground: the training thread exited with code ${code} before the run ended`),
      );
    });
    // Per-step messages only while someone listens for them.
    this.on('newListener', (event) => {
      if (event === 'step' && this.listenerCount('step') === 0) this.tell({ type: 'progress', on: true });
    });
    this.on('removeListener', (event) => {
      if (event === 'step' && this.listenerCount('step') === 0) this.tell({ type: 'progress', on: false });
    });
  }

  private tell(m: ToWorker): void {
    if (!this.settled) this.worker.postMessage(m);
  }

  /** Steps taken so far (read from memory the threads share: no message, no waiting). */
  get step(): number {
    return Atomics.load(this.counters, 0);
  }

  /** The latest step's loss (NaN before the first). */
  get loss(): number {
    return this.lossView[0];
  }

  /** The latest weights posted and the step they are from (undefined before the first). */
  get weights(): { state: StateDict; step: number } | undefined {
    return this.latest;
  }

  /** What the run said when it started (undefined before `ready`). */
  get started(): BackgroundStart | undefined {
    return this.start;
  }

  /** The device the run trains on (a predictor's default), once `ready` has resolved. */
  get device(): string {
    return this.started$().device;
  }

  /** The model's architecture, once `ready` has resolved. */
  get architecture(): ModelArchitecture {
    return this.started$().architecture;
  }

  private started$(): BackgroundStart {
    if (!this.start) throw new OrthornnError('trainInBackground: the run has not started yet (await training.ready)', 'ERR_ORTHORNN_RANGE');
    return this.start;
  }

  /** WeightsFeed: calls `listener` with each set of weights posted; returns what stops it. */
  subscribe(listener: (state: StateDict, step: number) => void): () => void {
    this.on('weights', listener);
    return () => this.off('weights', listener);
  }

  /**
   * Stops the run gracefully: the step in progress finishes (with its validation, if one is
   * due), `last.safetensors` is written, the final weights are posted, and the result (with
   * `interrupted: true`) is returned. Once the run has ended: its result.
   */
  stop(): Promise<TrainResult> {
    this.tell({ type: 'stop' });
    return this.result;
  }

  /** Ends the thread at once: no checkpoint is written; `result` rejects with a DisposedError. */
  async terminate(): Promise<void> {
    if (!this.settled) this.terminating = true;
    await this.worker.terminate();
  }
}

/**
 * Starts a training run (the configuration of `train`/`Trainer.create`, or a run to resume) on a
 * worker thread of this process and returns at once; see BackgroundTraining.
 */
export function trainInBackground(config: Partial<TrainConfig> = {}, options: BackgroundOptions = {}): BackgroundTraining {
  const fn = 'trainInBackground';
  const opts = checkOptions(fn, options, OPTION_KEYS);
  readObject(fn, 'config', config);
  let source: WorkerSetup['source'];
  if (opts.source !== undefined) {
    const s = checkOptions(fn, readObject(fn, 'options.source', opts.source, '{ module, export?, options? }') as NonNullable<BackgroundOptions['source']>, ['module', 'export', 'options'], 'options.source');
    if (typeof s.module !== 'string' || s.module === '') throw typeError(fn, 'options.source.module', 'a module path or package name', s.module);
    if (s.export !== undefined && typeof s.export !== 'string') throw typeError(fn, 'options.source.export', 'the name of an export', s.export);
    source = { module: moduleSpecifier(s.module), ...(s.export !== undefined && { export: s.export }), ...(s.options !== undefined && { options: s.options }) };
  }
  let resume: WorkerSetup['resume'];
  if (opts.resume !== undefined) {
    const r = typeof opts.resume === 'string' ? { runDir: opts.resume } : checkOptions(fn, readObject(fn, 'options.resume', opts.resume, 'a run folder or { runDir, steps? }') as { runDir: string; steps?: number }, ['runDir', 'steps'], 'options.resume');
    if (typeof r.runDir !== 'string' || r.runDir === '') throw typeError(fn, 'options.resume.runDir', 'a run folder', r.runDir);
    resume = { runDir: r.runDir, ...(r.steps !== undefined && { steps: checkInteger(fn, 'options.resume.steps', r.steps, 1) }) };
  }
  const runFolder = checkBoolean(fn, 'options.runFolder', opts.runFolder ?? true);
  if (resume && !runFolder) throw rangeError(fn, 'options.runFolder', 'true (or omitted) when resuming a run folder', 'false');
  if (opts.device !== undefined && typeof opts.device !== 'string') throw typeError(fn, 'options.device', "a device name ('cpu', 'cuda:0', …)", opts.device);
  if (opts.device !== undefined && config.device !== undefined && config.device !== opts.device) {
    throw rangeError(fn, 'options.device', `the configuration's device, '${config.device}' (or omitted)`, `'${opts.device}'`);
  }
  const setup: WorkerSetup = {
    config,
    // Else the configuration's, or a resumed run's (the worker reads its config.json).
    ...(opts.device !== undefined && { device: opts.device }),
    threads: checkInteger(fn, 'options.threads', opts.threads ?? 1, 1, 4096),
    priority: checkOneOf(fn, 'options.priority', opts.priority ?? 'background', ['normal', 'background'] as const),
    nice: checkInteger(fn, 'options.nice', opts.nice ?? 19, 0, 19),
    weightsEvery: checkInteger(fn, 'options.weightsEvery', opts.weightsEvery ?? 100),
    ...(source && { source }),
    runFolder,
    ...(resume && { resume }),
    shared: new SharedArrayBuffer(16),
  };
  new Float64Array(setup.shared, 8, 1)[0] = NaN; // no step yet
  // What cannot cross to the worker (functions, say) fails here, not there.
  for (const [arg, value] of [['config', setup.config], ['options.source.options', setup.source?.options]] as const) {
    try {
      structuredClone(value);
    } catch (err) {
      throw typeErrorText(fn, arg, 'plain data (structured clone copies it to the training thread)', `a value it cannot copy (${(err as Error).message})`);
    }
  }
  return new BackgroundTraining(setup);
}
