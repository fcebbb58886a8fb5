/**
 * The run figures as Vega-Lite specs. Each builder returns null when the run has no data for it.
 * Records are reduced before plotting (long runs and T ≈ 800 gradient norms would otherwise give
 * SVGs of tens of megabytes): curves keep at most MAX_CURVE_POINTS points per series (means of
 * consecutive records), the heatmap at most MAX_ITERATION_BINS × MAX_TIME_BINS cells.
 */
import type { EvalRecord, GradientNormsRecord, TaskMetrics, TrainRecord } from '../train/records';
import type { Run } from './read';

export type Spec = Record<string, unknown>;

export const MAX_CURVE_POINTS = 1500;
export const MAX_ITERATION_BINS = 200;
export const MAX_TIME_BINS = 150;

const PANEL_HEIGHT = 200;
const HEATMAP_HEIGHT = 300;

const CONFIG = {
  font: 'sans-serif',
  // ARIA labels would repeat every datum in the SVG: a static figure does not need them.
  aria: false,
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', grid: true, gridOpacity: 0.5 },
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal' },
  title: { fontSize: 14, subtitleFontSize: 11, anchor: 'start', subtitleColor: '#555' },
  concat: { spacing: 24 },
};

const SPLIT_COLORS = { train: '#4c78a8', valid: '#f58518', test: '#54a24b' };

/** The run's name for titles: config.task.name (or config.task when a string), else the folder name. */
export function runTitle(run: Run, folderName: string): string {
  const task = run.config.task;
  if (typeof task === 'string') return task;
  if (typeof task === 'object' && task !== null && typeof (task as { name?: unknown }).name === 'string') return (task as { name: string }).name;
  return folderName;
}

/**
 * Records sorted by step, the last one written winning when a step repeats (a resumed run
 * logs again the steps after its checkpoint).
 */
