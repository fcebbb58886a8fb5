import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { plotRun, renderSpec } from '../lib/plot/index';
import { decadeScale, gradientNormCells, latestPerStep, MAX_ITERATION_BINS, MAX_TIME_BINS } from '../lib/plot/figures';
import type { RunRecord } from '../lib/train/records';

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A run of a copy-like task: loss falling over decades, accuracy, spectrum, orthogonality, norms. */
function syntheticRun(steps: number, T: number, gradientEvery: number): RunRecord[] {
  const records: RunRecord[] = [];
  for (let step = 0; step <= steps; step += 10) {
    const loss = 2 * Math.exp(-step / 200) + 1e-4;
    records.push({
      type: 'train', step, epoch: 0, time: step / 100, lr: 1e-3, gradientNorm: 1, loss, accuracy: 1 - loss / 2.1,
      singularValues: { min: 0.9, mean: 1 - step * 1e-5, max: 1.1 + step * 1e-4, std: 0.05 },
      orthogonality: { U: 1e-7 * (1 + step), V: 2e-7 * (1 + step) },
    });
    if (step % 100 === 0) records.push({ type: 'valid', step, time: 0, sequences: 100, loss: loss * 1.1, accuracy: 1 - loss / 2 });
    if (step % gradientEvery === 0) {
      records.push({ type: 'gradientNorms', step, norms: Array.from({ length: T }, (_, t) => Math.exp(-(T - t) / (5 + step / 20))) });
    }
  }
  records.push({ type: 'test', step: steps, time: 0, sequences: 1000, loss: 2e-4, accuracy: 0.999 });
  return records;
}

async function writeRun(dir: string, records: readonly (RunRecord | string)[], config: object = { task: { name: 'copy' } }): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'config.json'), JSON.stringify(config));
  await writeFile(join(dir, 'metrics.jsonl'), records.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
  return dir;
}

function pngSize(png: Buffer): { width: number; height: number } {
  assert.ok(png.subarray(0, 8).equals(PNG_SIGNATURE), 'PNG signature');
  assert.equal(png.subarray(12, 16).toString('latin1'), 'IHDR');
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}

/** The items of the first `mark-<type>` group of a vega SVG (each rect or area is one path). */
function markItems(svg: string, type: string): number {
  const start = svg.indexOf(`class="mark-${type} `);
  assert.ok(start >= 0, `a mark-${type} group`);
  const group = svg.slice(start, svg.indexOf('</g>', start));
  return group.match(/<path /g)?.length ?? 0;
}

