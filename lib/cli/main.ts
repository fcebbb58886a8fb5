#!/usr/bin/env node
/**
 * The `orthornn` command: train, group, eval, export, plot, sweep and worker. Every training option of
 * lib/train/config.ts is a flag (`hidden` → `--hidden 128`, `learnH0` → `--learn-h0 true`).
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { OrthornnError } from '../errors';
import { flagOf, OPTIONS, parseOption, type TrainConfig } from '../train/config';
import { exportCommand, EXPORT_FORMATS } from '../export/command';
import { evalCommand } from './eval';
import { groupCommand } from './group';
import { plotCommand } from './plot';
import { PRESETS } from '../train/presets';
import { presetCommand } from './preset';
import { addQueueOptions, isQueued, queuedSweepCommand } from './queued';
import { sweepCommand } from './sweep';
import { trainCommand } from './train';
import { addWorkerCommand } from './worker';

/** Adds a flag for every training option; values are parsed and checked by the config's table. */
export function addTrainOptions(cmd: Command): Command {
  for (const [key, spec] of Object.entries(OPTIONS)) {
    const kind = spec.kind;
    const choices = Array.isArray(kind) ? ` (${(kind as readonly string[]).join(' | ')})` : '';
    const fallback = spec.zeroMeans ? `; default: ${spec.zeroMeans}` : spec.fallback !== '' ? `; default: ${spec.fallback}` : '';
    const option = new Option(`${flagOf(key)} <value>`, `${spec.help}${choices}${fallback}`).argParser((raw: string) => {
      try {
        return parseOption(key, raw);
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message);
      }
    });
    cmd.addOption(option);
  }
  return cmd;
}

/** The training options given on the command line (commander's camelCase keys are the config's). */
export function trainOptionsOf(opts: Record<string, unknown>): Partial<TrainConfig> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(OPTIONS)) if (opts[key] !== undefined) out[key] = opts[key];
  return out as Partial<TrainConfig>;
}

