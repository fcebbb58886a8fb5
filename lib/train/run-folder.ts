/**
 * What a run folder holds, read without loading the model: the step of its checkpoint, and
 * whether the run finished, can be resumed, or should start afresh. Sweeps that continue and
 * queue workers both decide by it.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import path from 'node:path';
import type { TrainConfig } from './config';

/** The checkpoint's step, from the safetensors header's metadata alone; undefined when unreadable. */
export function checkpointStep(file: string): number | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) !== 8) return undefined;
    const length = Number(head.readBigUInt64LE(0));
    if (length > 100 * 2 ** 20) return undefined;
    const json = Buffer.alloc(length);
    if (readSync(fd, json, 0, length, 8) !== length) return undefined;
    const step = Number(JSON.parse(json.toString('utf8')).__metadata__?.step);
    return Number.isSafeInteger(step) ? step : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * What a run folder holds: 'finished' (its test record is written), 'resumable' (a checkpoint
 * of an unfinished run), or 'fresh' (nothing worth keeping). A checkpoint whose validation met
 * the run's target is final: the run had stopped, and is started again rather than trained on.
 */
export function runFolderState(dir: string): 'finished' | 'resumable' | 'fresh' {
  const metricsFile = path.join(dir, 'metrics.jsonl');
  const records: { type?: string; step?: number; loss?: number; accuracy?: number }[] = [];
  if (existsSync(metricsFile)) {
    for (const line of readFileSync(metricsFile, 'utf8').split('\n')) {
      try {
        if (line.trim() !== '') records.push(JSON.parse(line));
      } catch {
        // the last line of a killed run
      }
    }
  }
  if (records.some((r) => r.type === 'test')) return 'finished';
  const step = checkpointStep(path.join(dir, 'last.safetensors'));
  if (step === undefined) return 'fresh';
  let config: Partial<TrainConfig> = {};
  try {
    config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
  } catch {
    return 'fresh';
  }
  if (config.steps && step >= config.steps) return 'fresh';
  const valid = records.find((r) => r.type === 'valid' && r.step === step);
  const met = valid && (((config.targetAccuracy ?? 0) > 0 && (valid.accuracy ?? 0) >= config.targetAccuracy!) || ((config.targetLoss ?? 0) > 0 && (valid.loss ?? Infinity) <= config.targetLoss!));
  return met ? 'fresh' : 'resumable';
}
