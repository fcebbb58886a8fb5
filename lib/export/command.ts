/**
 * `orthornn export`: a run's model as an ONNX model, or as an orthornn model file (the
 * parameters and architecture without the optimiser state). The target is a run folder (its
 * best.safetensors, else last.safetensors), a checkpoint or a model file; loadModel checks it
 * before anything is built.
 */
import path from 'node:path';
import { checkpointFile } from '../cli/eval';
import { Context } from '../context';
import { rangeError, typeError } from '../errors';
import { loadModel } from '../models/files';
import { exportOnnx } from './onnx';

export const EXPORT_FORMATS = ['onnx', 'safetensors'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

/**
 * Where an export goes by default: beside the checkpoint, `model.<format>` for a run folder,
 * `<name>.onnx` or `<name>.model.safetensors` for a file `<name>.safetensors`.
 */
export function defaultExportPath(target: string, file: string, format: ExportFormat): string {
  if (path.resolve(file) !== path.resolve(target)) return path.join(target, `model.${format}`);
  const base = file.endsWith('.safetensors') ? file.slice(0, -'.safetensors'.length) : file;
  return format === 'onnx' ? `${base}.onnx` : `${base}.model.safetensors`;
}

/** Exports the model at `target` and returns the path written. */
export async function exportModel(target: string, options: { format: string; out?: string }): Promise<string> {
  const fn = 'export';
  if (typeof target !== 'string' || target === '') throw typeError(fn, 'target', 'a run folder or a .safetensors file', target);
  const format = options.format as ExportFormat;
  if (!EXPORT_FORMATS.includes(format)) throw rangeError(fn, 'format', EXPORT_FORMATS.map((f) => `'${f}'`).join(' or '), JSON.stringify(options.format));
  if (options.out !== undefined && (typeof options.out !== 'string' || options.out === '')) throw typeError(fn, 'out', 'a non-empty path', options.out);
  const file = checkpointFile(target);
  const out = options.out ?? defaultExportPath(target, file, format);
  if (path.resolve(out) === path.resolve(file)) throw rangeError(fn, 'out', 'another file than the one read', JSON.stringify(out));
  const context = new Context();
  try {
    const model = await loadModel(file, { context });
    if (format === 'onnx') await exportOnnx(model, out);
    else await model.save(out);
  } finally {
    context.dispose();
  }
  return out;
}

/** The command's action: exports, then prints the path written. */
export async function exportCommand(target: string, flags: { format: string; out?: string }): Promise<void> {
  const out = await exportModel(target, flags);
  process.stdout.write(`${out}\n`);
}
