/**
 * The paper's experiments as sweep presets (`orthornn sweep --preset mnist-margins`): each is
 * a list of runs (one row of the paper's table or figure each), the options they share, and
 * three budgets: `full`, the paper's protocol row for row (docs/results.md lists it: meant for a GPU
 * server), `medium`, the same protocol over fewer epochs with several seeds on the rows that
 * carry the paper's findings (sized to finish on a 2-core CPU in about 2.5 hours per MNIST
 * preset), and `reduced`, a quick look in minutes. Every remaining departure from the protocol
 * is in the preset's `departures`, which its results print.
 */
import { rangeError } from '../errors';
import type { TrainConfig } from './config';

export const BUDGETS = ['full', 'medium', 'reduced'] as const;
export type Budget = (typeof BUDGETS)[number];

export interface PresetRow {
  /** The row's label in the results table, e.g. 'm = 0.1' or 'LSTM'. */
  label: string;
  /** Over the preset's base; an option set to undefined is removed from it. */
  options: Partial<TrainConfig>;
  /** The paper's figure for this row (same metric and split), where it gives one. */
  paper?: number;
  /** This row's own budget options (over the budget's, under the user's), by budget. */
  budgets?: Partial<Record<Budget, Partial<TrainConfig>>>;
  /** Seeds run at the medium budget (default 1): the rows that carry the paper's findings have more. */
  seeds?: number;
}

/** How a preset's table reports each run. */
export type PresetMetric =
  | 'testAccuracy' // % on the best-validation weights (MNIST)
  | 'testBitsPerChar' // on the best-validation weights (PTB)
  | 'stepsToSolve' // the first validation with every symbol recalled (copy)
  | 'bestValidMse'; // against the 1/6 baseline (adding)

export interface Preset {
  name: string;
  description: string;
  /** What the paper found, for the results page: the ranking this preset checks. */
  paperFinding: string;
  metric: PresetMetric;
  base: Partial<TrainConfig>;
  rows: PresetRow[];
  budgets: Record<Budget, Partial<TrainConfig>>;
  /** Where the full budget still departs from the paper's protocol, and why. */
  departures: string[];
  /** Per-run figures worth keeping (names of `orthornn plot` figures). */
  figures: ('learning-curves' | 'gradient-norms' | 'singular-values')[];
}

const MARGINS = [0, 0.001, 0.01, 0.1, 1];

/**
 * The margin rows: svd at each margin (its Cayley steps at `cayleyLr`), then a free W
 * ('none'), all orthogonally initialised. `seeds`: medium-budget seeds by margin.
 */
function marginRows(margins: readonly number[], cayleyLr: number, paper: readonly (number | undefined)[] = [], seeds: Record<number, number> = {}): PresetRow[] {
  const rows: PresetRow[] = margins.map((m, i) => ({ label: `m = ${m}`, options: { model: 'svd', margin: m, init: 'orthogonal', cayleyLr }, paper: paper[i], seeds: seeds[m] }));
  rows.push({ label: 'none (free W)', options: { model: 'plain', init: 'orthogonal' }, paper: paper[margins.length] });
  return rows;
}

/** The paper's table: test accuracy %, 128 units, orthogonal init unless noted. */
const PAPER_MNIST = { margins: [77.18, 79.26, 85.47, 94.1, 93.84], none: 93.24, glorot: 66.71, lstm: 97.3 };
const PAPER_PMNIST = { margins: [83.56, 84.59, 89.63, 91.44, 90.83], none: 90.51, glorot: 79.33, lstm: 92.62 };

/** Departures every preset shares. */
const SHARED_DEPARTURES = [
  'The svd model has no W parameter: weight decay applies to W_in and W_out (and to a free W), never to U, V or the spectrum p.',
];

const DATASET_DEPARTURES = [
  "An epoch is a pass over a seeded permutation of the 50,000 training images (1000 batches of 50, without replacement), where the paper drew each of its 1000 batches at random: the same number of examples per epoch.",
  ...SHARED_DEPARTURES,
];

