/**
 * The paper's experiments as sweep presets (`orthornn sweep --preset mnist-margins`): each is
 * a list of runs (one row of the paper's table or figure each), the options they share, and two
 * budgets: `full`, the paper's (meant for a GPU server), and `reduced`, which finishes on a
 * 2-core CPU in minutes to an hour. The protocol is DESIGN §2.7 and §3; the published numbers
 * are DESIGN §3's table where the paper gives one.
 */
import { rangeError } from '../errors';
import type { TrainConfig } from './config';

export interface PresetRow {
  /** The row's label in the results table, e.g. 'm = 0.1' or 'LSTM'. */
  label: string;
  /** Over the preset's base; an option set to undefined is removed from it. */
  options: Partial<TrainConfig>;
  /** The paper's figure for this row (same metric and split), where it gives one. */
  paper?: number;
  /** Options of this row at the reduced budget only (over the budget's, under the user's). */
  reduced?: Partial<TrainConfig>;
}

export type Budget = 'full' | 'reduced';

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
  /** Per-run figures worth keeping (names of `orthornn plot` figures). */
  figures: ('learning-curves' | 'gradient-norms' | 'singular-values')[];
}

const MARGINS = [0, 0.001, 0.01, 0.1, 1];

/** The margin rows: svd at each margin, then a free W ('none'), all orthogonally initialised. */
function marginRows(margins: readonly number[], paper: readonly (number | undefined)[] = []): PresetRow[] {
  const rows: PresetRow[] = margins.map((m, i) => ({ label: `m = ${m}`, options: { model: 'svd', margin: m, init: 'orthogonal' }, paper: paper[i] }));
  rows.push({ label: 'none (free W)', options: { model: 'plain', init: 'orthogonal' }, paper: paper[margins.length] });
  return rows;
}

/** DESIGN §3: test accuracy %, 128 units, orthogonal init unless noted. */
const PAPER_MNIST = { margins: [77.18, 79.26, 85.47, 94.1, 93.84], none: 93.24, glorot: 66.71, lstm: 97.3 };
const PAPER_PMNIST = { margins: [83.56, 84.59, 89.63, 91.44, 90.83], none: 90.51, glorot: 79.33, lstm: 92.62 };

function mnistPreset(task: 'mnist' | 'pmnist'): Preset {
  const paper = task === 'mnist' ? PAPER_MNIST : PAPER_PMNIST;
  return {
    name: `${task}-margins`,
    description: `${task === 'mnist' ? 'Sequential' : 'Permuted'} MNIST: margins 0 … 1 and a free W (orthogonal init), a free W with Glorot and with identity init, and the LSTM`,
    paperFinding:
      'a small non-zero margin (0.1) is best among the constrained models, m = 0 (hard orthogonality) is worst, a free W with Glorot init is far behind, and the LSTM is best overall',
    metric: 'testAccuracy',
    // 128 tanh units, RMSprop, batch 50; the authors' element-wise clip at 100 and weight decay 1e-4.
    base: { task, hidden: 128, activation: 'tanh', optimizer: 'rmsprop', lr: 1e-4, batchSize: 50, clipPreactivation: 100, weightDecay: 1e-4 },
    rows: [
      ...marginRows(MARGINS, [...paper.margins, paper.none]),
      { label: 'none, Glorot init', options: { model: 'plain', init: 'glorot' }, paper: paper.glorot },
      { label: 'none, identity init', options: { model: 'plain', init: 'identity' } },
      // The LSTM has no element-wise pre-activation clip: its gradients are clipped by norm.
      // Its CPU step is about 6× the Elman one's: a quarter of the budget keeps the sweep short.
      { label: 'LSTM', options: { model: 'lstm', activation: undefined, clipPreactivation: undefined, clipNorm: 1 }, paper: paper.lstm, reduced: { epochs: 0.5 } },
    ],
    budgets: {
      full: { epochs: 100, validEvery: 1000 },
      reduced: { epochs: 2, validEvery: 250, validSize: 2000 },
    },
    figures: ['learning-curves', 'singular-values'],
  };
}

