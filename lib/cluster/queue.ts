/**
 * The job queue that spreads sweeps over machines: BullMQ on Redis (docs/cluster.md). One
 * queue, `orthornn-runs`, in the Redis database the URL names; one job per run, whose id is
 * `<sweep id>/<run name>`, so that submitting a sweep again adds only what is missing. Each
 * sweep also has a record (its runs and how to summarise them) under `orthornn:sweep:<id>`.
 *
 * The timings that decide how fast a killed worker's run moves on are BullMQ's worker
 * options, with these defaults and environment overrides:
 *
 * | variable | default | meaning |
 * |---|---|---|
 * | `ORTHORNN_QUEUE_LOCK_MS` | 30000 | a worker's lock on its job (renewed every half of it while the worker lives) |
 * | `ORTHORNN_QUEUE_STALLED_MS` | 30000 | how often workers look for jobs whose lock expired (stalled) and put them back |
 * | `ORTHORNN_QUEUE_MAX_STALLED` | 10 | stalls (lost workers) a job survives before it is failed |
 * | `ORTHORNN_QUEUE_ATTEMPTS` | 3 | attempts of a run that fails for a reason worth retrying (set at submission) |
 * | `ORTHORNN_QUEUE_BACKOFF_MS` | 30000 | the first retry's delay, doubled at each further one (set at submission) |
 * | `ORTHORNN_QUEUE_POLL_MS` | 2000 | how often a waiting `sweep --queue` looks at its runs |
 */
import { createHash } from 'node:crypto';
import type { JobsOptions, Queue, RedisOptions } from 'bullmq';
import { bullmq } from './bullmq';
import { rangeError } from '../errors';
import type { TrainConfig } from '../train/config';
import type { Budget } from '../train/presets';

export const QUEUE_NAME = 'orthornn-runs';

export interface QueueSettings {
  lockDuration: number;
  stalledInterval: number;
  maxStalledCount: number;
  attempts: number;
  backoff: number;
  poll: number;
}

function envInteger(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) throw rangeError('queue', name, `an integer ≥ ${min}`, JSON.stringify(raw));
  return n;
}

/** The queue's timings and retry policy, from the environment (see the table above). */
export function queueSettings(env: NodeJS.ProcessEnv = process.env): QueueSettings {
  return {
    lockDuration: envInteger(env, 'ORTHORNN_QUEUE_LOCK_MS', 30_000, 100),
    stalledInterval: envInteger(env, 'ORTHORNN_QUEUE_STALLED_MS', 30_000, 100),
    maxStalledCount: envInteger(env, 'ORTHORNN_QUEUE_MAX_STALLED', 10, 0),
    attempts: envInteger(env, 'ORTHORNN_QUEUE_ATTEMPTS', 3, 1),
    backoff: envInteger(env, 'ORTHORNN_QUEUE_BACKOFF_MS', 30_000, 0),
    poll: envInteger(env, 'ORTHORNN_QUEUE_POLL_MS', 2000, 10),
  };
}

/** `redis://[user[:password]@]host[:port][/db]` (or `rediss://` for TLS) as ioredis options. */
export function connectionOf(url: string): RedisOptions & { host: string; port: number; db: number } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw rangeError('queue', '--queue', 'a URL redis://HOST:PORT/DB', JSON.stringify(url));
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw rangeError('queue', '--queue', 'a redis:// or rediss:// URL', JSON.stringify(url));
  const db = u.pathname === '' || u.pathname === '/' ? 0 : Number(u.pathname.slice(1));
  if (!Number.isSafeInteger(db) || db < 0) throw rangeError('queue', '--queue', 'a database number after the port (redis://HOST:PORT/0)', JSON.stringify(url));
  return {
    host: u.hostname || '127.0.0.1',
    port: u.port ? Number(u.port) : 6379,
    db,
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}

/** The backend and thread count a run keeps for its whole life (float32 CPU results depend on the thread count). */
export interface Pin {
  backend: 'cpu' | 'cuda';
  threads: number;
  /** The worker that started the run (`host:pid`), and when. */
  worker: string;
  at: string;
}

/** A run's job: what the worker needs to train it. */
export interface RunJobData {
  sweepId: string;
  /** The run's folder name in the sweep. */
  name: string;
  /** Every training option but `out` (the worker puts the run in the store) and `device` (the worker's). */
  options: Partial<TrainConfig>;
  plotFormat: 'svg' | 'png' | 'none';
  /** Set by the first worker that takes the run. */
  pin?: Pin;
  /** Wall seconds of earlier attempts that were stopped gracefully. */
  seconds?: number;
}

/** What a worker returns for a run that finished. */
export interface RunJobResult {
  exitCode: number;
  /** Wall seconds of the processes that trained it (killed ones excepted). */
  seconds: number;
  pin: Pin;
}

/** What `sweep --queue` stores about a sweep, so that `--status` and `--collect` can come back to it. */
export interface SweepRecord {
  id: string;
  kind: 'grid' | 'preset';
  /** Grid: the options shared by the runs. Preset: the options given over the preset's. */
  base: Partial<TrainConfig>;
  grid?: string[];
  preset?: string;
  budget?: Budget;
  plotFormat: 'svg' | 'png' | 'none';
  runs: { name: string; values: Partial<TrainConfig> }[];
  /** When it was first submitted (ms since the epoch), and the checkout's commit then. */
  created: number;
  commit: string | null;
}

