/**
 * A queue worker: takes runs from the queue (lib/cluster/queue.ts) and trains each as its own
 * `orthornn train` process in the run's folder in the store, `concurrency` at a time. A crash of
 * a run cannot take the worker down, and the worker's event loop stays free to renew its locks.
 *
 * - A run's first worker pins it to its backend and thread count (job data and `pin.json`):
 *   every later attempt trains with the same ORTHORNN_NUM_THREADS, so that a resumed run
 *   computes what the uninterrupted one would have (float32 CPU sums depend on the split). A
 *   worker of the other backend hands such a run back (delayed) for a worker that matches.
 * - A run folder with last.safetensors is resumed (`train --resume`); one without is cleared
 *   and started afresh; one whose metrics hold the test record is finished already.
 * - Stopping (SIGTERM): no new runs are taken, each child gets SIGTERM (it finishes its step,
 *   writes last.safetensors and exits 143), and its job goes back to the wait list with
 *   `moveToWait` + WaitingError: not an attempt, not a failure. A killed worker's jobs stall
 *   instead, and another worker's stalled-job check puts them back once their lock expires.
 * - A job whose lock this worker cannot renew for a lock's duration has its child killed: the
 *   job may be another worker's by then, and two processes must never train one folder.
 * - Failures: exit code 1 is an error the run would meet again (a bad configuration, a NaN
 *   loss), failed at once with UnrecoverableError, unless its message is a resource one
 *   (ENOSPC, out of memory …); those, crashes and kills are retried with backoff, up to the
 *   job's attempts. The error kept is the child's last line on stderr.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Job, Worker } from 'bullmq';
import { bullmq } from './bullmq';
import { rangeError } from '../errors';
import { writeFileAtomic } from '../io/files';
import { native } from '../native';
import { flagOf } from '../train/config';
import { checkpointStep, runFolderState } from '../train/run-folder';
import { connectionOf, QUEUE_NAME, queueSettings, type Pin, type QueueSettings, type RunJobData, type RunJobResult } from './queue';
import type { RunStore } from './store';

export interface RunWorkerOptions {
  /** The queue's URL, redis://HOST:PORT/DB. */
  queue: string;
  store: RunStore;
  /** 'cpu' (default) or 'cuda:N'. */
  device?: string;
  /** Runs at once (default 1). */
  concurrency?: number;
  /** Cores per run (ORTHORNN_NUM_THREADS of the runs this worker starts; default: cores / concurrency). */
  threads?: number;
  log?: (line: string) => void;
  settings?: QueueSettings;
}

/** How a run's child process ended, for the queue. */
export type Outcome = 'done' | 'stopped' | 'exhausted' | 'retry' | 'fatal';

/** Resource errors worth another attempt (exit code 1 is otherwise an error the run would meet again). */
const TRANSIENT = /\b(ENOSPC|EDQUOT|EIO|EAGAIN|ENOMEM|EMFILE|ENFILE|ESTALE|ETIMEDOUT|ECONNRESET)\b|out of memory/i;

/** Classifies a child's end: exit code, signal, and its last line on stderr. */
export function outcomeOf(code: number | null, signal: NodeJS.Signals | null, lastLine: string, stopping: boolean): Outcome {
  if (code === 0) return 'done';
  // A graceful stop: this worker's, or the machine's shutdown reaching the child first.
  if (code === 143 || code === 130) return 'stopped';
  if (signal !== null && stopping) return 'stopped';
  if (code === 1) {
    // A resumed run whose checkpoint is final (killed between its last save and its test record).
    if (/the checkpoint has taken/.test(lastLine)) return 'exhausted';
    return TRANSIENT.test(lastLine) ? 'retry' : 'fatal';
  }
  return 'retry';
}

/** CUDA_VISIBLE_DEVICES for the worker's GPU N, within the devices this process may see. */
function visibleDevice(index: number): string {
  const visible = process.env.CUDA_VISIBLE_DEVICES?.split(',').map((d) => d.trim()).filter((d) => d !== '');
  if (visible && visible.length > 0) {
    if (index >= visible.length) throw rangeError('worker', '--device', `cuda:0 … cuda:${visible.length - 1} (CUDA_VISIBLE_DEVICES=${process.env.CUDA_VISIBLE_DEVICES})`, `cuda:${index}`);
    return visible[index];
  }
  return String(index);
}

export class RunWorker {
  private worker: Worker<RunJobData, RunJobResult> | undefined;
  private readonly children = new Set<ChildProcess>();
  /** Each training job's child, and when its lock was last renewed (0: renewal refused). */
  private readonly leases = new Map<string, { child: ChildProcess; renewed: number }>();
  /** Jobs whose children were killed because their locks lapsed. */
  private readonly lapsed = new Set<string>();
  private watchdog: NodeJS.Timeout | undefined;
  private stopping = false;
  private readonly backend: 'cpu' | 'cuda';
  private readonly gpu: number;
  private readonly env: NodeJS.ProcessEnv;
  readonly threads: number;
  readonly concurrency: number;
  readonly id = `${os.hostname()}:${process.pid}`;
  private readonly log: (line: string) => void;
  private readonly settings: QueueSettings;