/** The MNIST protocol (docs/results.md): 128 tanh units, Lasagne's RMSprop at 1e-3 (the spectrum at lr / 2m), batch 50, the element-wise clip at 100 on ∂L/∂a_t, weight decay 1e-4. */
const DATASET_BASE: Partial<TrainConfig> = { hidden: 128, activation: 'tanh', optimizer: 'rmsprop', rmsprop: 'lasagne', lr: 1e-3, batchSize: 50, clipPreactivation: 100, weightDecay: 1e-4 };

function mnistPreset(task: 'mnist' | 'pmnist'): Preset {
  const paper = task === 'mnist' ? PAPER_MNIST : PAPER_PMNIST;
  return {
    name: `${task}-margins`,
    description: `${task === 'mnist' ? 'Sequential' : 'Permuted'} MNIST: margins 0 … 1 and a free W (orthogonal init), a free W with Glorot and with identity init, and the LSTM`,
    paperFinding:
      'a small non-zero margin (0.1) is best among the constrained models, m = 0 (hard orthogonality) is worst, a free W with Glorot init is far behind, and the LSTM is best overall',
    metric: 'testAccuracy',
    // The MNIST protocol, with Cayley steps at 1e-3 on the svd rows.
    base: { task, ...DATASET_BASE },
    rows: [
      ...marginRows(MARGINS, 1e-3, [...paper.margins, paper.none], { 0: 3, 0.1: 3 }),
      { label: 'none, Glorot init', options: { model: 'plain', init: 'glorot' }, paper: paper.glorot, seeds: 3 },
      { label: 'none, identity init', options: { model: 'plain', init: 'identity' } },
      // The LSTM's own protocol: lr 1e-4, gradient norm clip 1, no element-wise clip or decay,
      // orthogonal init with forget-gate bias 1, 150 epochs at the full budget.
      {
        label: 'LSTM',
        options: { model: 'lstm', lstmInit: 'paper', activation: undefined, lr: 1e-4, clipPreactivation: undefined, weightDecay: undefined, clipNorm: 1 },
        paper: paper.lstm,
        budgets: { full: { epochs: 150 }, reduced: { epochs: 0.5 } },
      },
    ],
    budgets: {
      full: { epochs: 120, validEvery: 1000 },
      // About 2.5 hours on 2 cores (two runs at a time, one thread each): docs/results.md has the sizing.
      medium: { epochs: 12, validEvery: 1000, validSize: 5000 },
      reduced: { epochs: 2, validEvery: 250, validSize: 2000 },
    },
    departures: [...DATASET_DEPARTURES, 'The LSTM has no peephole connections (the paper\'s baseline had them).'],
    figures: ['learning-curves', 'singular-values'],
  };
}

/** The generated tasks' protocol (docs/results.md): 128 units, Lasagne's RMSprop at 1e-4, Cayley steps at 1e-6, batch 50, clip ±100, decay 1e-4. */
const GENERATED_BASE: Partial<TrainConfig> = { hidden: 128, optimizer: 'rmsprop', rmsprop: 'lasagne', lr: 1e-4, batchSize: 50, clipPreactivation: 100, weightDecay: 1e-4 };

function copyPreset(delay: number): Preset {
  return {
    name: `copy-${delay}-margins`,
    description: `Copy task, delay ${delay}: margins 0 … 1 and a free W, linear activation; steps until every symbol of a validation set is recalled`,
    paperFinding: "the paper's summary: a small non-zero margin (e.g. 0.1) often beats both hard orthogonality (m = 0) and a free W; the paper plots this task's learning curves, without a table",
    metric: 'stepsToSolve',
    base: { task: 'copy', delay, activation: 'identity', ...GENERATED_BASE, targetAccuracy: 1 },
    rows: marginRows(MARGINS, 1e-6),
    budgets: {
      // The paper states no budget for the copy task (only its figures' axes).
      full: { epochs: 500, validEvery: 100, validSize: 1000 },
      medium: { epochs: delay >= 1000 ? 40 : delay >= 500 ? 80 : 150, validEvery: 100, validSize: 500 },
      reduced: { epochs: delay >= 1000 ? 6 : delay >= 500 ? 15 : 30, validEvery: 100, validSize: 128 },
    },
    departures: ['The paper states no budget for this task: the full budget is 500 epochs (50,000 batches).', ...SHARED_DEPARTURES],
    figures: ['learning-curves'],
  };
}