function copyPreset(delay: number): Preset {
  return {
    name: `copy-${delay}-margins`,
    description: `Copy task, delay ${delay}: margins 0 … 1 and a free W, linear activation; steps until every symbol of a validation set is recalled`,
    paperFinding: "the paper's summary (DESIGN §1): a small non-zero margin (e.g. 0.1) often beats both hard orthogonality (m = 0) and a free W; the paper plots this task's learning curves, without a table",
    metric: 'stepsToSolve',
    base: { task: 'copy', delay, hidden: 128, activation: 'identity', optimizer: 'rmsprop', lr: 1e-3, batchSize: 32, targetAccuracy: 1 },
    rows: marginRows(MARGINS),
    budgets: {
      full: { steps: 20_000 },
      reduced: { steps: delay >= 1000 ? 600 : delay >= 500 ? 1500 : 3000, validEvery: 100, validSize: 128 },
    },
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
    paperFinding: "the paper's summary (DESIGN §1): a small non-zero margin (e.g. 0.1) often beats both hard orthogonality (m = 0) and a free W; the paper plots this task's MSE curves against the 1/6 baseline, without a table",
    metric: 'bestValidMse',
    base: { task: 'adding', length: 1000, hidden: 128, activation: 'relu', optimizer: 'rmsprop', lr: 1e-3, batchSize: 32, clipNorm: 1 },
    rows: marginRows([0, 1, 10, 100]),
    budgets: {
      full: { steps: 20_000 },
      reduced: { steps: 1500, validEvery: 100, validSize: 256 },
    },
    figures: ['learning-curves'],
  },
  'ptb-75-margins': ptbPreset(75),
  'ptb-300-margins': ptbPreset(300),
  'copy-gradient-norms': {
    name: 'copy-gradient-norms',
    description: 'Copy task, delay 200: the hidden-gradient-norm map ‖∂L/∂h_t‖ over time step × iteration, m = 0 against larger margins',
    paperFinding: 'the math behind the paper (DESIGN §1): with every singular value at 1 (m = 0) the gradient norm is carried along the sequence unchanged; singular values away from 1 make it vanish or explode exponentially in T',
    metric: 'stepsToSolve',
    base: { task: 'copy', delay: 200, hidden: 128, activation: 'identity', optimizer: 'rmsprop', lr: 1e-3, batchSize: 32 },
    rows: [0, 0.1, 1, 10].map((m) => ({ label: `m = ${m}`, options: { model: 'svd', margin: m, init: 'orthogonal' } })),
    budgets: {
      full: { steps: 10_000, gradientNormsEvery: 100 },
      reduced: { steps: 1000, validEvery: 100, validSize: 128, gradientNormsEvery: 10 },
    },
    figures: ['gradient-norms', 'learning-curves'],
  },
  'pmnist-spectrum': {
    name: 'pmnist-spectrum',
    description: 'Permuted MNIST: the singular-value spread (min, mean, max, std) while training, margins 0.1 and 1 and a free W',
    paperFinding: 'the singular values stay inside [1 − m, 1 + m] by construction; the paper tracks how far they spread within it during training, and a free W has no such bound',
    metric: 'testAccuracy',
    base: { task: 'pmnist', hidden: 128, activation: 'tanh', optimizer: 'rmsprop', lr: 1e-4, batchSize: 50, clipPreactivation: 100, weightDecay: 1e-4 },
    rows: [
      { label: 'm = 0.1', options: { model: 'svd', margin: 0.1 } },
      { label: 'm = 1', options: { model: 'svd', margin: 1 } },
      { label: 'none (free W)', options: { model: 'plain' } },
    ],
    budgets: {
      full: { epochs: 100, validEvery: 1000 },
      reduced: { epochs: 1, validEvery: 250, validSize: 2000 },
    },
    figures: ['singular-values', 'learning-curves'],
  },
};

function ptbPreset(maxLength: 75 | 300): Preset {
  return {
    name: `ptb-${maxLength}-margins`,
    description: `Penn Treebank characters, sentences up to ${maxLength} characters (PTBc-${maxLength}): margins 0 … 1 and a free W; test bits per character`,
    paperFinding: "the paper's summary (DESIGN §1): a small non-zero margin (e.g. 0.1) often beats both hard orthogonality (m = 0) and a free W; the paper reports bits per character per margin, not tabulated in DESIGN",
    metric: 'testBitsPerChar',
    // dataDir: the folder of Mikolov's ptb.char.{train,valid,test}.txt (research-only: never bundled).
    base: { task: 'ptb', maxLength, hidden: 128, activation: 'tanh', optimizer: 'rmsprop', lr: 1e-3, batchSize: 32, clipNorm: 1 },
    rows: marginRows(MARGINS),
    budgets: {
      full: { epochs: 20, validEvery: 1000 },
      reduced: { steps: maxLength > 75 ? 500 : 3000, validEvery: maxLength > 75 ? 100 : 250, validSize: 500 },
    },
    figures: ['learning-curves'],
  };
}

export function presetNamed(name: string): Preset {
  const preset = PRESETS[name];
  if (!preset) throw rangeError('sweep', '--preset', `one of ${Object.keys(PRESETS).join(', ')}`, `'${name}'`);
  return preset;
}

/**
 * The runs of a preset at a budget: each row's options over the preset's base and budget,
 * under the user's own options (`given`: the CLI's flags, e.g. --seed or --data-dir), which
 * win over the base and the budget but not over what defines a row. A budget is steps or
 * epochs: given one, the user's replaces the budget's other. At the reduced budget a row's own
 * budget options (its label says so) go over the preset's.
 */
export function presetRuns(preset: Preset, budget: Budget, given: Partial<TrainConfig> = {}): { label: string; name: string; values: Partial<TrainConfig>; paper?: number }[] {
  const budgetOf = (values: Partial<TrainConfig> | undefined): Partial<TrainConfig> => {
    const b: Partial<TrainConfig> = { ...values };
    if (given.steps !== undefined) delete b.epochs;
    if (given.epochs !== undefined) delete b.steps;
    return b;
  };
  return preset.rows.map((row, i) => {
    const own = budget === 'reduced' ? budgetOf(row.reduced) : {};
    const ownText = Object.entries(own).map(([k, v]) => `${k} ${v}`).join(', ');
    const values = { ...preset.base, ...budgetOf(preset.budgets[budget]), ...own, ...given, ...row.options };
    return {
      label: ownText ? `${row.label} (${ownText})` : row.label,
      name: `${String(i + 1).padStart(2, '0')}-${row.label.replace(/[^A-Za-z0-9.]+/g, '-').replace(/^-|-$/g, '')}`,
      values: Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Partial<TrainConfig>,
      paper: row.paper,
    };
  });
}