  constructor(private readonly options: RunWorkerOptions) {
    const device = options.device ?? 'cpu';
    const m = /^(cpu|cuda)(?::(\d+))?$/.exec(device);
    if (!m || (m[1] === 'cpu' && m[2] !== undefined)) throw rangeError('worker', '--device', "'cpu' or 'cuda:N'", JSON.stringify(device));
    this.backend = m[1] as 'cpu' | 'cuda';
    this.gpu = Number(m[2] ?? 0);
    this.concurrency = options.concurrency ?? 1;
    if (!Number.isSafeInteger(this.concurrency) || this.concurrency < 1) throw rangeError('worker', '--concurrency', 'a positive integer', String(options.concurrency));
    this.threads = options.threads ?? Math.max(1, Math.floor(os.availableParallelism() / this.concurrency));
    if (!Number.isSafeInteger(this.threads) || this.threads < 1) throw rangeError('worker', '--threads', 'a positive integer', String(options.threads));
    // Each child sees one GPU, as cuda:0: a run resumed on another GPU (or machine) names the same device.
    this.env = this.backend === 'cuda' ? { ...process.env, CUDA_VISIBLE_DEVICES: visibleDevice(this.gpu) } : { ...process.env };
    this.log = options.log ?? (() => {});
    this.settings = options.settings ?? queueSettings();
    connectionOf(options.queue); // a bad URL is an error now, not a retry loop
  }

  /** Starts taking runs; resolves once connected to Redis. */
  async start(): Promise<void> {
    if (this.backend === 'cuda') {
      // Every run would fail on a GPU this machine lacks: refuse to start instead.
      const cuda = native().backends().find((b) => b.name === 'cuda');
      if (!cuda?.available || this.gpu >= cuda.deviceCount) {
        throw rangeError('worker', '--device', `a GPU of this machine (${cuda?.available ? `cuda:0 … cuda:${cuda.deviceCount - 1}` : `cuda is unavailable: ${cuda?.reason ?? 'not compiled'}`})`, `'cuda:${this.gpu}'`);
      }
    }
    const { lockDuration, stalledInterval, maxStalledCount } = this.settings;
    this.worker = new (bullmq().Worker)<RunJobData, RunJobResult>(QUEUE_NAME, (job, token) => this.process(job, token), {
      connection: { ...connectionOf(this.options.queue), maxRetriesPerRequest: null },
      concurrency: this.concurrency,
      lockDuration,
      stalledInterval,
      maxStalledCount,
      autorun: false,
    });
    this.worker.on('error', (err) => this.log(`queue error: ${err.message}`));
    this.worker.on('locksRenewed', ({ jobIds }: { jobIds: string[] }) => {
      for (const id of jobIds) {
        const lease = this.leases.get(id);
        if (lease) lease.renewed = Date.now();
      }
    });
    this.worker.on('lockRenewalFailed', (jobIds: string[]) => {
      for (const id of jobIds) {
        const lease = this.leases.get(id);
        if (lease) lease.renewed = 0;
      }
      this.checkLeases();
    });
    this.watchdog = setInterval(() => this.checkLeases(), Math.max(50, lockDuration / 4));
    this.watchdog.unref();
    await this.worker.waitUntilReady();
    void this.worker.run();
  }

  /**
   * A job whose lock this worker could not renew for a lock's duration may have been handed to
   * another worker (Redis unreachable from here, a frozen event loop): its child is killed, as
   * if this worker had died, so that two processes never train the same run folder.
   */
  private checkLeases(): void {
    const now = Date.now();
    for (const [id, lease] of this.leases) {
      if (now - lease.renewed <= this.settings.lockDuration || this.lapsed.has(id)) continue;
      this.lapsed.add(id);
      this.log(`${id}: lock not renewed for ${((now - lease.renewed) / 1000).toFixed(1)} s; stopping its run at once (another worker may have it)`);
      lease.child.kill('SIGKILL');
    }
  }

