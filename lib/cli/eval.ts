/** `orthornn eval`: a checkpoint's metrics on a held-out split. */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { Context } from '../context';
import { DataError } from '../errors';
import { readCheckpoint } from '../train/checkpoint';
import { resolveConfig } from '../train/config';
import { createSource, type EvalSplit } from '../train/sources';
import { createModel, evaluate } from '../train/trainer';
import { formatMetrics } from './train';

/** The checkpoint a path names: a file, or a run folder's best (else last) checkpoint. */
export function checkpointFile(target: string): string {
  if (!existsSync(target)) throw new DataError(`'${target}' does not exist (give a .safetensors checkpoint or a run folder)`);
  if (!statSync(target).isDirectory()) return target;
  for (const name of ['best.safetensors', 'last.safetensors']) {
    const file = path.join(target, name);
    if (existsSync(file)) return file;
  }
  throw new DataError(`the run folder '${target}' holds no best.safetensors or last.safetensors`);
}

export async function evalCheckpoint(target: string, options: { split?: EvalSplit; dataDir?: string; textFile?: string } = {}) {
  const file = checkpointFile(target);
  const ckpt = readCheckpoint(file);
  const config = resolveConfig({
    ...ckpt.config,
    ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
    ...(options.textFile !== undefined ? { textFile: options.textFile } : {}),
  }, { stored: true });
  const source = createSource(config);
  const context = new Context();
  try {
    const model = await createModel({ ...config, device: 'cpu' }, source, context);
    model.loadState(ckpt.parameters);
    const split = options.split ?? 'test';
    const metrics = await evaluate(model, source, split, { batchSize: config.evalBatchSize });
    return { checkpoint: file, step: ckpt.step, split, task: config.task, model: config.model, ...metrics };
  } finally {
    context.dispose();
  }
}

export async function evalCommand(target: string, flags: Record<string, unknown>): Promise<void> {
  const result = await evalCheckpoint(target, { split: flags.split as EvalSplit, dataDir: flags.dataDir as string | undefined, textFile: flags.textFile as string | undefined });
  if (flags.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else process.stdout.write(`${result.checkpoint} (step ${result.step}), ${result.split} split, ${result.sequences} sequences: ${formatMetrics(result)}\n`);
}