/** A job's id: the sweep's id and the run's name. */
export function jobIdOf(sweepId: string, run: string): string {
  return `${sweepId}/${run}`;
}

/**
 * The id of a sweep when none is given: a readable prefix (the preset and budget, or 'grid')
 * and a hash of everything that decides its runs, so the same sweep always gets the same id.
 */
export function sweepIdOf(record: Pick<SweepRecord, 'kind' | 'base' | 'grid' | 'preset' | 'budget' | 'plotFormat'>): string {
  const sorted = Object.fromEntries(Object.entries(record.base).sort(([a], [b]) => a.localeCompare(b)));
  const key = JSON.stringify({ kind: record.kind, base: sorted, grid: record.grid ?? null, preset: record.preset ?? null, budget: record.budget ?? null, plotFormat: record.plotFormat });
  const hash = createHash('sha256').update(key).digest('hex').slice(0, 10);
  return record.kind === 'preset' ? `${record.preset}-${record.budget}-${hash}` : `grid-${hash}`;
}

const RECORD_PREFIX = 'orthornn:sweep:';

/** The queue as seen by a submitter: jobs, and the sweeps' records. */
export class RunQueue {
  private lastError: Error | undefined;

  private constructor(readonly url: string, readonly queue: Queue) {
    queue.on('error', (err) => {
      this.lastError = err;
    });
  }

  /** Connects, failing with one clear error when Redis cannot be reached (at the first error, or after `timeoutMs`). */
  static async open(url: string, timeoutMs = 10_000): Promise<RunQueue> {
    const connection = connectionOf(url);
    // No reconnecting until the first connection succeeds: an unreachable server is an error now.
    let connected = false;
    const options: RedisOptions = { ...connection, retryStrategy: (times: number) => (connected ? Math.min(times * 200, 2000) : null) };
    const q = new RunQueue(url, new (bullmq().Queue)(QUEUE_NAME, { connection: options }));
    let timer: NodeJS.Timeout | undefined;
    const ready = q.queue.waitUntilReady();
    ready.catch(() => {}); // the race below reports it
    try {
      await Promise.race([
        ready,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs / 1000} s`)), timeoutMs);
          q.queue.once('error', reject); // refused, unknown host: no point in waiting
        }),
      ]);
    } catch (err) {
      // Let the connection report its failure to the queue before closing it (after that it
      // would have no listener), then close.
      await Promise.race([ready.catch(() => {}), new Promise((resolve) => setTimeout(resolve, 1000))]);
      await q.close().catch(() => {});
      const cause = q.lastError?.message ?? (err as Error).message;
      throw Object.assign(new Error(`cannot reach Redis at ${url}: ${cause}`), { code: 'ERR_ORTHORNN_QUEUE' });
    } finally {
      clearTimeout(timer);
    }
    connected = true;
    return q;
  }

  async close(): Promise<void> {
    await this.queue.close();
  }

  /**
   * Stores a sweep's record unless one with its id exists; returns the stored one. An id that
   * already names a sweep with other runs is an error.
   */
  async register(record: SweepRecord): Promise<SweepRecord> {
    // The client is ioredis behind BullMQ's interface, which passes SET's NX through.
    const client = (await this.queue.client) as unknown as { set(key: string, value: string, nx: 'NX'): Promise<string | null> };
    const key = RECORD_PREFIX + record.id;
    const created = await client.set(key, JSON.stringify(record), 'NX');
    if (created === 'OK') return record;
    const existing = await this.record(record.id);
    if (!existing) return this.register(record);
    if (JSON.stringify(existing.runs) !== JSON.stringify(record.runs) || existing.kind !== record.kind) {
      throw rangeError('sweep', '--sweep-id', 'an id that no other sweep uses', `'${record.id}', which names a sweep with other runs`);
    }
    return existing;
  }

  /** A sweep's record, or undefined when the queue has none by that id. */
  async record(id: string): Promise<SweepRecord | undefined> {
    const client = await this.queue.client;
    const text = await client.get(RECORD_PREFIX + id);
    return text === null ? undefined : (JSON.parse(text) as SweepRecord);
  }

  /** Adds the sweep's runs that the queue does not hold yet; returns how many were added. */
  async enqueue(record: SweepRecord, settings: QueueSettings = queueSettings()): Promise<{ added: number; existing: number }> {
    const opts = (name: string): JobsOptions => ({
      jobId: jobIdOf(record.id, name),
      attempts: settings.attempts,
      backoff: { type: 'exponential', delay: settings.backoff },
      // Finished jobs stay: they are what makes a second submission add nothing.
      removeOnComplete: false,
      removeOnFail: false,
    });
    const missing: SweepRecord['runs'] = [];
    for (const run of record.runs) if ((await this.queue.getJobState(jobIdOf(record.id, run.name))) === 'unknown') missing.push(run);
    const { out: _out, ...base } = record.base;
    await this.queue.addBulk(missing.map((run) => {
      const options: Partial<TrainConfig> = { ...base, ...run.values };
      delete options.device;
      const data: RunJobData = { sweepId: record.id, name: run.name, options, plotFormat: record.plotFormat };
      return { name: run.name, data, opts: opts(run.name) };
    }));
    return { added: missing.length, existing: record.runs.length - missing.length };
  }
}
