/**
 * `orthornn group`: several runs of one shape trained as one group (lib/train/group.ts) in one
 * process, one batch per step for all; `orthornn sweep --group` starts it for each set of
 * compatible rows. Each member writes an ordinary run folder.
 */
import { readFileSync } from 'node:fs';
import { rangeError, typeError } from '../errors';
import { fileError } from '../io/files';
import { OPTIONS, type TrainConfig } from '../train/config';
import { TrainerGroup } from '../train/group';
import { EXIT_CODES, formatMetrics, headlineMetric, plotFinished, stopOnSignals } from './train';

/** The members' configurations from a JSON file: an array of objects of training options, each with its own `out`. */
export function readMembers(file: string): Partial<TrainConfig>[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw fileError(`group: cannot read the members file '${file}'`, err);
  }
  let members: unknown;
  try {
    members = JSON.parse(text);
  } catch (err) {
    throw rangeError('group', '<members.json>', 'a JSON array of configurations', `'${file}', which is not JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(members) || members.length === 0) throw rangeError('group', '<members.json>', 'a non-empty JSON array of configurations', `'${file}'`);
  return members.map((m: unknown, i) => {
    if (m === null || typeof m !== 'object' || Array.isArray(m)) throw typeError('group', `<members.json>[${i}]`, 'an object of training options', m);
    const unknown = Object.keys(m).find((k) => !(k in OPTIONS));
    if (unknown !== undefined) throw rangeError('group', `<members.json>[${i}]`, 'training options (as in config.json)', `'${unknown}'`);
    if (typeof (m as { out?: unknown }).out !== 'string' || (m as { out: string }).out === '') throw rangeError('group', `<members.json>[${i}].out`, 'the run folder of this member', String((m as { out?: unknown }).out));
    return m as Partial<TrainConfig>;
  });
}

export async function groupCommand(file: string | undefined, flags: Record<string, unknown>): Promise<void> {
  const quiet = Boolean(flags.quiet);
  const log = (line: string) => {
    if (!quiet) process.stdout.write(`${line}\n`);
  };
  const resume = flags.resume as string[] | undefined;
  if ((file === undefined) === (resume === undefined)) throw rangeError('group', '<members.json>', 'either a members file or --resume with the members\' run folders', file === undefined ? 'neither' : 'both');
  const group = resume ? await TrainerGroup.resume(resume) : await TrainerGroup.create(readMembers(file!));
  const first = group.members[0];
  const { config } = first;
  log(`${resume ? `resuming a group at step ${group.step}` : 'a group'} of ${group.members.length} on ${group.contexts.length === 1 ? 'one context' : `${group.contexts.length} contexts of ${config.device} (a stream each)`}, one batch per step for all: task ${config.task}, model ${config.model} (${config.hidden} units, ${config.dtype}), batch ${config.batchSize}, ${first.plannedSteps} steps`);
  for (const m of group.members) log(`  ${m.runDir}: ${describeMember(m.config)}`);
  const started = performance.now();
  const startStep = group.step;
  let lastLine = started;
  const signals = stopOnSignals(() => `finishing step ${group.step + 1} and saving every member's last.safetensors`);
  try {
    const results = await group.run({
      signal: signals.signal,
      onStep: (p) => {
        if (quiet || (performance.now() - lastLine < 10_000 && p.step !== p.totalSteps)) return;
        lastLine = performance.now();
        const rate = ((p.step - startStep) / ((performance.now() - started) / 1000)).toFixed(1);
        log(`step ${p.step}/${p.totalSteps}: losses ${p.losses.map((l) => (Number.isNaN(l) ? 'done' : l.toPrecision(4))).join(', ')}, ${rate} steps/s`);
      },
    });
    if (results.some((r) => r.interrupted)) {
      log(`stopped by ${signals.stoppedBy} after step ${group.step}; resume with: orthornn group --resume ${group.members.filter((_, i) => results[i].interrupted).map((m) => m.runDir).join(' ')}`);
      process.exitCode = EXIT_CODES[signals.stoppedBy ?? 'SIGINT'];
      return;
    }
    for (const [i, r] of results.entries()) {
      const m = group.members[i];
      log(`${m.runDir}: ${r.reachedTarget ? 'target reached' : 'budget spent'} after ${r.steps} steps in ${r.seconds.toFixed(1)} s; best valid ${headlineMetric(r.best, 2)}${r.test ? `; test on the best weights: ${formatMetrics(r.test)}` : ''}`);
      await plotFinished(m.runDir, String(flags.plotFormat ?? 'svg'), log);
    }
  } finally {
    signals.release();
    group.dispose();
  }
}

/** A member's own settings, short. */
function describeMember(c: TrainConfig): string {
  const parts = [c.model === 'svd' ? `margin ${c.margin}` : c.model, `init ${c.model === 'lstm' ? c.lstmInit : c.init}`, `${c.optimizer} lr ${c.lr}`];
  if (c.model === 'svd') parts.push(`Cayley lr ${c.cayleyLr}`);
  return parts.join(', ');
}
