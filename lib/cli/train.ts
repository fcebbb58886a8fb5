/** `orthornn train`: one run with a progress bar (or plain lines when not on a terminal). */
import { SingleBar } from 'cli-progress';
import { flagOf, type TrainConfig } from '../train/config';
import type { TaskMetrics } from '../train/records';
import { Trainer, type Progress } from '../train/trainer';
import { MissingPackageError } from '../errors';
import { plotRun } from '../plot/index';

export function formatMetrics(m: TaskMetrics): string {
  const parts = [`loss ${m.loss.toPrecision(4)}`];
  if (m.accuracy !== undefined) parts.push(`accuracy ${(100 * m.accuracy).toFixed(2)}%`);
  if (m.bitsPerChar !== undefined) parts.push(`${m.bitsPerChar.toFixed(3)} bits/char`);
  if (m.mse !== undefined) parts.push(`MSE ${m.mse.toPrecision(4)}`);
  return parts.join(', ');
}

/** The task's headline metric, short: accuracy, else bits per character, else the loss. */
export function headlineMetric(m: TaskMetrics | undefined, digits = 1): string {
  if (!m) return '–';
  if (m.accuracy !== undefined) return `${(100 * m.accuracy).toFixed(digits)}%`;
  if (m.bitsPerChar !== undefined) return `${m.bitsPerChar.toFixed(3)} bpc`;
  return m.loss.toPrecision(digits + 2);
}

export async function trainCommand(options: Partial<TrainConfig>, flags: Record<string, unknown>): Promise<void> {
  const quiet = Boolean(flags.quiet);
  const log = (line: string) => {
    if (!quiet) process.stdout.write(`${line}\n`);
  };
  let trainer: Trainer;
  if (typeof flags.resume === 'string') {
    const others = Object.keys(options).filter((k) => k !== 'steps');
    if (others.length > 0) throw new RangeError(`train: with --resume only --steps may be given (the rest comes from the checkpoint), got ${others.map(flagOf).join(', ')}`);
    trainer = await Trainer.resume(flags.resume, { steps: options.steps });
    log(`resuming ${trainer.runDir} at step ${trainer.step}`);
  } else {
    trainer = await Trainer.create(options);
  }
  const { config } = trainer;
  log(`task ${config.task}, model ${config.model} (${config.hidden} units, ${config.model === 'svd' ? `margin ${config.margin}, ` : ''}${config.model === 'lstm' ? '' : `${config.activation}, `}${config.dtype}), ` +
    `${config.optimizer} lr ${config.lr}, batch ${config.batchSize}, ${trainer.plannedSteps} steps → ${trainer.runDir}`);
  const tty = !quiet && process.stderr.isTTY;
  const bar = tty
    ? new SingleBar({ format: ' {bar} {value}/{total} | loss {loss} | valid {valid} | {rate} steps/s | ETA {eta_formatted}', hideCursor: true, etaBuffer: 50 })
    : null;
  const started = performance.now();
  let lastLine = performance.now();
  const onStep = (p: Progress) => {
    const rate = ((p.step - startStep) / ((performance.now() - started) / 1000)).toFixed(1);
    if (bar) {
      if (!bar.isActive) bar.start(p.totalSteps, p.step, { loss: '–', valid: '–', rate });
      bar.update(p.step, { loss: p.loss.toPrecision(3), valid: headlineMetric(p.valid), rate });
    } else if (!quiet && (performance.now() - lastLine > 10_000 || p.step === p.totalSteps)) {
      lastLine = performance.now();
      log(`step ${p.step}/${p.totalSteps}: loss ${p.loss.toPrecision(4)}, valid ${headlineMetric(p.valid)}, ${rate} steps/s`);
    }
  };
  const startStep = trainer.step;
  const signals = stopOnSignals(() => `finishing step ${trainer.step + 1} and saving ${trainer.runDir}/last.safetensors`, () => bar?.stop());
  try {
    const result = await trainer.run({ onStep, signal: signals.signal });
    bar?.stop();
    const seconds = result.seconds;
    if (result.interrupted) {
      log(`stopped by ${signals.stoppedBy} after step ${result.steps} (${seconds.toFixed(1)} s); resume with: orthornn train --resume ${trainer.runDir}`);
      process.exitCode = EXIT_CODES[signals.stoppedBy ?? 'SIGINT'];
      return;
    }
    log(`${result.reachedTarget ? 'target reached' : 'budget spent'} after ${result.steps} steps in ${seconds.toFixed(1)} s`);
    if (result.best) log(`best valid (step ${result.best.step}): ${formatMetrics(result.best)}`);
    if (result.test) log(`test on the best weights: ${formatMetrics(result.test)}`);
    await plotFinished(trainer.runDir, String(flags.plotFormat ?? 'svg'), log);
    log(`run folder: ${trainer.runDir} (config.json, metrics.jsonl, last.safetensors, best.safetensors)`);
  } finally {
    signals.release();
    bar?.stop();
    trainer.dispose();
  }
}

/** A finished run's figures (format 'none': none); a missing plotting package is one line on stderr. */
export async function plotFinished(runDir: string, format: string, log: (line: string) => void): Promise<void> {
  if (format === 'none') return;
  try {
    const files = await plotRun(runDir, { format: format as 'svg' | 'png' });
    log(`plots: ${files.join(', ')}`);
  } catch (err) {
    // The run is complete; figures are an extra (and their packages optional).
    if (!(err instanceof MissingPackageError)) throw err;
    process.stderr.write(`orthornn: no figures: ${err.message} (or --plot-format none)\n`);
  }
}

/**
 * The CLI's handling of SIGINT and SIGTERM while training: the first aborts `signal` (the run
 * finishes the step in progress and saves its checkpoint; `doing` says what, on stderr), a
 * second exits at once with 128 + the signal's number. `release()` removes the handlers.
 */
export function stopOnSignals(doing: () => string, before: () => void = () => {}): { signal: AbortSignal; readonly stoppedBy: NodeJS.Signals | undefined; release(): void } {
  const stop = new AbortController();
  let stoppedBy: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    before();
    if (stoppedBy) {
      process.stderr.write(`orthornn: ${signal} again: exiting without saving\n`);
      process.exit(EXIT_CODES[signal]);
    }
    stoppedBy = signal;
    process.stderr.write(`orthornn: ${signal}: ${doing()} (send it again to exit at once)\n`);
    stop.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: stop.signal,
    get stoppedBy() {
      return stoppedBy;
    },
    release() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** The shell's convention: 128 + the signal's number. */
export const EXIT_CODES: Partial<Record<NodeJS.Signals, number>> & Record<'SIGINT' | 'SIGTERM', number> = { SIGINT: 130, SIGTERM: 143 };