function ptbPreset(maxLength: 75 | 300): Preset {
  return {
    name: `ptb-${maxLength}-margins`,
    description: `Penn Treebank characters, sentences up to ${maxLength} characters (PTBc-${maxLength}): margins 0 … 1 and a free W; test bits per character`,
    paperFinding: "the paper's summary: a small non-zero margin (e.g. 0.1) often beats both hard orthogonality (m = 0) and a free W; the paper reports bits per character per margin",
    metric: 'testBitsPerChar',
    // dataDir: the folder of Mikolov's ptb.char.{train,valid,test}.txt (research-only: never bundled).
    base: { task: 'ptb', maxLength, hidden: 128, activation: 'tanh', optimizer: 'rmsprop', rmsprop: 'lasagne', lr: 1e-3, batchSize: 50, clipNorm: 1 },
    rows: marginRows(MARGINS, 1e-3),
    budgets: {
      full: { epochs: 20, validEvery: 1000 },
      medium: { epochs: maxLength > 75 ? 1 : 3, validEvery: 500, validSize: 1000 },
      reduced: { steps: maxLength > 75 ? 500 : 3000, validEvery: maxLength > 75 ? 100 : 250, validSize: 500 },
    },
    departures: [
      'The paper states only RMSprop and batch 50 for PTB: the units (128), learning rates (1e-3, Cayley 1e-3), gradient norm clip 1 and 20 epochs are this preset\'s choices.',
    ],
    figures: ['learning-curves'],
  };
}

export const PRESETS: Record<string, Preset> = {
  'mnist-margins': mnistPreset('mnist'),
  'pmnist-margins': mnistPreset('pmnist'),
  'copy-200-margins': copyPreset(200),
  'copy-500-margins': copyPreset(500),
  'copy-1000-margins': copyPreset(1000),
  'adding-margins': {
    name: 'adding-margins',
    description: 'Adding task, T = 1000, ReLU: margins 0, 1, 10, 100 and a free W; MSE against the 1/6 of always answering 1',
    paperFinding: 'm = 0 and a free W "failed to begin converging beyond baseline within 2000 epochs"; the intermediate margins (1, 10, 100) converged',
    metric: 'bestValidMse',
    base: { task: 'adding', length: 1000, activation: 'relu', ...GENERATED_BASE },
    rows: marginRows([0, 1, 10, 100], 1e-6),
    budgets: {
      full: { epochs: 2000, validEvery: 1000, validSize: 1000 },
      medium: { epochs: 40, validEvery: 200, validSize: 500 },
      reduced: { epochs: 15, validEvery: 100, validSize: 256 },
    },
    departures: [...SHARED_DEPARTURES],
    figures: ['learning-curves'],
  },
  'ptb-75-margins': ptbPreset(75),
  'ptb-300-margins': ptbPreset(300),
  'copy-gradient-norms': {
    name: 'copy-gradient-norms',
    description: 'Copy task, delay 200: the hidden-gradient-norm map ‖∂L/∂h_t‖ over time step × iteration, m = 0 against larger margins',
    paperFinding: 'the math behind the paper: with every singular value at 1 (m = 0) the gradient norm is carried along the sequence unchanged; singular values away from 1 make it vanish or explode exponentially in T',
    metric: 'stepsToSolve',
    base: { task: 'copy', delay: 200, activation: 'identity', ...GENERATED_BASE },
    rows: [0, 0.1, 1, 10].map((m) => ({ label: `m = ${m}`, options: { model: 'svd', margin: m, init: 'orthogonal', cayleyLr: 1e-6 } })),
    budgets: {
      full: { epochs: 100, gradientNormsEvery: 100 },
      medium: { epochs: 30, validEvery: 100, validSize: 256, gradientNormsEvery: 30 },
      reduced: { epochs: 10, validEvery: 100, validSize: 128, gradientNormsEvery: 10 },
    },
    departures: ['The paper states no budget for this figure: the full budget is 100 epochs (10,000 batches).', ...SHARED_DEPARTURES],
    figures: ['gradient-norms', 'learning-curves'],
  },
  'pmnist-spectrum': {
    name: 'pmnist-spectrum',
    description: 'Permuted MNIST: the singular-value spread (min, mean, max, std) while training, margins 0.1 and 1 and a free W',
    paperFinding: 'the singular values stay inside [1 − m, 1 + m] by construction; the paper tracks how far they spread within it during training, and a free W has no such bound',
    metric: 'testAccuracy',
    base: { task: 'pmnist', ...DATASET_BASE },
    rows: [
      { label: 'm = 0.1', options: { model: 'svd', margin: 0.1, cayleyLr: 1e-3 } },
      { label: 'm = 1', options: { model: 'svd', margin: 1, cayleyLr: 1e-3 } },
      { label: 'none (free W)', options: { model: 'plain' } },
    ],
    budgets: {
      full: { epochs: 120, validEvery: 1000 },
      medium: { epochs: 10, validEvery: 1000, validSize: 5000 },
      reduced: { epochs: 1, validEvery: 250, validSize: 2000 },
    },
    departures: [...DATASET_DEPARTURES],
    figures: ['singular-values', 'learning-curves'],
  },
};

