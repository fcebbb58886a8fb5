import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { connectionOf, jobIdOf, sweepIdOf, type RunQueue, type SweepRecord } from '../lib/cluster/queue';
import { runStates } from '../lib/cluster/submit';
import { DirectoryStore } from '../lib/cluster/store';
import { outcomeOf } from '../lib/cluster/worker';
import { checkpointStep, runFolderState } from '../lib/train/run-folder';
import { until } from './helpers';
import { readCheckpoint } from '../lib/train/checkpoint';

const ROOT = path.join(__dirname, '..');
const CLI = ['--import', 'tsx', path.join(ROOT, 'lib/cli/main.ts')];
/** Fast stalled-job detection: a killed worker's job is back in the queue within about 4 s. */
const QUEUE_ENV = { ORTHORNN_QUEUE_LOCK_MS: '3000', ORTHORNN_QUEUE_STALLED_MS: '1000', ORTHORNN_QUEUE_BACKOFF_MS: '200', ORTHORNN_QUEUE_POLL_MS: '200' };

/** The Redis server these tests start on a free loopback port (ORTHORNN_REDIS_SERVER: another binary). */
const REDIS_SERVER = process.env.ORTHORNN_REDIS_SERVER || 'redis-server';

/** metrics.jsonl without the wall-clock fields, which no two runs share. */
function metrics(dir: string): string[] {
  const lines = readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n');
  return lines.map((l) => JSON.stringify({ ...JSON.parse(l), time: undefined }));
}

function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [...CLI, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 300_000, env: { ...process.env, ...QUEUE_ENV, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The same, without blocking this process (whose workers' output must keep flowing). */
function cliAsync(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...CLI, ...args], { cwd: ROOT, env: { ...process.env, ...QUEUE_ENV } });
    let stdout = '', stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Sends one command to Redis (RESP), after selecting the database; resolves with the raw reply. */
function redisCommand(port: number, db: number, ...args: string[]): Promise<string> {
  const encode = (parts: string[]) => `*${parts.length}\r\n${parts.map((p) => `$${Buffer.byteLength(p)}\r\n${p}\r\n`).join('')}`;
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.end(encode(['SELECT', String(db)]) + encode(args)));
    let reply = '';
    socket.on('data', (d) => (reply += d));
    socket.on('error', reject);
    socket.on('close', () => resolve(reply));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A worker process, with its output lines kept. */
interface WorkerProcess {
  child: ChildProcess;
  lines: string[];
  exited: Promise<number | null>;
}

function startWorker(url: string, store: string, threads: number): WorkerProcess {
  const child = spawn(process.execPath, [...CLI, 'worker', '--queue', url, '--store', store, '--threads', String(threads)], { cwd: ROOT, env: { ...process.env, ...QUEUE_ENV } });
  const lines: string[] = [];
  let partial = '';
  child.stdout!.on('data', (d: Buffer) => {
    const parts = (partial + d.toString()).split('\n');
    partial = parts.pop()!;
    lines.push(...parts);
  });
  child.stderr!.on('data', (d: Buffer) => lines.push(...d.toString().trim().split('\n').map((l) => `stderr: ${l}`)));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, lines, exited };
}

/** The run a worker is training now (its last 'starting' or 'resuming' line not followed by an end), or undefined. */
function currentRun(w: WorkerProcess, sweepId: string): string | undefined {
  let current: string | undefined;
  for (const line of w.lines) {
    const m = new RegExp(`${sweepId}/(\\S+): (starting|resuming|done|stopped|exit|killed)`).exec(line);
    if (m) current = m[2] === 'starting' || m[2] === 'resuming' ? m[1] : undefined;
  }
  return current;
}

/** Runs `orthornn train` children, two at a time; each with its ORTHORNN_NUM_THREADS. */
async function trainAll(jobs: { args: string[]; threads: number }[]): Promise<void> {
  let next = 0;
  const one = async () => {
    while (next < jobs.length) {
      const { args, threads } = jobs[next++];
      const code = await new Promise<number | null>((resolve) => {
        const child = spawn(process.execPath, [...CLI, 'train', ...args], { cwd: ROOT, stdio: 'ignore', env: { ...process.env, ORTHORNN_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) } });
        child.on('close', resolve);
      });
      assert.equal(code, 0, `reference run ${args.join(' ')}`);
    }
  };
  await Promise.all([one(), one()]);
}

