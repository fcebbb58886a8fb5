/**
 * `orthornn eval`: a checkpoint's metrics on a held-out split. A checkpoint may come from
 * anywhere, so everything it says is checked before anything large is allocated: the file is
 * decoded and verified, its config resolved within the options' bounds, the task created
 * (which allocates nothing in proportion to the config's sizes), and every tensor compared
 * with the shapes the configured model has; only then is the model built and loaded, and its
 * U and V checked for orthogonality. Evaluation bounds its own batches' memory.
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { Context } from '../context';
import { DataError } from '../errors';
import { fileError } from '../io/files';
import { checkCheckpointShapes, checkOrthogonalFactors, expectedParameterShapes, readCheckpoint } from '../train/checkpoint';
import { resolveConfig } from '../train/config';
import { createSource, type EvalSplit } from '../train/sources';
import { createModel, evaluate } from '../train/trainer';
import { formatMetrics } from './train';

/** What is at a path: a file, a folder, something else, or nothing (ENOENT). */
function kindOf(target: string): 'file' | 'folder' | 'other' | 'missing' {
  try {
    const stat = statSync(target);
    return stat.isFile() ? 'file' : stat.isDirectory() ? 'folder' : 'other';
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT' || (err as { code?: string }).code === 'ENOTDIR') return 'missing';
    throw fileError(`cannot read '${target}'`, err);
  }
}

/** The checkpoint a path names: a file, or a run folder's best (else last) checkpoint. */
export function checkpointFile(target: string): string {
  const kind = kindOf(target);
  if (kind === 'missing') throw new DataError(`'${target}' does not exist (give a .safetensors checkpoint or a run folder)`);
  if (kind !== 'folder') return target;
  for (const name of ['best.safetensors', 'last.safetensors']) {
    const file = path.join(target, name);
    if (kindOf(file) !== 'missing') return file;
  }
  throw new DataError(`the run folder '${target}' holds no best.safetensors or last.safetensors`);
}

export async function evalCheckpoint(target: string, options: { split?: EvalSplit; dataDir?: string; textFile?: string } = {}) {
  const file = checkpointFile(target);
  const ckpt = readCheckpoint(file);
  let config;
  try {
    config = resolveConfig({
      ...ckpt.config,
      ...(options.dataDir !== undefined ? { dataDir: options.dataDir } : {}),
      ...(options.textFile !== undefined ? { textFile: options.textFile } : {}),
    }, { stored: true });
  } catch (err) {
    throw fileError(`'${file}' holds a config that orthornn refuses`, err);
  }
  const source = createSource(config);
  checkCheckpointShapes(file, ckpt, expectedParameterShapes(config, source.inputSize, source.outputSize));
  const context = new Context();
  try {
    const model = await createModel({ ...config, device: 'cpu' }, source, context);
    model.loadState(ckpt.parameters);
    await checkOrthogonalFactors(model, file);
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