  /** Resolves when the worker has stopped (after `stop`). */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (!this.worker) return;
    const closing = this.worker.close();
    for (const child of this.children) child.kill('SIGTERM');
    await closing;
    clearInterval(this.watchdog);
  }

  /** Stops at once: children killed, jobs left to stall (another worker takes them after the lock expires). */
  kill(): void {
    for (const child of this.children) child.kill('SIGKILL');
  }

  get running(): number {
    return this.children.size;
  }

  private async process(job: Job<RunJobData, RunJobResult>, token?: string): Promise<RunJobResult> {
    const data = job.data;
    if (this.stopping) {
      await job.moveToWait(token);
      throw new (bullmq().WaitingError)();
    }
    const dir = await this.options.store.checkout(data.sweepId, data.name);
    const pinFile = path.join(dir, 'pin.json');
    let pin = data.pin ?? (existsSync(pinFile) ? (JSON.parse(readFileSync(pinFile, 'utf8')) as Pin) : undefined);
    if (pin && pin.backend !== this.backend) {
      // Pinned to the other backend: back to the queue for a worker that has it.
      await job.moveToDelayed(Date.now() + Math.min(this.settings.stalledInterval, 10_000), token);
      throw new (bullmq().DelayedError)();
    }
    if (!pin) pin = { backend: this.backend, threads: this.threads, worker: this.id, at: new Date().toISOString() };
    if (!data.pin) await job.updateData({ ...data, pin });
    if (!existsSync(pinFile)) writeFileAtomic(pinFile, `${JSON.stringify(pin, null, 2)}\n`);

    let state = runFolderState(dir);
    let seconds = data.seconds ?? 0;
    if (state === 'finished') {
      this.log(`${data.sweepId}/${data.name}: finished already`);
      return { exitCode: 0, seconds, pin };
    }
    for (;;) {
      if (state === 'fresh') await this.options.store.clear(data.sweepId, data.name);
      const resuming = state === 'resumable';
      this.log(`${data.sweepId}/${data.name}: ${resuming ? `resuming at step ${checkpointStep(path.join(dir, 'last.safetensors'))}` : 'starting'} (${pin.backend}, ${pin.threads} thread(s), attempt ${job.attemptsMade + 1})`);
      const end = await this.train(job.id!, data, dir, pin, resuming);
      if (this.lapsed.delete(job.id!)) throw new Error(`the job's lock lapsed on worker ${this.id}; the run was stopped there`);
      seconds += end.seconds;
      await this.options.store.checkin(data.sweepId, data.name);
      const outcome = outcomeOf(end.code, end.signal, end.lastLine, this.stopping);
      const how = end.code !== null ? `exit ${end.code}` : `killed by ${end.signal}`;
      const told = outcome === 'done' ? 'done' : outcome === 'stopped' ? `stopped (${how}), back to the queue` : `${how}${end.lastLine ? `: ${end.lastLine}` : ''}`;
      this.log(`${data.sweepId}/${data.name}: ${told} (${end.seconds.toFixed(1)} s)`);
      switch (outcome) {
        case 'done':
          return { exitCode: 0, seconds, pin };
        case 'exhausted':
          if (!resuming) throw new (bullmq().UnrecoverableError)(end.lastLine);
          state = 'fresh';
          continue;
        case 'stopped':
          await job.updateData({ ...data, pin, seconds });
          await job.moveToWait(token);
          throw new (bullmq().WaitingError)();
        case 'fatal':
          throw new (bullmq().UnrecoverableError)(end.lastLine || how);
        case 'retry':
          throw new Error(end.lastLine ? `${how}: ${end.lastLine}` : how);
      }
    }
  }

  /** Runs one child `orthornn train` for the job; resolves when it exits. */
  private train(jobId: string, data: RunJobData, dir: string, pin: Pin, resume: boolean): Promise<{ code: number | null; signal: NodeJS.Signals | null; lastLine: string; seconds: number }> {
    const ext = path.extname(__filename);
    const script = path.join(__dirname, '..', 'cli', `main${ext}`);
    const guard = pathToFileURL(path.join(__dirname, `orphan-guard${ext}`)).href;
    const common = ['--quiet', '--plot-format', data.plotFormat];
    const trainArgs = resume
      ? ['train', '--resume', dir, ...common]
      : ['train', ...common, ...Object.entries({ ...data.options, device: this.backend === 'cuda' ? 'cuda:0' : 'cpu', out: dir }).flatMap(([k, v]) => [flagOf(k), String(v)])];
    const env = { ...this.env, ORTHORNN_NUM_THREADS: String(pin.threads), OPENBLAS_NUM_THREADS: String(pin.threads) };
    const log = createWriteStream(path.join(dir, 'train.log'), { flags: 'a' });
    log.write(`--- ${new Date().toISOString()} worker ${this.id}: ${resume ? 'resume' : 'start'} (${pin.backend}, ORTHORNN_NUM_THREADS=${pin.threads})\n`);
    const started = performance.now();
    return new Promise((resolve) => {
      // The guard ends the child if this worker dies (an IPC channel closes), so that no
      // orphan goes on writing a folder that another worker resumes.
      const child = spawn(process.execPath, [...process.execArgv, '--import', guard, script, ...trainArgs], { env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
      this.children.add(child);
      this.leases.set(jobId, { child, renewed: Date.now() });
      if (this.stopping) child.kill('SIGTERM'); // started as the worker was told to stop
      let tail = '';
      child.stdout!.on('data', (chunk: Buffer) => log.write(chunk));
      child.stderr!.on('data', (chunk: Buffer) => {
        log.write(chunk);
        tail = (tail + chunk.toString()).slice(-4096);
      });
      let settled = false;
      const finish = (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
        if (settled) return;
        settled = true;
        this.children.delete(child);
        this.leases.delete(jobId);
        const lastLine = error?.message ?? tail.trim().split('\n').pop()?.replace(/^orthornn: /, '') ?? '';
        log.end(() => resolve({ code, signal, lastLine, seconds: (performance.now() - started) / 1000 }));
      };
      child.on('error', (err) => finish(null, null, err));
      child.on('close', (code, signal) => finish(code, signal));
    });
  }
}
