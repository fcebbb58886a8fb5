/**
 * `orthornn sweep … --queue URL --store DIR`: a grid or a preset as jobs on the queue, trained
 * by `orthornn worker`s on any number of machines (docs/cluster.md). Submitting is idempotent:
 * the sweep's id comes from the grid or preset and the options (or --sweep-id), each run's
 * job id from the sweep's id and the run's name, and submitting again adds only missing runs.
 * The command then waits with a progress line and writes the same summary as a local sweep;
 * `--detach` returns at once, and `--status ID` / `--collect ID` come back to it later.
 */
import type { Command } from 'commander';
import Table from 'cli-table3';
import { rangeError } from '../errors';
import { resolveConfig, type TrainConfig } from '../train/config';
import { queueSettings, RunQueue, sweepIdOf, type SweepRecord } from '../cluster/queue';
import { checkName, openStore } from '../cluster/store';
import { countStates, formatCounts, runStates, waitForSweep, writeSweepResults } from '../cluster/submit';
import { commitOf, presetPlan } from './preset';
import { expandGrid, runName } from './sweep';

/** The sweep command's queue flags. */
export function addQueueOptions(cmd: Command): Command {
  return cmd
    .option('--queue <url>', 'submit the runs to a job queue (redis://HOST:PORT/DB) for `orthornn worker`s instead of training here')
    .option('--store <dir>', "with --queue: the folder shared with the workers, holding each sweep's run folders and summary")
    .option('--sweep-id <id>', 'with --queue: the sweep\'s id (default: derived from the grid or preset and the options)')
    .option('--detach', 'with --queue: return once the runs are queued (see --status and --collect)')
    .option('--status <id>', "with --queue: print a queued sweep's runs and states, and return")
    .option('--collect <id>', 'with --queue and --store: wait for a queued sweep to end, then write its summary');
}

/** Whether the sweep command was given any queue flag (and is then this file's to run). */
export function isQueued(flags: Record<string, unknown>): boolean {
  return ['queue', 'store', 'sweepId', 'detach', 'status', 'collect'].some((k) => flags[k] !== undefined);
}

export async function queuedSweepCommand(given: Partial<TrainConfig>, flags: Record<string, unknown>): Promise<void> {
  const log = (l: string) => process.stdout.write(`${l}\n`);
  const url = flags.queue as string | undefined;
  if (url === undefined) throw rangeError('sweep', '--queue', 'the queue\'s URL (redis://HOST:PORT/DB) with --store, --sweep-id, --detach, --status or --collect', 'none');
  for (const local of ['jobs', 'threads'] as const) {
    if (flags[local] !== undefined) throw rangeError('sweep', `--${local}`, 'omitted with --queue (each worker sets its own --concurrency and --threads)', String(flags[local]));
  }
  if (flags.group === true) throw rangeError('sweep', '--group', 'omitted with --queue (each job is one run: the queue spreads runs over workers, not groups)', 'given');
  if (given.out !== undefined) throw rangeError('sweep', '--out', 'omitted with --queue (the sweep lives in --store)', given.out);
  const settings = queueSettings();
  const queue = await RunQueue.open(url);
  try {
    if (typeof flags.status === 'string') return await statusCommand(queue, flags.status, log);
    if (flags.store === undefined) throw rangeError('sweep', '--store', 'the folder shared with the workers', 'none');
    const store = openStore(flags.store as string);
    let record: SweepRecord;
    if (typeof flags.collect === 'string') {
      record = await recordOf(queue, flags.collect);
    } else {
      record = await queue.register(sweepRecord(given, flags));
      await store.writeJson(record.id, 'sweep.json', record);
      const { added, existing } = await queue.enqueue(record, settings);
      log(`sweep ${record.id}: ${record.runs.length} runs, ${added} queued${existing ? `, ${existing} already in the queue` : ''} → ${store.location}/${record.id}`);
      if (flags.detach) {
        log(`check: orthornn sweep --status ${record.id} --queue ${url}`);
        log(`collect: orthornn sweep --collect ${record.id} --queue ${url} --store ${flags.store as string}`);
        return;
      }
    }
    const { runs, states } = await waitForSweep(queue, store, record, { poll: settings.poll, log });
    await writeSweepResults(store, record, runs, states, log);
    if (runs.some((r) => r.status !== 'ok')) process.exitCode = 1;
  } finally {
    await queue.close();
  }
}

/** The record of the sweep the flags describe (a preset, or a grid over the given options). */
function sweepRecord(given: Partial<TrainConfig>, flags: Record<string, unknown>): SweepRecord {
  const plotFormat = (flags.plotFormat as SweepRecord['plotFormat'] | undefined) ?? 'svg';
  if (flags.continue !== undefined) throw rangeError('sweep', '--continue', 'omitted with a queue (its workers resume interrupted jobs themselves)', 'given');
  let partial: Omit<SweepRecord, 'id' | 'created' | 'commit'>;
  if (typeof flags.preset === 'string') {
    const plan = presetPlan(flags.preset, given, flags);
    partial = { kind: 'preset', base: plan.user, preset: plan.preset.name, budget: plan.budget, plotFormat, runs: plan.runs.map((r) => ({ name: r.name, values: r.values })) };
  } else {
    const grid = (flags.grid as string[] | undefined) ?? [];
    if (flags.budget !== undefined) throw rangeError('sweep', '--budget', 'only with --preset', String(flags.budget));
    if (grid.length === 0) throw rangeError('sweep', '--grid', 'at least one key=values entry (or --preset NAME)', 'none');
    const runs = expandGrid(grid).map((values) => ({ name: runName(values), values }));
    partial = { kind: 'grid', base: given, grid, plotFormat, runs };
  }
  // Every run must be a valid configuration before anything is queued.
  for (const r of partial.runs) resolveConfig({ ...partial.base, ...r.values, out: 'x' });
  const id = typeof flags.sweepId === 'string' ? checkName('--sweep-id', flags.sweepId) : sweepIdOf(partial);
  return { id, ...partial, created: Date.now(), commit: commitOf() };
}

async function recordOf(queue: RunQueue, id: string): Promise<SweepRecord> {
  const record = await queue.record(id);
  if (!record) throw rangeError('sweep', 'id', `a sweep submitted to ${queue.url}`, `'${id}', which it does not hold`);
  return record;
}

async function statusCommand(queue: RunQueue, id: string, log: (line: string) => void): Promise<void> {
  const record = await recordOf(queue, id);
  const states = await runStates(queue, record);
  const table = new Table({ head: ['run', 'state', 'attempts', 'pinned to', 'seconds', 'error'], style: { head: [], border: [] } });
  for (const s of states) {
    table.push([s.name, s.state, String(s.attempts), s.pin ? `${s.pin.backend}, ${s.pin.threads} thread(s), ${s.pin.worker}` : '–', s.seconds?.toFixed(1) ?? '–', (s.error ?? '').slice(0, 60)]);
  }
  log(`${formatCounts(record, countStates(states))}\n${table.toString()}`);
}