describe('89 plot: run figures as SVG and PNG', () => {
  let root: string;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'orthornn-plot-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('a full run gives the four figures as SVG under <run>/plots, each with its marks', async () => {
    const dir = await writeRun(join(root, 'full'), syntheticRun(1000, 30, 50));
    const paths = await plotRun(dir);
    const names = ['learning-curves', 'gradient-norms', 'singular-values', 'orthogonality'];
    assert.deepEqual(paths, names.map((n) => join(dir, 'plots', `${n}.svg`)));
    const marks: Record<string, string[]> = {
      'learning-curves': ['mark-line', 'mark-symbol'],
      'gradient-norms': ['mark-rect'],
      'singular-values': ['mark-area', 'mark-line'],
      orthogonality: ['mark-line'],
    };
    for (const [i, path] of paths.entries()) {
      const svg = await readFile(path, 'utf8');
      assert.ok(svg.startsWith('<svg'), `${path} is SVG`);
      assert.ok(svg.trimEnd().endsWith('</svg>'), `${path} is complete`);
      for (const mark of marks[names[i]]) assert.ok(svg.includes(`class="${mark}`), `${names[i]} has a ${mark}`);
      assert.ok(svg.length > 5_000 && svg.length < 2_000_000, `${names[i]}: ${svg.length} bytes`);
    }
    const curves = await readFile(paths[0], 'utf8');
    for (const text of ['loss', 'accuracy', 'training step', 'valid', 'test', 'copy']) assert.ok(curves.includes(text), `learning curves name '${text}'`);
    const heat = await readFile(paths[1], 'utf8');
    for (const text of ['time step t', 'training iteration']) assert.ok(heat.includes(text), `heatmap names '${text}'`);
    // 21 gradient records × 30 time steps, no binning needed: one rect per cell.
    assert.equal(markItems(heat, 'rect'), 21 * 30);
  });

  it('T = 800 and 400 records are binned: the heatmap SVG stays under 2 MB', async () => {
    const dir = await writeRun(join(root, 'long'), syntheticRun(4000, 800, 10));
    const [, heatPath] = await plotRun(dir, { outDir: join(root, 'long-plots') });
    assert.equal(heatPath, join(root, 'long-plots', 'gradient-norms.svg'));
    const size = (await stat(heatPath)).size;
    assert.ok(size > 100_000 && size < 2_000_000, `${size} bytes`);
  });

  it('PNG: signature, and an IHDR size that follows the width option (rendered at 2×)', async () => {
    const dir = await writeRun(join(root, 'png'), syntheticRun(500, 20, 50));
    const paths = await plotRun(dir, { format: 'png', width: 400 });
    assert.equal(paths.length, 4);
    for (const path of paths) {
      assert.ok(path.endsWith('.png'));
      const { width, height } = pngSize(await readFile(path));
      assert.ok(width >= 800 && width <= 800 + 2 * 400, `${path}: width ${width}`);
      assert.ok(height >= 400 && height <= 3000, `${path}: height ${height}`);
    }
  });

  it('a run with only the training loss gives only the learning curves, with no metric panel', async () => {
    const records: RunRecord[] = [];
    for (let step = 0; step < 50; step++) records.push({ type: 'train', step, epoch: 0, time: step, lr: 0.1, gradientNorm: 1, loss: 1 / (1 + step) });
    const dir = await writeRun(join(root, 'loss-only'), records, {});
    const paths = await plotRun(dir);
    assert.deepEqual(paths, [join(dir, 'plots', 'learning-curves.svg')]);
    assert.deepEqual(await readdir(join(dir, 'plots')), ['learning-curves.svg']);
    const svg = await readFile(paths[0], 'utf8');
    assert.ok(!svg.includes('accuracy'));
    assert.ok(svg.includes('loss-only'), 'the folder name stands in for a missing task name');
  });

  it('a loss that reaches 0 and a NaN written as null still plot (symlog axis)', async () => {
    const records = ['{"type":"train","step":0,"loss":5}', '{"type":"train","step":1,"loss":0.001}', '{"type":"train","step":2,"loss":0}', '{"type":"train","step":3,"loss":null}'];
    const dir = await writeRun(join(root, 'zero'), records);
    const [path] = await plotRun(dir);
    assert.ok((await readFile(path, 'utf8')).includes('class="mark-line'));
    assert.deepEqual(decadeScale([5, 0.001, 0, NaN]), { scale: { type: 'symlog', constant: 0.001 }, axis: { values: [0, 0.001, 0.01, 0.1, 1, 10], format: '~g' } });
    assert.deepEqual(decadeScale([5, 0.001]).scale, { type: 'log' });
    assert.equal(decadeScale([5, 1]).scale.type, 'linear');
    assert.equal(decadeScale([5, 1], true).scale.type, 'log');
    assert.equal(decadeScale([0, 0]).scale.type, 'linear');
  });

  it('heatmap cells: mean of log10 norms per bin, zeros and non-finite left out, at most the bin limits', () => {
    const cells = gradientNormCells([
      { type: 'gradientNorms', step: 0, norms: [1, 10, 100, 0] },
      { type: 'gradientNorms', step: 10, norms: [10, 10, NaN, 0] },
    ]);
    assert.ok(cells !== null);
    assert.equal(cells.T, 4);
    assert.deepEqual(cells.x, [-5, 15]);
    assert.deepEqual(cells.cells.map((c) => [c.x0, c.t0, c.v]), [
      [-5, 0.5, 0], [-5, 1.5, 1], [-5, 2.5, 2],
      [5, 0.5, 1], [5, 1.5, 1],
    ]);
    const many = Array.from({ length: 450 }, (_, i) => ({ type: 'gradientNorms' as const, step: i, norms: new Array<number>(800).fill(1) }));
    const binned = gradientNormCells(many)!;
    assert.ok(binned.cells.length <= MAX_ITERATION_BINS * MAX_TIME_BINS);
    assert.equal(binned.cells.length, Math.ceil(450 / binned.iterationGroup) * Math.ceil(800 / binned.timeGroup));
    assert.ok(binned.cells.every((c) => c.v === 0));
  });

  it('a resumed run: a repeated step keeps the record written last', () => {
    const kept = latestPerStep([{ step: 2, v: 'a' }, { step: 1, v: 'b' }, { step: 2, v: 'c' }]);
    assert.deepEqual(kept, [{ step: 1, v: 'b' }, { step: 2, v: 'c' }]);
  });

  describe('errors name the argument, file and line', () => {
    it('a missing run folder', async () => {
      const dir = join(root, 'nope');
      await assert.rejects(plotRun(dir), (err: Error & { code?: string }) => {
        assert.equal(err.name, 'DataError');
        assert.equal(err.code, 'ERR_ORTHORNN_DATA');
        assert.ok(err.message.includes(dir) && /does not exist/.test(err.message), err.message);
        return true;
      });
    });

    it('a missing or empty metrics.jsonl', async () => {
      const dir = join(root, 'no-metrics');
      await mkdir(dir);
      await assert.rejects(plotRun(dir), /has no metrics\.jsonl/);
      await writeFile(join(dir, 'metrics.jsonl'), '\n\n');
      await assert.rejects(plotRun(dir), /metrics\.jsonl is empty/);
    });

    it('a malformed line, an unknown record type, a bad field: each by line number', async () => {
      const good = '{"type":"train","step":0,"loss":1}';
      const cases: [string[], RegExp][] = [
        [[good, good, '{"type":"train","step":1,'], /metrics\.jsonl line 3: not valid JSON/],
        [[good, '{"type":"eval","step":1,"loss":1}'], /metrics\.jsonl line 2: unknown record type "eval"/],
        [[good, '{"type":"train","step":1,"loss":"1"}'], /metrics\.jsonl line 2: 'loss' must be a number/],
        [['{"type":"gradientNorms","step":1,"norms":[1,"x"]}'], /metrics\.jsonl line 1: 'norms\[1\]' must be a number/],
        [['[1,2]'], /metrics\.jsonl line 1: a record must be a JSON object/],
      ];
      for (const [i, [lines, message]] of cases.entries()) {
        const dir = await writeRun(join(root, `bad-${i}`), lines);
        await assert.rejects(plotRun(dir), message);
      }
    });

    it('a config.json that is not JSON', async () => {
      const dir = await writeRun(join(root, 'bad-config'), ['{"type":"train","step":0,"loss":1}']);
      await writeFile(join(dir, 'config.json'), '{task');
      await assert.rejects(plotRun(dir), /config\.json is not valid JSON/);
    });

    it('unknown format, unknown option, bad width, bad spec', async () => {
      const dir = await writeRun(join(root, 'options'), ['{"type":"train","step":0,"loss":1}']);
      const range = (arg: string) => (err: Error & { code?: string }) => {
        assert.ok(err instanceof RangeError, err.message);
        assert.equal(err.code, 'ERR_ORTHORNN_RANGE');
        assert.ok(err.message.includes(`'${arg}'`), err.message);
        return true;
      };
      await assert.rejects(plotRun(dir, { format: 'jpg' as 'svg' }), range('options.format'));
      await assert.rejects(plotRun(dir, { colour: 'red' } as object), range('options.colour'));
      await assert.rejects(plotRun(dir, { width: 10 }), range('options.width'));
      await assert.rejects(plotRun(dir, { width: '640' as unknown as number }), TypeError);
      await assert.rejects(plotRun(42 as unknown as string), TypeError);
      await assert.rejects(renderSpec({ mark: 'point' }, 'pdf' as 'svg'), range('format'));
      await assert.rejects(renderSpec(null as unknown as object, 'svg'), TypeError);
      await assert.rejects(renderSpec({ data: { values: [{}] }, mark: 'point', encoding: { x: { field: 'a', type: 'bogus' } } }, 'svg'), range('spec'));
      await assert.rejects(stat(join(dir, 'plots')), { code: 'ENOENT' }, 'nothing written on a rejected call');
    });
  });

  it('renderSpec renders a plain Vega-Lite spec', async () => {
    const spec = { data: { values: [{ a: 1, b: 2 }, { a: 2, b: 3 }] }, mark: 'bar', encoding: { x: { field: 'a', type: 'ordinal' }, y: { field: 'b', type: 'quantitative' } } };
    const svg = await renderSpec(spec, 'svg');
    assert.equal(markItems(svg, 'rect'), 2, 'two bars');
    const { width } = pngSize(await renderSpec(spec, 'png'));
    const svgWidth = Number(/width="(\d+)"/.exec(svg)![1]);
    assert.equal(width, 2 * svgWidth);
  });
});