export function latestPerStep<R extends { step: number }>(records: readonly R[]): R[] {
  const byStep = new Map<number, R>();
  for (const r of records) byStep.set(r.step, r);
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

/** Means of consecutive groups of rows, at most `max` of them (non-finite values are left out). */
export function thin<K extends string>(rows: readonly (Record<K, number> & { step: number })[], keys: readonly K[], max: number): Record<string, number>[] {
  const group = Math.ceil(rows.length / max);
  if (group <= 1) return rows.map((r) => ({ ...r }));
  const out: Record<string, number>[] = [];
  for (let i = 0; i < rows.length; i += group) {
    const slice = rows.slice(i, i + group);
    const row: Record<string, number> = { step: slice.reduce((a, r) => a + r.step, 0) / slice.length };
    for (const k of keys) {
      const finite = slice.map((r) => r[k]).filter(Number.isFinite);
      row[k] = finite.length > 0 ? finite.reduce((a, v) => a + v, 0) / finite.length : NaN;
    }
    out.push(row);
  }
  return out;
}

/**
 * A y scale (and axis) for values that may span decades: log when they are all positive and span
 * ≥ 2 decades; symlog (linear below the smallest positive value, log above), with ticks at 0 and
 * the powers of ten, when zeros come with such a span; linear otherwise. `alwaysLog` drops the
 * span condition.
 */
export function decadeScale(values: readonly number[], alwaysLog = false): { scale: Spec; axis: Spec } {
  const finite = values.filter(Number.isFinite);
  const positive = finite.filter((v) => v > 0);
  const linear = { scale: { type: 'linear', zero: false }, axis: {} };
  if (positive.length === 0) return linear;
  const minPos = positive.reduce((a, v) => Math.min(a, v), Infinity);
  const max = positive.reduce((a, v) => Math.max(a, v), 0);
  if (!alwaysLog && max / minPos < 100) return linear;
  if (positive.length === finite.length) return { scale: { type: 'log' }, axis: {} };
  // symlog's own ticks are linear ones, useless over decades.
  const values10 = [0];
  for (let e = Math.floor(Math.log10(minPos)); e <= Math.ceil(Math.log10(max)); e++) values10.push(10 ** e);
  return { scale: { type: 'symlog', constant: minPos }, axis: { values: values10, format: '~g' } };
}

const METRICS: { key: keyof TaskMetrics; title: string; decades: boolean }[] = [
  { key: 'loss', title: 'loss', decades: true },
  { key: 'accuracy', title: 'accuracy', decades: false },
  { key: 'bitsPerChar', title: 'bits per character', decades: false },
  { key: 'mse', title: 'mean squared error', decades: true },
];

interface CurveRow {
  step: number;
  split: 'train' | 'valid' | 'test';
  value: number;
}

/** Loss and the task metric against step: one panel each, train as a line, valid and test as points. */
export function learningCurves(run: Run, title: string, width: number): Spec | null {
  const train = latestPerStep<TrainRecord>(run.train);
  const valid = latestPerStep<EvalRecord>(run.valid);
  const test = latestPerStep<EvalRecord>(run.test);
  const panels: Spec[] = [];
  for (const { key, title: metricTitle, decades } of METRICS) {
    const rows: CurveRow[] = [];
    const trainRows = train.filter((r) => r[key] !== undefined).map((r) => ({ step: r.step, value: r[key] as number }));
    for (const r of thin(trainRows, ['value'], MAX_CURVE_POINTS)) rows.push({ step: r.step, split: 'train', value: r.value });
    for (const [split, records] of [['valid', valid], ['test', test]] as const) {
      for (const r of records) if (r[key] !== undefined) rows.push({ step: r.step, split, value: r[key] as number });
    }
    const finite = rows.filter((r) => Number.isFinite(r.value));
    if (finite.length === 0) continue;
    const splits = (['train', 'valid', 'test'] as const).filter((s) => finite.some((r) => r.split === s));
    const x = { field: 'step', type: 'quantitative', title: 'training step', scale: { zero: false } };
    const y = { field: 'value', type: 'quantitative', title: metricTitle, ...(decades ? decadeScale(finite.map((r) => r.value)) : { scale: { zero: false } }) };
    const color = {
      field: 'split',
      type: 'nominal',
      title: 'split',
      scale: { domain: splits, range: splits.map((s) => SPLIT_COLORS[s]) },
    };
    panels.push({
      width,
      height: PANEL_HEIGHT,
      data: { values: finite },
      layer: [
        { transform: [{ filter: "datum.split !== 'test'" }], mark: { type: 'line', strokeWidth: 1.5 }, encoding: { x, y, color } },
        { transform: [{ filter: "datum.split !== 'train'" }], mark: { type: 'point', filled: true, size: 36, opacity: 1 }, encoding: { x, y, color } },
      ],
    });
  }
  if (panels.length === 0) return null;
  const notes = [];
  if (train.length > 0) notes.push(train.length > MAX_CURVE_POINTS ? `train: means of ${Math.ceil(train.length / MAX_CURVE_POINTS)} consecutive log lines` : 'train: line');
  if (valid.length > 0) notes.push('valid: line and points');
  if (test.length > 0) notes.push('test: points');
  return {
    title: { text: `Learning curves: ${title}`, subtitle: notes.join('; ') },
    vconcat: panels,
    resolve: { scale: { x: 'shared', color: 'shared' } },
    config: CONFIG,
  };
}

interface HeatCell {
  x0: number;
  x1: number;
  t0: number;
  t1: number;
  v: number;
}

/** Cell edges halfway between neighbouring steps (half a gap beyond the ends). */
function stepEdges(steps: readonly number[]): number[] {
  const n = steps.length;
  if (n === 1) return [steps[0] - 0.5, steps[0] + 0.5];
  const edges = [steps[0] - (steps[1] - steps[0]) / 2];
  for (let i = 1; i < n; i++) edges.push((steps[i - 1] + steps[i]) / 2);
  edges.push(steps[n - 1] + (steps[n - 1] - steps[n - 2]) / 2);
  return edges;
}

/** The binned heatmap of log10 ‖∂L/∂h_t‖: columns are iterations, rows time steps 1..T. */
export function gradientNormCells(records: readonly GradientNormsRecord[]): { cells: HeatCell[]; T: number; iterationGroup: number; timeGroup: number; x: [number, number] } | null {
  const sorted = latestPerStep(records);
  if (sorted.length === 0) return null;
  const T = Math.max(...sorted.map((r) => r.norms.length));
  const edges = stepEdges(sorted.map((r) => r.step));
  const iterationGroup = Math.ceil(sorted.length / MAX_ITERATION_BINS);
  const timeGroup = Math.ceil(T / MAX_TIME_BINS);
  const cells: HeatCell[] = [];
  for (let i = 0; i < sorted.length; i += iterationGroup) {
    const end = Math.min(i + iterationGroup, sorted.length);
    for (let t = 0; t < T; t += timeGroup) {
      const tEnd = Math.min(t + timeGroup, T);
      // The mean of log10 norms (a geometric mean): zeros and non-finite norms are left out.
      let sum = 0;
      let count = 0;
      for (let r = i; r < end; r++) {
        const norms = sorted[r].norms;
        for (let s = t; s < Math.min(tEnd, norms.length); s++) {
          if (norms[s] > 0 && Number.isFinite(norms[s])) {
            sum += Math.log10(norms[s]);
            count++;
          }
        }
      }
      if (count > 0) cells.push({ x0: edges[i], x1: edges[end], t0: t + 0.5, t1: tEnd + 0.5, v: sum / count });
    }
  }
  if (cells.length === 0) return null;
  return { cells, T, iterationGroup, timeGroup, x: [edges[0], edges[sorted.length]] };
}

export function gradientNorms(run: Run, title: string, width: number): Spec | null {
  const heat = gradientNormCells(run.gradientNorms);
  if (heat === null) return null;
  const notes = [`${run.gradientNorms.length} records, T = ${heat.T}`];
  if (heat.iterationGroup > 1 || heat.timeGroup > 1) notes.push(`cells average ${heat.iterationGroup} records × ${heat.timeGroup} time steps`);
  notes.push('blank: zero or non-finite norm');
  return {
    title: { text: `Gradient norms ‖∂L/∂h_t‖ over training: ${title}`, subtitle: notes.join('; ') },
    width,
    height: HEATMAP_HEIGHT,
    data: { values: heat.cells },
    mark: { type: 'rect' },
    encoding: {
      x: { field: 'x0', type: 'quantitative', title: 'training iteration', scale: { domain: heat.x, nice: false, zero: false, round: true } },
      x2: { field: 'x1' },
      y: { field: 't0', type: 'quantitative', title: 'time step t', scale: { domain: [0.5, heat.T + 0.5], nice: false, zero: false, round: true } },
      y2: { field: 't1' },
      color: { field: 'v', type: 'quantitative', title: 'log10 ‖∂L/∂h_t‖', scale: { scheme: 'viridis' } },
    },
    config: { ...CONFIG, axis: { ...CONFIG.axis, grid: false } },
  };
}

/** The recurrent matrix's spectrum over training: min–max band, mean ± std band, mean line. */
export function singularValues(run: Run, title: string, width: number): Spec | null {
  const rows = latestPerStep(run.train)
    .filter((r) => r.singularValues !== undefined && Number.isFinite(r.singularValues.mean))
    .map((r) => {
      const s = r.singularValues!;
      return { step: r.step, min: s.min, max: s.max, mean: s.mean, lo: s.mean - s.std, hi: s.mean + s.std };
    });
  if (rows.length === 0) return null;
  const data = thin(rows, ['min', 'max', 'mean', 'lo', 'hi'], MAX_CURVE_POINTS);
  const x = { field: 'step', type: 'quantitative', title: 'training step', scale: { zero: false } };
  const bands = ['min – max', 'mean ± std', 'mean'];
  const color = (datum: string) => ({ datum, type: 'nominal', title: 'singular values', scale: { domain: bands, range: ['#c6dbef', '#6baed6', '#08306b'] } });
  return {
    title: { text: `Singular values of the recurrent matrix: ${title}`, subtitle: 'dashed: 1 (orthogonal)' },
    width,
    height: PANEL_HEIGHT + 60,
    layer: [
      { data: { values: data }, mark: { type: 'area', opacity: 0.8 }, encoding: { x, y: { field: 'min', type: 'quantitative', title: 'singular value', scale: { zero: false } }, y2: { field: 'max' }, color: color(bands[0]) } },
      { data: { values: data }, mark: { type: 'area', opacity: 0.8 }, encoding: { x, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' }, color: color(bands[1]) } },
      { data: { values: data }, mark: { type: 'line', strokeWidth: 1.5 }, encoding: { x, y: { field: 'mean', type: 'quantitative' }, color: color(bands[2]) } },
      { data: { values: [{}] }, mark: { type: 'rule', strokeDash: [4, 4], color: '#666' }, encoding: { y: { datum: 1, type: 'quantitative' } } },
    ],
    config: CONFIG,
  };
}

function logAxis(values: readonly number[]): { scale: Spec; axis: Spec } {
  const { scale, axis } = decadeScale(values, true);
  return { scale, axis: scale.type === 'log' ? { format: '~e' } : axis };
}

/** ‖UᵀU − I‖ and ‖VᵀV − I‖ (max-abs) over training, on a log axis. */
export function orthogonality(run: Run, title: string, width: number): Spec | null {
  const rows = latestPerStep(run.train)
    .filter((r) => r.orthogonality !== undefined)
    .map((r) => ({ step: r.step, U: r.orthogonality!.U, V: r.orthogonality!.V }));
  const data = thin(rows, ['U', 'V'], MAX_CURVE_POINTS).flatMap((r) => [
    { step: r.step, matrix: 'U', value: r.U },
    { step: r.step, matrix: 'V', value: r.V },
  ]).filter((r) => Number.isFinite(r.value));
  if (data.length === 0) return null;
  return {
    title: { text: `Orthogonality of U and V: ${title}`, subtitle: 'max-abs entry of MᵀM − I' },
    width,
    height: PANEL_HEIGHT + 60,
    data: { values: data },
    mark: { type: 'line', strokeWidth: 1.5, point: data.length <= 60 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'training step', scale: { zero: false } },
      y: { field: 'value', type: 'quantitative', title: '‖MᵀM − I‖', ...logAxis(data.map((r) => r.value)) },
      color: { field: 'matrix', type: 'nominal', title: 'M', scale: { domain: ['U', 'V'], range: ['#4c78a8', '#e45756'] } },
    },
    config: CONFIG,
  };
}

/** The validation metrics a comparison can show, and how each is titled. */
export const COMPARABLE = {
  accuracy: { title: 'validation accuracy (%)', scale: 100, decades: false },
  bitsPerChar: { title: 'validation bits per character', scale: 1, decades: false },
  mse: { title: 'validation MSE', scale: 1, decades: true },
  loss: { title: 'validation loss', scale: 1, decades: true },
} as const;
export type ComparableMetric = keyof typeof COMPARABLE;

/**
 * One validation metric against step for several runs (a preset's rows), one line each; an
 * optional horizontal rule (a baseline such as the adding task's 1/6).
 */
export function comparison(runs: readonly { label: string; run: Run }[], metric: ComparableMetric, title: string, width: number, baseline?: { value: number; label: string }): Spec | null {
  const { title: metricTitle, scale, decades } = COMPARABLE[metric];
  const rows: { step: number; value: number; run: string }[] = [];
  for (const { label, run } of runs) {
    for (const r of latestPerStep<EvalRecord>(run.valid)) {
      const v = r[metric];
      if (v !== undefined && Number.isFinite(v)) rows.push({ step: r.step, value: v * scale, run: label });
    }
  }
  if (rows.length === 0) return null;
  const labels = runs.map((r) => r.label).filter((l) => rows.some((r) => r.run === l));
  const x = { field: 'step', type: 'quantitative', title: 'training step', scale: { zero: false } };
  const values = rows.map((r) => r.value).concat(baseline ? [baseline.value] : []);
  const y = { field: 'value', type: 'quantitative', title: metricTitle, ...(decades ? decadeScale(values) : { scale: { zero: false } }) };
  const layer: Spec[] = [
    {
      data: { values: rows },
      mark: { type: 'line', strokeWidth: 1.5, point: { size: 18, filled: true } },
      encoding: { x, y, color: { field: 'run', type: 'nominal', title: 'run', scale: { domain: labels, scheme: 'tableau10' } } },
    },
  ];
  if (baseline) {
    layer.push({
      data: { values: [{ value: baseline.value, label: baseline.label }] },
      mark: { type: 'rule', strokeDash: [4, 4], color: '#666' },
      encoding: { y: { field: 'value', type: 'quantitative' } },
    });
  }
  return {
    title: { text: title, subtitle: `${metricTitle} at each validation${baseline ? `; dashed: ${baseline.label}` : ''}` },
    width,
    height: PANEL_HEIGHT + 60,
    layer,
    config: CONFIG,
  };
}
