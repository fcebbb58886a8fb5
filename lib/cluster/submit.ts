/**
 * The submitting side of a queued sweep: where its runs stand, waiting for them with a
 * progress line, and the summary (the same files a local sweep writes, by the same code in
 * lib/cli/sweep.ts and lib/cli/preset.ts) once all have finished or failed.
 */
import path from 'node:path';
import type { JobState } from 'bullmq';
import { presetPlan, writePresetResults } from '../cli/preset';
import { sweepRunOf, writeSweepSummary, type SweepRun } from '../cli/sweep';
import { headlineMetric } from '../cli/train';
import { jobIdOf, type RunJobData, type RunJobResult, type RunQueue, type SweepRecord } from './queue';
import type { RunStore } from './store';

export interface RunState {
  name: string;
  /** BullMQ's state of the run's job; 'unknown' when the queue no longer holds it. */
  state: JobState | 'unknown';
  /** Attempts made (BullMQ's attemptsMade: those that ended, whether finished or failed). */
  attempts: number;
  /** The failure kept by the queue (the child's last line on stderr). */
  error?: string;
  result?: RunJobResult;
  /** Wall seconds, for a run that ended. */
  seconds?: number;
  /** When it ended (ms since the epoch). */
  finishedOn?: number;
  /** The worker that pinned it, and to what. */
  pin?: RunJobData['pin'];
}

export interface SweepCounts {
  done: number;
  running: number;
  failed: number;
  waiting: number;
}

/** The state of every run of a sweep, in the record's order. */
export async function runStates(queue: RunQueue, record: SweepRecord): Promise<RunState[]> {
  return Promise.all(record.runs.map(async ({ name }): Promise<RunState> => {
    // The state first, then the job's hash: a job seen finished has its reason and return
    // value written already (read the other way round, a job that fails between the two reads
    // shows as failed with the hash of its active self, no reason in it).
    const id = jobIdOf(record.id, name);
    const state = await queue.queue.getJobState(id);
    const job = state === 'unknown' ? undefined : await queue.queue.getJob(id);
    if (!job) return { name, state: 'unknown', attempts: 0, error: 'not in the queue (removed?)' };
    const data = job.data as RunJobData;
    const result = state === 'completed' ? (job.returnvalue as RunJobResult) : undefined;
    const ended = state === 'completed' || state === 'failed';
    const seconds = result?.seconds ?? (ended && job.finishedOn && job.processedOn ? (data.seconds ?? 0) + (job.finishedOn - job.processedOn) / 1000 : undefined);
    return { name, state, attempts: job.attemptsMade, error: job.failedReason || undefined, result, seconds, finishedOn: ended ? job.finishedOn : undefined, pin: data.pin };
  }));
}

export function countStates(states: RunState[]): SweepCounts {
  const counts: SweepCounts = { done: 0, running: 0, failed: 0, waiting: 0 };
  for (const s of states) {
    if (s.state === 'completed') counts.done++;
    else if (s.state === 'failed' || s.state === 'unknown') counts.failed++;
    else if (s.state === 'active') counts.running++;
    else counts.waiting++;
  }
  return counts;
}

export function formatCounts(record: SweepRecord, c: SweepCounts): string {
  return `${record.id}: ${c.done}/${record.runs.length} done, ${c.running} running, ${c.failed} failed, ${c.waiting} waiting`;
}

/** A run's row of the summary, from its folder in the store and its job. */
async function sweepRunFor(store: RunStore, record: SweepRecord, run: SweepRecord['runs'][number], state: RunState): Promise<SweepRun> {
  const dir = await store.checkout(record.id, run.name);
  const ok = state.state === 'completed';
  return sweepRunOf(run.name, run.values, dir, { exitCode: ok ? 0 : null, seconds: state.seconds ?? 0, error: ok ? undefined : state.error ?? state.state });
}

/**
 * Waits until every run of the sweep has finished or failed, logging a line per finished run
 * and the counts whenever they change; resolves with the runs' summary rows.
 */
export async function waitForSweep(queue: RunQueue, store: RunStore, record: SweepRecord, options: { poll: number; log: (line: string) => void }): Promise<{ runs: SweepRun[]; states: RunState[] }> {
  const reported = new Set<string>();
  let last = '';
  for (;;) {
    const states = await runStates(queue, record);
    for (const [i, s] of states.entries()) {
      if (reported.has(s.name) || !['completed', 'failed', 'unknown'].includes(s.state)) continue;
      reported.add(s.name);
      const r = await sweepRunFor(store, record, record.runs[i], s);
      options.log(`[${reported.size}/${record.runs.length}] ${r.name}: ${r.status}${r.status === 'ok' ? `, test ${headlineMetric(r.test, 2)}` : ` (${r.error})`} in ${r.seconds.toFixed(1)} s`);
    }
    const counts = countStates(states);
    const line = formatCounts(record, counts);
    if (line !== last) options.log(line);
    last = line;
    if (counts.done + counts.failed === record.runs.length) {
      const runs = await Promise.all(record.runs.map((run, i) => sweepRunFor(store, record, run, states[i])));
      return { runs, states };
    }
    await new Promise((resolve) => setTimeout(resolve, options.poll));
  }
}

/**
 * Writes the sweep's summary into its folder in the store: summary.json and summary.txt, and
 * for a preset also results.md, results.json and the comparison figure. Returns the folder.
 */
export async function writeSweepResults(store: RunStore, record: SweepRecord, runs: SweepRun[], states: RunState[], log: (line: string) => void): Promise<string> {
  const dir = await store.sweepFolder(record.id);
  const table = writeSweepSummary(dir, record.base, record.grid ?? [], runs);
  if (record.kind === 'preset') {
    const plan = presetPlan(record.preset!, record.base, { budget: record.budget });
    const ends = states.map((s) => s.finishedOn ?? record.created);
    const seconds = (Math.max(record.created, ...ends) - record.created) / 1000;
    await writePresetResults(plan, runs, { dir, seconds, commit: record.commit, plotFormat: record.plotFormat, log });
  } else {
    log(table);
  }
  log(`summary: ${path.join(dir, 'summary.json')}`);
  return dir;
}