export function presetNamed(name: string): Preset {
  const preset = PRESETS[name];
  if (!preset) throw rangeError('sweep', '--preset', `one of ${Object.keys(PRESETS).join(', ')}`, `'${name}'`);
  return preset;
}

/** One run of a preset: its row's label (with the row's own budget and the seed when they differ), folder name and options. */
export interface PresetRun {
  label: string;
  /** The row's label alone: the runs of one row (its seeds) share it. */
  row: string;
  name: string;
  values: Partial<TrainConfig>;
  paper?: number;
}

/**
 * The runs of a preset at a budget: each row's options over the preset's base and budget,
 * under the user's own options (`given`: the CLI's flags, e.g. --seed or --data-dir), which
 * win over the base and the budget but not over what defines a row. A budget is steps or
 * epochs: given one, the user's replaces the budget's other. A row's own budget options (its
 * label says so) go over the preset's. At the medium budget a row with `seeds` runs that many
 * times, at seeds s, s + 1, … from the user's seed s (default 0).
 */
export function presetRuns(preset: Preset, budget: Budget, given: Partial<TrainConfig> = {}): PresetRun[] {
  const budgetOf = (values: Partial<TrainConfig> | undefined): Partial<TrainConfig> => {
    const b: Partial<TrainConfig> = { ...values };
    if (given.steps !== undefined) delete b.epochs;
    if (given.epochs !== undefined) delete b.steps;
    return b;
  };
  return preset.rows.flatMap((row, i) => {
    const own = budgetOf(row.budgets?.[budget]);
    const ownText = Object.entries(own).map(([k, v]) => `${k} ${v}`).join(', ');
    const values = { ...preset.base, ...budgetOf(preset.budgets[budget]), ...own, ...given, ...row.options };
    const label = ownText ? `${row.label} (${ownText})` : row.label;
    const name = `${String(i + 1).padStart(2, '0')}-${row.label.replace(/[^A-Za-z0-9.]+/g, '-').replace(/^-|-$/g, '')}`;
    const seeds = budget === 'medium' ? row.seeds ?? 1 : 1;
    const first = given.seed ?? 0;
    return Array.from({ length: seeds }, (_, j) => ({
      label: seeds > 1 ? `${label}, seed ${first + j}` : label,
      row: label,
      name: seeds > 1 ? `${name}-seed-${first + j}` : name,
      values: Object.fromEntries(Object.entries({ ...values, ...(seeds > 1 ? { seed: first + j } : {}) }).filter(([, v]) => v !== undefined)) as Partial<TrainConfig>,
      paper: row.paper,
    }));
  });
}