export function program(): Command {
  const root = new Command('orthornn')
    .description('Recurrent networks with near-orthogonal recurrent matrices (Vorontsov et al., ICML 2017)')
    .option('--debug', 'print the stack of an error, not just its message')
    .showHelpAfterError('(add --help for the options)');

  addTrainOptions(
    root
      .command('train')
      .description('train a model on a task; writes config.json, metrics.jsonl, checkpoints and plots into the run folder')
      .option('--resume <runDir>', 'continue a run from its last.safetensors (other options are taken from the checkpoint, but --steps)')
      .addOption(new Option('--plot-format <format>', 'the figures made at the end').choices(['svg', 'png', 'none']).default('svg'))
      .option('--quiet', 'no progress output'),
  ).action(async (opts: Record<string, unknown>) => trainCommand(trainOptionsOf(opts), opts));

  root
    .command('group')
    .description('train several runs of one shape as one group, one batch per step for all (what sweep --group runs); each member writes its own run folder')
    .argument('[members]', "a JSON file: an array of configurations (as in config.json), each with its own 'out'; they may differ only in their own settings (margin, init, optimiser, rates, clipping, schedule, targets)")
    .option('--resume <runDir...>', "continue a group from its members' folders (each from its last.safetensors, all at the same step)")
    .addOption(new Option('--plot-format <format>', "each member's figures at the end").choices(['svg', 'png', 'none']).default('svg'))
    .option('--quiet', 'no progress output')
    .action(async (members: string | undefined, opts: Record<string, unknown>) => groupCommand(members, opts));

  root
    .command('eval')
    .description('evaluate a checkpoint on a split')
    .argument('<checkpoint>', 'a .safetensors checkpoint written by train (or a run folder: its best.safetensors)')
    .addOption(new Option('--split <split>', 'the split').choices(['valid', 'test']).default('test'))
    .option('--data-dir <dir>', 'the data folder, when it moved since training')
    .option('--text-file <file>', 'the text corpus, when it moved since training')
    .option('--json', 'print the metrics as JSON')
    .action(async (checkpoint: string, opts: Record<string, unknown>) => evalCommand(checkpoint, opts));

  root
    .command('export')
    .description("export a run's model as ONNX, or as a model file without the optimiser state")
    .argument('<run>', 'a run folder (its best.safetensors, else last.safetensors), a checkpoint or a model file')
    .addOption(new Option('--format <format>', 'the file format').choices([...EXPORT_FORMATS]).default('onnx'))
    .option('--out <file>', 'where to write (default: <run>/model.onnx or <run>/model.safetensors; beside a file <name>.safetensors: <name>.onnx or <name>.model.safetensors)')
    .action(async (target: string, opts: Record<string, unknown>) => exportCommand(target, { format: opts.format as string, out: opts.out as string | undefined }));

  root
    .command('plot')
    .description('plot a run folder: learning curves, the hidden-gradient-norm map, singular values, orthogonality')
    .argument('<runDir>', 'a run folder written by train')
    .addOption(new Option('--format <format>', 'the image format').choices(['svg', 'png']).default('svg'))
    .option('--out <dir>', 'where the figures go (default <runDir>/plots)')
    .action(async (runDir: string, opts: Record<string, unknown>) => plotCommand(runDir, opts));

  addTrainOptions(addQueueOptions(
    root
      .command('sweep')
      .description('train every combination of a grid, several processes at once, and print a summary table')
      .addOption(new Option('--plot-format <format>', "each run's figures").choices(['svg', 'png', 'none']).default('svg'))
      .option('--grid <key=values...>', "options to vary, e.g. --grid margin=0,0.01,0.1 seed=1,2 (keys as in config: 'margin', 'batchSize')")
      .option('--preset <name>', `one of the paper's experiments instead of a grid: ${Object.keys(PRESETS).join(', ')}; writes results.md`)
      .addOption(new Option('--budget <budget>', "with --preset: the paper's protocol (full, for a GPU server), fewer epochs and more seeds (medium, about 2.5 h per MNIST preset on 2 cores), or a quick look (reduced)").choices(['reduced', 'medium', 'full']))
      .option('--continue', 'continue the sweep in --out: finished runs are kept, interrupted ones resume from their last checkpoint, the rest start')
      .option('--group', 'train runs that differ only in their own settings (margin, init, optimiser, rates, clipping, schedule, targets) as one group each: one process, one batch per step for all (orthornn group); the default with --device cuda')
      .option('--no-group', 'one process per run, also with --device cuda')
      .option('--jobs <n>', 'processes at once (default: half the cores, at least 1)', (v: string) => {
        const n = Number(v);
        if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('--jobs must be a positive integer');
        return n;
      })
      .option('--threads <n>', 'BLAS threads per process (default: cores / jobs)', (v: string) => {
        const n = Number(v);
        if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('--threads must be a positive integer');
        return n;
      }),
  )).action(async (opts: Record<string, unknown>) =>
    isQueued(opts) ? queuedSweepCommand(trainOptionsOf(opts), opts)
      : typeof opts.preset === 'string' ? presetCommand(opts.preset, trainOptionsOf(opts), opts) : sweepCommand(trainOptionsOf(opts), opts),
  );

  addWorkerCommand(root);

  return root;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (err) {
    // One line: our errors name the argument and what was expected. --debug adds the stack.
    const debug = argv.includes('--debug');
    // Ours carry ERR_ORTHORNN_* codes, Node's system errors ENOENT and the like.
    const known = err instanceof OrthornnError || err instanceof RangeError || err instanceof TypeError || typeof (err as { code?: unknown })?.code === 'string';
    const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
    process.stderr.write(`orthornn: ${known ? '' : 'internal error (please report it; --debug shows where): '}${message}\n`);
    if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    process.exitCode = 1;
  }
}

if (require.main === module) void main(process.argv);