describe('97 queue: sweeps on BullMQ workers', function () {
  this.timeout(600_000);

  describe('without Redis', () => {
    it('child outcomes: finished, stopped, deterministic failures and ones worth a retry', () => {
      assert.equal(outcomeOf(0, null, '', false), 'done');
      assert.equal(outcomeOf(143, null, 'SIGTERM: finishing step 12', true), 'stopped');
      assert.equal(outcomeOf(130, null, '', false), 'stopped');
      assert.equal(outcomeOf(null, 'SIGKILL', '', true), 'stopped');
      assert.equal(outcomeOf(1, null, "train: argument 'hidden' must be ≥ 1, got 0", false), 'fatal');
      assert.equal(outcomeOf(1, null, 'training step 40: the loss is NaN', false), 'fatal');
      assert.equal(outcomeOf(1, null, "cannot write 'runs/x/last.safetensors': ENOSPC: no space left on device", false), 'retry');
      assert.equal(outcomeOf(null, 'SIGSEGV', '', false), 'retry');
      assert.equal(outcomeOf(null, 'SIGKILL', '', false), 'retry');
      assert.equal(outcomeOf(1, null, "resume: argument 'steps' must be more than the 400 steps the checkpoint has taken, got a budget of 400 steps", false), 'exhausted');
    });

    it('a run seen failed carries its reason, even when it fails between the reads of its state and its job', async () => {
      // A job that goes from active to failed on the first read that touches it: whichever of
      // its state and its hash is read second sees it failed. Read hash-then-state, the run
      // showed as failed with the reason of its active self: none.
      let reads = 0;
      const failedNow = () => ++reads > 1;
      const job = () => {
        const failed = failedNow();
        return { data: { name: 'seed-1' }, attemptsMade: failed ? 1 : 0, failedReason: failed ? 'cannot read corpus.txt' : '', finishedOn: failed ? 2 : undefined, processedOn: 1, returnvalue: null, getState: async () => (failedNow() ? 'failed' : 'active') };
      };
      const queue = { queue: { getJob: async () => job(), getJobState: async () => (failedNow() ? 'failed' : 'active') } } as unknown as RunQueue;
      const record = { id: 's', kind: 'grid', base: {}, plotFormat: 'none', runs: [{ name: 'seed-1', values: {} }], created: 0, commit: null } as SweepRecord;
      const first = (await runStates(queue, record))[0]!;
      const second = (await runStates(queue, record))[0]!;
      for (const s of [first, second]) if (s.state === 'failed') assert.equal(s.error, 'cannot read corpus.txt', JSON.stringify(s));
      assert.equal(second.state, 'failed');
    });

    it('URLs, sweep ids and job ids', async () => {
      assert.deepEqual(connectionOf('redis://10.0.0.2:6380/3'), { host: '10.0.0.2', port: 6380, db: 3 });
      assert.deepEqual(connectionOf('rediss://u:p%40ss@h/'), { host: 'h', port: 6379, db: 0, username: 'u', password: 'p@ss', tls: {} });
      assert.throws(() => connectionOf('http://h:1/0'), /redis:\/\//);
      assert.throws(() => connectionOf('redis://h:1/x'), /database number/);
      const a = sweepIdOf({ kind: 'grid', base: { hidden: 16, steps: 10 }, grid: ['seed=1,2'], plotFormat: 'none' });
      assert.equal(a, sweepIdOf({ kind: 'grid', base: { steps: 10, hidden: 16 }, grid: ['seed=1,2'], plotFormat: 'none' }), 'the order of options does not matter');
      assert.notEqual(a, sweepIdOf({ kind: 'grid', base: { hidden: 16, steps: 11 }, grid: ['seed=1,2'], plotFormat: 'none' }));
      assert.match(sweepIdOf({ kind: 'preset', base: {}, preset: 'copy-200-margins', budget: 'full', plotFormat: 'svg' }), /^copy-200-margins-full-[0-9a-f]{10}$/);
      assert.equal(jobIdOf(a, 'seed-1'), `${a}/seed-1`);
      await assert.rejects(new DirectoryStore(os.tmpdir()).checkout('../x', 'y'), /sweep id/);
    });

    it('run folders: finished, resumable, or to be started afresh (a final checkpoint without its test record included)', async () => {
      const tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-queue-state-'));
      try {
        const dir = path.join(tmp, 'run');
        const r = cli(['train', '--task', 'copy', '--delay', '5', '--hidden', '8', '--steps', '40', '--valid-every', '20', '--valid-size', '16', '--checkpoint-every', '10', '--plot-format', 'none', '--quiet', '--out', dir]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(runFolderState(dir), 'finished');
        assert.equal(checkpointStep(path.join(dir, 'last.safetensors')), 40);
        // Without its test record the final checkpoint cannot be resumed: start afresh.
        const lines = readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').filter((l) => JSON.parse(l).type !== 'test');
        writeFileSync(path.join(dir, 'metrics.jsonl'), `${lines.join('\n')}\n`);
        assert.equal(runFolderState(dir), 'fresh');
        // An earlier checkpoint is resumable (steps 40 of a budget of 80).
        const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
        writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, steps: 80 }));
        assert.equal(runFolderState(dir), 'resumable');
        // Killed before its first checkpoint.
        const store = new DirectoryStore(tmp);
        mkdirSync(path.join(tmp, 's', 'partial'), { recursive: true });
        writeFileSync(path.join(tmp, 's', 'partial', 'metrics.jsonl'), '{"type":"train","step":1');
        writeFileSync(path.join(tmp, 's', 'partial', 'pin.json'), '{}');
        assert.equal(runFolderState(path.join(tmp, 's', 'partial')), 'fresh');
        await store.clear('s', 'partial');
        assert.deepEqual(readdirSync(path.join(tmp, 's', 'partial')), ['pin.json'], 'the pin survives a fresh start');
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });
  });

  describe('with Redis', function () {
    let tmp: string;
    let redis: ChildProcess | undefined;
    let port = 0;
    const workers: WorkerProcess[] = [];

    before(async function () {
      const probe = spawnSync(REDIS_SERVER, ['--version'], { encoding: 'utf8' });
      if (probe.error || probe.status !== 0) {
        const why = `${REDIS_SERVER} cannot be run (${probe.error?.message ?? `exit ${probe.status}`}): install redis-server (apt-get install redis-server; scripts/setup.sh installs it)`;
        if (process.env.CI) throw new Error(`test 96 needs Redis in CI: ${why}`);
        console.log(`      skipped: ${why}`);
        this.skip();
      }
      tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-queue-'));
      port = await freePort();
      redis = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--dir', tmp], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      redis.stdout!.on('data', (d) => (out += d));
      await until('redis-server to accept connections', () => /Ready to accept connections/.test(out) || redis!.exitCode !== null, 20_000);
      assert.equal(redis.exitCode, null, `redis-server exited: ${out}`);
    });

    after(async () => {
      for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
      await Promise.all(workers.map((w) => w.exited));
      redis?.kill('SIGTERM');
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    });

    const url = (db: number) => `redis://127.0.0.1:${port}/${db}`;
    // Runs of a few seconds, checkpointed every 20 steps and logged every 5.
    const tiny = (steps: number) => ['--task', 'copy', '--delay', '40', '--hidden', '16', '--batch-size', '16', '--steps', String(steps), '--valid-every', '100', '--valid-size', '64',
      '--checkpoint-every', '20', '--log-every', '5', '--plot-format', 'none'];
    const base = tiny(1500);

    it('three workers, two SIGKILLed mid-run: all six runs finish, each equal to the same run trained without interruption; submitting again adds nothing', async () => {
      const store = path.join(tmp, 'store');
      const grid = ['--grid', 'seed=1,2,3', 'margin=0.01,0.1'];
      const submitted = cli(['sweep', ...base, ...grid, '--queue', url(0), '--store', store, '--detach']);
      assert.equal(submitted.code, 0, submitted.stderr);
      assert.match(submitted.stdout, /sweep grid-[0-9a-f]{10}: 6 runs, 6 queued →/);
      const sweepId = /sweep (grid-[0-9a-f]+)/.exec(submitted.stdout)![1];
      assert.match(submitted.stdout, new RegExp(`--status ${sweepId} --queue`));

      // The pin matters: B's runs keep 2 threads when A or C (1 thread) resumes them.
      const [a, b, c] = [startWorker(url(0), store, 1), startWorker(url(0), store, 2), startWorker(url(0), store, 1)];
      workers.push(a, b, c);
      // Kill A and B once each trains a run with a checkpoint past step 200 (of 1500).
      const killed: string[] = [];
      await until('two workers training checkpointed runs', () => {
        const runs = [a, b].map((w) => currentRun(w, sweepId));
        return runs.every((r) => r !== undefined && (checkpointStep(path.join(store, sweepId, r, 'last.safetensors')) ?? 0) >= 200);
      });
      for (const w of [a, b]) {
        killed.push(currentRun(w, sweepId)!);
        w.child.kill('SIGKILL');
      }
      const killedAt = Date.now();
      await Promise.all([a.exited, b.exited]);
      const stepsAtKill = killed.map((r) => checkpointStep(path.join(store, sweepId, r, 'last.safetensors'))!);

      // Submitting again waits for the same jobs, adds none, and writes the summary.
      const again = await cliAsync(['sweep', ...base, ...grid, '--queue', url(0), '--store', store]);
      assert.equal(again.code, 0, again.stderr + again.stdout);
      assert.match(again.stdout, new RegExp(`sweep ${sweepId}: 6 runs, 0 queued, 6 already in the queue`));
      assert.match(again.stdout, new RegExp(`${sweepId}: 6/6 done, 0 running, 0 failed, 0 waiting`));
      assert.match(again.stdout, /│ seed │ margin │ status │ steps │ best valid │ test/);
      const summary = JSON.parse(readFileSync(path.join(store, sweepId, 'summary.json'), 'utf8'));
      assert.equal(summary.runs.length, 6);
      for (const run of summary.runs) assert.equal(run.status, 'ok', `${run.name}: ${run.error}`);

      // The killed workers' runs were resumed by C from their checkpoints, not started again.
      const delays: string[] = [];
      for (const [i, run] of killed.entries()) {
        const resumed = c.lines.find((l) => l.includes(`${sweepId}/${run}: resuming at step`));
        assert.ok(resumed, `${run} resumed by the third worker (its output: ${c.lines.join('\n')})`);
        assert.ok(Number(/at step (\d+)/.exec(resumed)![1]) >= stepsAtKill[i], 'from the checkpoint the killed worker left (or a later one)');
        delays.push(((Date.parse(resumed.split(' ')[0]) - killedAt) / 1000).toFixed(1));
      }
      const starts = [a, b, c].flatMap((w) => w.lines).filter((l) => l.includes(` ${sweepId}/`) && l.includes(': starting'));
      assert.equal(starts.length, 6, `each run started once:\n${starts.join('\n')}`);

      // Each run equals the same configuration trained in one process with its pinned thread count.
      const runs: { name: string; values: Record<string, unknown> }[] = summary.runs;
      const pins = runs.map((r) => JSON.parse(readFileSync(path.join(store, sweepId, r.name, 'pin.json'), 'utf8')) as { threads: number; backend: string });
      assert.ok(pins.some((p) => p.threads === 2), 'worker B pinned its runs to 2 threads');
      await trainAll(runs.map((r, i) => ({
        threads: pins[i].threads,
        args: [...base, '--quiet', ...Object.entries(r.values).flatMap(([k, v]) => [`--${k}`, String(v)]), '--out', path.join(tmp, 'ref', r.name)],
      })));
      for (const r of runs) {
        const [queued, reference] = [path.join(store, sweepId, r.name), path.join(tmp, 'ref', r.name)];
        assert.deepEqual(metrics(queued), metrics(reference), `${r.name}: metrics.jsonl`);
        const [x, y] = [readCheckpoint(path.join(queued, 'last.safetensors')), readCheckpoint(path.join(reference, 'last.safetensors'))];
        assert.equal(x.step, y.step);
        assert.deepEqual(x.optimizerSteps, y.optimizerSteps);
        for (const group of ['parameters', 'optimizer'] as const) {
          assert.deepEqual(Object.keys(x[group]).sort(), Object.keys(y[group]).sort());
          for (const name of Object.keys(x[group])) {
            const bytes = (t: Float32Array | Float64Array) => Buffer.from(t.buffer, t.byteOffset, t.byteLength);
            assert.ok(bytes(x[group][name]).equals(bytes(y[group][name])), `${r.name}: ${group} ${name} equal bit for bit`);
          }
        }
      }
      console.log(`      killed mid-run: ${killed.map((r, i) => `${r} at step ${stepsAtKill[i]}, resumed ${delays[i]} s later`).join('; ')}; pins: ${pins.map((p) => p.threads).join(', ')} thread(s)`);

      const status = cli(['sweep', '--status', sweepId, '--queue', url(0)]);
      assert.equal(status.code, 0, status.stderr);
      assert.match(status.stdout, new RegExp(`${sweepId}: 6/6 done`));
      c.child.kill('SIGTERM');
      assert.equal(await c.exited, 0, 'a worker stopped by SIGTERM exits 0');
    });

    it('SIGTERM: the run saves its checkpoint and goes back to the queue, not counted as an attempt', async () => {
      const store = path.join(tmp, 'store-term');
      const long = tiny(100_000);
      const submitted = cli(['sweep', ...long, '--grid', 'seed=1', '--queue', url(1), '--store', store, '--sweep-id', 'term', '--detach']);
      assert.equal(submitted.code, 0, submitted.stderr);
      const w = startWorker(url(1), store, 1);
      workers.push(w);
      const dir = path.join(store, 'term', 'seed-1');
      await until('a checkpoint', () => existsSync(path.join(dir, 'last.safetensors')));
      w.child.kill('SIGTERM');
      assert.equal(await w.exited, 0, w.lines.join('\n'));
      assert.ok(w.lines.some((l) => /term\/seed-1: stopped \(exit 143\), back to the queue/.test(l)), w.lines.join('\n'));
      const status = cli(['sweep', '--status', 'term', '--queue', url(1)]);
      assert.match(status.stdout, /term: 0\/1 done, 0 running, 0 failed, 1 waiting/);
      assert.match(status.stdout, /│ seed-1 │ waiting │ 0 +│ cpu, 1 thread\(s\)/);
      assert.match(readFileSync(path.join(dir, 'train.log'), 'utf8'), /SIGTERM: finishing step \d+ and saving/);
    });

    it('a worker that loses a job\'s lock stops its run at once; the run is resumed and ends as if uninterrupted', async () => {
      const store = path.join(tmp, 'store-lock');
      const submitted = cli(['sweep', ...base, '--grid', 'seed=4', '--queue', url(5), '--store', store, '--sweep-id', 'lock', '--detach']);
      assert.equal(submitted.code, 0, submitted.stderr);
      const w = startWorker(url(5), store, 1);
      workers.push(w);
      const dir = path.join(store, 'lock', 'seed-4');
      await until('a checkpoint past step 100', () => (checkpointStep(path.join(dir, 'last.safetensors')) ?? 0) >= 100);
      // As if the job had been handed to another worker: its lock is gone.
      assert.match(await redisCommand(port, 5, 'DEL', `bull:orthornn-runs:${jobIdOf('lock', 'seed-4')}:lock`), /:1\r\n$/);
      const done = await cliAsync(['sweep', '--collect', 'lock', '--queue', url(5), '--store', store]);
      assert.equal(done.code, 0, done.stdout + done.stderr);
      assert.ok(w.lines.some((l) => /lock\/seed-4: lock not renewed .* stopping its run at once/.test(l)), w.lines.join('\n'));
      assert.ok(w.lines.some((l) => /lock\/seed-4: resuming at step/.test(l)), w.lines.join('\n'));
      await trainAll([{ threads: 1, args: [...base, '--quiet', '--seed', '4', '--out', path.join(tmp, 'ref-lock')] }]);
      assert.deepEqual(metrics(dir), metrics(path.join(tmp, 'ref-lock')));
      w.child.kill('SIGTERM');
      await w.exited;
    });

    it('a deterministic failure fails at once with its error kept; the sweep exits 1 with it in the summary', async () => {
      const store = path.join(tmp, 'store-fail');
      const w = startWorker(url(2), store, 1);
      workers.push(w);
      const missing = path.join(tmp, 'no-such-corpus.txt');
      const r = cli(['sweep', '--task', 'text', '--text-file', missing, '--steps', '10', '--plot-format', 'none', '--grid', 'seed=1', '--queue', url(2), '--store', store]);
      assert.equal(r.code, 1, r.stderr + r.stdout);
      assert.match(r.stdout, /seed-1: failed \(cannot read '.*no-such-corpus\.txt': ENOENT/);
      assert.match(r.stdout, /0\/1 done, 0 running, 1 failed/);
      const status = cli(['sweep', '--status', r.stdout.match(/sweep (grid-[0-9a-f]+)/)![1], '--queue', url(2)]);
      assert.match(status.stdout, /│ seed-1 │ failed │ 1 /, 'one attempt of the three allowed');
      w.child.kill('SIGTERM');
      await w.exited;
    });

    it('a preset on the queue writes the same results as a local preset sweep (results.md, results.json, the figure) and the summary', async () => {
      const store = path.join(tmp, 'store-preset');
      const w = startWorker(url(3), store, 1);
      workers.push(w);
      const r = await cliAsync(['sweep', '--preset', 'copy-200-margins', '--delay', '5', '--hidden', '8', '--batch-size', '4', '--steps', '6', '--valid-every', '3', '--valid-size', '8',
        '--queue', url(3), '--store', store]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const id = /sweep (copy-200-margins-reduced-[0-9a-f]{10}): 6 runs, 6 queued/.exec(r.stdout)![1];
      assert.match(r.stdout, /copy-200-margins-reduced-[0-9a-f]+: 6\/6 done/);
      assert.match(r.stdout, /│ m = 0 +│ – +│ not solved in 6 steps/);
      const dir = path.join(store, id);
      for (const f of ['results.md', 'results.json', 'comparison.svg', 'summary.json', 'summary.txt', 'sweep.json']) assert.ok(existsSync(path.join(dir, f)), f);
      const json = JSON.parse(readFileSync(path.join(dir, 'results.json'), 'utf8'));
      assert.equal(json.results.length, 6);
      assert.deepEqual(json.given, { delay: 5, hidden: 8, batchSize: 4, steps: 6, validEvery: 3, validSize: 8 });
      assert.match(readFileSync(path.join(dir, 'results.md'), 'utf8'), /`orthornn sweep --preset copy-200-margins --budget reduced --delay 5/);
      w.child.kill('SIGTERM');
      await w.exited;
    });

    it('refuses what a queued sweep cannot do, with one line', () => {
      for (const [args, message] of [
        [['sweep', '--grid', 'seed=1', '--queue', url(4)], /--store/],
        [['sweep', '--grid', 'seed=1', '--queue', url(4), '--store', tmp, '--jobs', '2'], /--jobs.*omitted with --queue/],
        [['sweep', '--grid', 'seed=1', '--store', tmp], /--queue/],
        [['sweep', '--status', 'nope', '--queue', url(4)], /'nope', which it does not hold/],
        [['sweep', '--grid', 'seed=1', '--queue', 'redis://127.0.0.1:1/0', '--store', tmp], /cannot reach Redis/],
        [['sweep', '--grid', 'seed=1', '--queue', url(4), '--store', tmp, '--sweep-id', '../x'], /--sweep-id/],
        [['sweep', '--grid', 'seed=1,2', '--queue', url(4), '--store', tmp, '--sweep-id', 'taken', '--detach'], null],
        [['sweep', '--grid', 'seed=3', '--queue', url(4), '--store', tmp, '--sweep-id', 'taken'], /'taken', which names a sweep with other runs/],
      ] as const) {
        const r = cli([...args]);
        if (message === null) {
          assert.equal(r.code, 0, r.stderr);
          continue;
        }
        assert.equal(r.code, 1, `${args.join(' ')}: exit ${r.code}, ${r.stderr}`);
        assert.match(r.stderr, message);
        assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      }
    });
  });
});
