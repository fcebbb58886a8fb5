/**
 * Vega-Lite → SVG (vega's headless 'none' renderer, no canvas needed) → PNG (resvg).
 *
 * Fonts: the SVG names the generic family `sans-serif`, so it renders anywhere. resvg has no
 * fonts of its own: it loads the system's, and we map `sans-serif` to the first well-known sans
 * family found on disk (DejaVu Sans, Liberation Sans, Noto Sans, Arial, Helvetica …). On a
 * machine with no fonts at all the PNG's marks are right but its text is missing.
 */
import { readdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { rangeError, typeError } from '../errors';
import { isMissingPackage, optionalPackageError } from '../optional';

type Vega = typeof import('vega', { with: { 'resolution-mode': 'import' } });
type VegaLite = typeof import('vega-lite', { with: { 'resolution-mode': 'import' } });
type Resvg = typeof import('@resvg/resvg-js');

// vega and vega-lite are ESM-only (with top-level await): a real dynamic import, loaded once.
// Both, and @resvg/resvg-js for PNG, are optional peer dependencies of orthornn: when missing,
// one error names the packages to install.
const PLOT_PACKAGES = ['vega', 'vega-lite', '@resvg/resvg-js'];

function missingPlotPackage(err: unknown, names: string[]): never {
  const missing = names.filter((n) => isMissingPackage(err, n));
  if (missing.length) throw optionalPackageError('plotting', missing, PLOT_PACKAGES);
  throw err;
}

let libraries: Promise<{ vega: Vega; vl: VegaLite }> | undefined;
function loadVega(): Promise<{ vega: Vega; vl: VegaLite }> {
  libraries ??= Promise.allSettled([import('vega'), import('vega-lite')]).then(([vega, vl]) => {
    const missing = [[vega, 'vega'], [vl, 'vega-lite']].filter(([r, name]) => (r as PromiseSettledResult<unknown>).status === 'rejected' &&
      isMissingPackage((r as PromiseRejectedResult).reason, name as string)).map(([, name]) => name as string);
    if (missing.length) throw optionalPackageError('plotting', missing, PLOT_PACKAGES);
    if (vega.status === 'rejected') throw vega.reason;
    if (vl.status === 'rejected') throw vl.reason;
    return { vega: vega.value, vl: vl.value };
  });
  libraries.catch(() => (libraries = undefined));
  return libraries;
}

let resvgModule: Promise<Resvg['renderAsync']> | undefined;
function loadResvg(): Promise<Resvg['renderAsync']> {
  // A CommonJS native module: its functions may sit on the namespace or on `default`.
  resvgModule ??= import('@resvg/resvg-js')
    .catch((err) => missingPlotPackage(err, ['@resvg/resvg-js']))
    .then((m) => m.renderAsync ?? (m as unknown as { default: Resvg }).default.renderAsync);
  resvgModule.catch(() => (resvgModule = undefined));
  return resvgModule;
}

/** Well-known sans-serif font files and their family names, best first. */
const SANS_FONTS: [RegExp, string][] = [
  [/^DejaVuSans\.ttf$/i, 'DejaVu Sans'],
  [/^LiberationSans-Regular\.ttf$/i, 'Liberation Sans'],
  [/^NotoSans-Regular\.(ttf|otf)$/i, 'Noto Sans'],
  [/^Arial\.ttf$/i, 'Arial'],
  [/^Helvetica\.ttc$/i, 'Helvetica'],
  [/^FreeSans\.(ttf|otf)$/i, 'FreeSans'],
  [/^Roboto-Regular\.ttf$/i, 'Roboto'],
];

function fontDirs(): string[] {
  const dirs = ['/usr/share/fonts', '/usr/local/share/fonts', '/Library/Fonts', '/System/Library/Fonts'];
  try {
    dirs.push(join(homedir(), '.fonts'), join(homedir(), '.local/share/fonts'), join(homedir(), 'Library/Fonts'));
  } catch {
    // no home directory: system folders only
  }
  if (process.env.WINDIR) dirs.push(join(process.env.WINDIR, 'Fonts'));
  return dirs;
}

let sansFamily: string | null | undefined;
/** The family to stand for `sans-serif` in PNGs, or null when none of the known ones is installed. */
export function pngSansFamily(): string | null {
  if (sansFamily !== undefined) return sansFamily;
  let best = SANS_FONTS.length;
  const visit = (dir: string, depth: number): void => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory() && depth < 4) visit(join(dir, e.name), depth + 1);
      else if (!e.isDirectory()) {
        const rank = SANS_FONTS.findIndex(([re]) => re.test(basename(e.name)));
        if (rank >= 0 && rank < best) best = rank;
      }
    }
  };
  for (const dir of fontDirs()) visit(dir, 0);
  sansFamily = best < SANS_FONTS.length ? SANS_FONTS[best][1] : null;
  return sansFamily;
}

/** Collects vega's errors (to throw them) and drops its warnings: a library does not print. */
function quietLogger(errors: string[]) {
  let level = 0;
  const logger = {
    level(l?: number) {
      if (l === undefined) return level;
      level = l;
      return logger;
    },
    error(...args: unknown[]) {
      errors.push(args.map((a) => (a instanceof Error ? a.message : String(a))).join(' '));
      return logger;
    },
    warn: () => logger,
    info: () => logger,
    debug: () => logger,
  };
  return logger;
}

const FN = 'renderSpec';

/** Render a Vega-Lite spec (or a Vega spec whose $schema says so) to SVG text or PNG bytes. */
export async function renderSpec(spec: object, format: 'svg'): Promise<string>;
export async function renderSpec(spec: object, format: 'png'): Promise<Buffer>;
export async function renderSpec(spec: object, format: 'svg' | 'png'): Promise<string | Buffer>;
export async function renderSpec(spec: object, format: 'svg' | 'png'): Promise<string | Buffer> {
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw typeError(FN, 'spec', 'a Vega-Lite spec object', spec);
  if (format !== 'svg' && format !== 'png') throw rangeError(FN, 'format', "'svg' or 'png'", typeof format === 'string' ? `'${format}'` : String(format));
  const { vega, vl } = await loadVega();
  const errors: string[] = [];
  const logger = quietLogger(errors);
  const schema = (spec as { $schema?: unknown }).$schema;
  const isVega = typeof schema === 'string' && /\/schema\/vega\/v\d/.test(schema);
  let vegaSpec;
  try {
    vegaSpec = isVega ? spec : vl.compile(spec as Parameters<VegaLite['compile']>[0], { logger }).spec;
  } catch (err) {
    throw rangeError(FN, 'spec', 'a valid Vega-Lite spec', `one that does not compile (${(err as Error).message})`);
  }
  const view = new vega.View(vega.parse(vegaSpec as Parameters<Vega['parse']>[0]), { renderer: 'none', logger, logLevel: vega.Warn });
  let svg: string;
  try {
    svg = await view.toSVG();
  } finally {
    view.finalize();
  }
  if (errors.length > 0) throw rangeError(FN, 'spec', 'a spec that renders', `one that fails (${errors.join('; ')})`);
  if (format === 'svg') return svg;

  const renderAsync = await loadResvg();
  const family = pngSansFamily();
  const image = await renderAsync(svg, {
    // 2× for a crisp raster; the SVG's own size stays the layout size.
    fitTo: { mode: 'zoom', value: 2 },
    background: 'white',
    font: family === null ? { loadSystemFonts: true } : { loadSystemFonts: true, defaultFontFamily: family, sansSerifFamily: family },
    logLevel: 'off',
  });
  return image.asPng();
}
