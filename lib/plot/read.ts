/**
 * Reading a run folder (config.json, metrics.jsonl) for the plots. Every line of metrics.jsonl
 * must be a record of lib/train/records.ts; a malformed one is a DataError naming the file and
 * line. `null` where a number belongs is what JSON.stringify writes for NaN and ±Infinity, so it
 * is read back as NaN (a diverged loss is data, not a broken file).
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { DataError } from '../errors';
import type { EvalRecord, GradientNormsRecord, RunRecord, SpectrumStats, TrainRecord } from '../train/records';

export interface Run {
  dir: string;
  /** config.json as written (an empty object when the file is absent). */
  config: Record<string, unknown>;
  train: TrainRecord[];
  valid: EvalRecord[];
  test: EvalRecord[];
  gradientNorms: GradientNormsRecord[];
}

const RECORD_TYPES = new Set<RunRecord['type']>(['train', 'valid', 'test', 'gradientNorms']);

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

export async function readRun(fn: string, dir: string): Promise<Run> {
  let dirStat;
  try {
    dirStat = await stat(dir);
  } catch {
    throw new DataError(`${fn}: run folder '${dir}' does not exist`);
  }
  if (!dirStat.isDirectory()) throw new DataError(`${fn}: run folder '${dir}' is not a folder`);

  const configPath = join(dir, 'config.json');
  let config: Record<string, unknown> = {};
  if (await isFile(configPath)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(configPath, 'utf8'));
    } catch (err) {
      throw new DataError(`${fn}: ${configPath} is not valid JSON (${(err as Error).message})`);
    }
    if (!isObject(parsed)) throw new DataError(`${fn}: ${configPath} must hold a JSON object`);
    config = parsed;
  }

  const metricsPath = join(dir, 'metrics.jsonl');
  if (!(await isFile(metricsPath))) throw new DataError(`${fn}: run folder '${dir}' has no metrics.jsonl`);
  const run: Run = { dir, config, train: [], valid: [], test: [], gradientNorms: [] };
  const lines = (await readFile(metricsPath, 'utf8')).split('\n');
  let count = 0;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    const record = parseRecord(line, `${fn}: ${metricsPath} line ${i + 1}`);
    count++;
    if (record.type === 'train') run.train.push(record);
    else if (record.type === 'gradientNorms') run.gradientNorms.push(record);
    else run[record.type].push(record);
  }
  if (count === 0) throw new DataError(`${fn}: ${metricsPath} is empty`);
  return run;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A number, or NaN for the `null` that JSON writes for a non-finite one. */
function num(obj: Record<string, unknown>, key: string, where: string): number {
  const v = obj[key];
  if (v === null) return NaN;
  if (typeof v !== 'number') throw new DataError(`${where}: '${key}' must be a number, got ${JSON.stringify(v) ?? 'nothing'}`);
  return v;
}

function optionalNum(obj: Record<string, unknown>, key: string, where: string): number | undefined {
  return obj[key] === undefined ? undefined : num(obj, key, where);
}

function step(obj: Record<string, unknown>, where: string): number {
  const s = obj.step;
  if (typeof s !== 'number' || !Number.isFinite(s)) throw new DataError(`${where}: 'step' must be a finite number, got ${JSON.stringify(s) ?? 'nothing'}`);
  return s;
}

function parseRecord(line: string, where: string): RunRecord {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch (err) {
    throw new DataError(`${where}: not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(obj)) throw new DataError(`${where}: a record must be a JSON object`);
  const type = obj.type;
  if (typeof type !== 'string' || !RECORD_TYPES.has(type as RunRecord['type'])) {
    throw new DataError(`${where}: unknown record type ${JSON.stringify(type) ?? '(none)'} (expected train, valid, test or gradientNorms)`);
  }

  if (type === 'gradientNorms') {
    const norms = obj.norms;
    if (!Array.isArray(norms) || norms.length === 0) throw new DataError(`${where}: 'norms' must be a non-empty array of numbers`);
    const out = new Array<number>(norms.length);
    for (let t = 0; t < norms.length; t++) {
      const v = norms[t];
      if (v !== null && typeof v !== 'number') throw new DataError(`${where}: 'norms[${t}]' must be a number, got ${JSON.stringify(v)}`);
      out[t] = v === null ? NaN : v;
    }
    return { type, step: step(obj, where), norms: out };
  }

  // Only the fields the plots use are checked; the others pass through untouched.
  const metrics = {
    loss: num(obj, 'loss', where),
    accuracy: optionalNum(obj, 'accuracy', where),
    bitsPerChar: optionalNum(obj, 'bitsPerChar', where),
    mse: optionalNum(obj, 'mse', where),
  };
  if (type !== 'train') return { ...(obj as unknown as EvalRecord), ...metrics, type: type as EvalRecord['type'], step: step(obj, where) };

  const record: TrainRecord = { ...(obj as unknown as TrainRecord), ...metrics, type, step: step(obj, where) };
  if (obj.singularValues !== undefined) {
    const sv = obj.singularValues;
    if (!isObject(sv)) throw new DataError(`${where}: 'singularValues' must be an object {min, mean, max, std}`);
    const w = `${where}: singularValues`;
    record.singularValues = { min: num(sv, 'min', w), mean: num(sv, 'mean', w), max: num(sv, 'max', w), std: num(sv, 'std', w) } satisfies SpectrumStats;
  }
  if (obj.orthogonality !== undefined) {
    const o = obj.orthogonality;
    if (!isObject(o)) throw new DataError(`${where}: 'orthogonality' must be an object {U, V}`);
    const w = `${where}: orthogonality`;
    record.orthogonality = { U: num(o, 'U', w), V: num(o, 'V', w) };
  }
  return record;
}
