/**
 * Figures of a training run (`orthornn plot`): learning curves, the paper's heatmap of gradient
 * norms over time steps and iterations, the recurrent matrix's singular values, and the
 * orthogonality of U and V. Vega-Lite specs rendered headless to SVG or PNG.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { describe, rangeError, typeError } from '../errors';
import { gradientNorms, learningCurves, orthogonality, runTitle, singularValues } from './figures';
import type { Spec } from './figures';
import { readRun } from './read';
import { renderSpec } from './render';

export { renderSpec } from './render';

export interface PlotOptions {
  /** 'svg' (default) or 'png' (rendered at twice the layout size). */
  format?: 'svg' | 'png';
  /** Where the figures go; default `<runDir>/plots` (created when missing). */
  outDir?: string;
  /** Width of each plot's data area in pixels, 100..4000; default 640. */
  width?: number;
}

/** The figures, in the order they are written, by file name. */
export const FIGURES = ['learning-curves', 'gradient-norms', 'singular-values', 'orthogonality'] as const;
export type FigureName = (typeof FIGURES)[number];

const FN = 'plotRun';
const OPTION_KEYS = new Set(['format', 'outDir', 'width']);

/**
 * Reads a run folder (config.json, metrics.jsonl) and writes each figure it has data for as
 * `<outDir>/<figure>.<format>`; returns the paths written. A folder, file or record that is
 * missing or malformed is a DataError naming it (records by line number).
 */
export async function plotRun(runDir: string, options: PlotOptions = {}): Promise<string[]> {
  if (typeof runDir !== 'string' || runDir === '') throw typeError(FN, 'runDir', 'a non-empty string', runDir);
  if (typeof options !== 'object' || options === null || Array.isArray(options)) throw typeError(FN, 'options', 'an object', options);
  for (const key of Object.keys(options)) {
    if (!OPTION_KEYS.has(key)) throw rangeError(FN, `options.${key}`, 'absent (known options: format, outDir, width)', describe((options as Record<string, unknown>)[key]));
  }
  const { format = 'svg', outDir = join(runDir, 'plots'), width = 640 } = options;
  if (format !== 'svg' && format !== 'png') throw rangeError(FN, 'options.format', "'svg' or 'png'", describe(format));
  if (typeof outDir !== 'string' || outDir === '') throw typeError(FN, 'options.outDir', 'a non-empty string', outDir);
  if (typeof width !== 'number') throw typeError(FN, 'options.width', 'a number', width);
  if (!Number.isFinite(width) || width < 100 || width > 4000) throw rangeError(FN, 'options.width', 'a number of pixels in 100..4000', String(width));

  const run = await readRun(FN, runDir);
  const title = runTitle(run, basename(resolve(runDir)));
  const builders: Record<FigureName, () => Spec | null> = {
    'learning-curves': () => learningCurves(run, title, width),
    'gradient-norms': () => gradientNorms(run, title, width),
    'singular-values': () => singularValues(run, title, width),
    orthogonality: () => orthogonality(run, title, width),
  };
  const written: string[] = [];
  for (const name of FIGURES) {
    const spec = builders[name]();
    if (spec === null) continue;
    const image = await renderSpec(spec, format);
    if (written.length === 0) await mkdir(outDir, { recursive: true });
    const path = join(outDir, `${name}.${format}`);
    await writeFile(path, image);
    written.push(path);
  }
  return written;
}
