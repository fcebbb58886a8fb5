/**
 * The job queue's overhead: the same grid as a local `orthornn sweep --jobs 2 --threads 1` and
 * as a queued sweep trained by two `orthornn worker --threads 1` processes on this machine
 * (with a redis-server of its own on a loopback port), wall time from the command's start to
 * its summary, two rounds of each, alternated. The workers are started (and connected) before
 * the clock starts, as on a cluster where they wait for work; the submitter looks at its runs
 * every ORTHORNN_QUEUE_POLL_MS (2 s by default), which bounds the wait after the last run.
 *
 *   npx tsx benchmarks/queue.ts [--steps 3000] [--seeds 3]
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.join(__dirname, '..');
const CLI = ['--import', 'tsx', path.join(ROOT, 'lib/cli/main.ts')];

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; seconds: number; stdout: string }> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...CLI, ...args], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.on('close', (code) => resolve({ code, seconds: (performance.now() - started) / 1000, stdout }));
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function main(): Promise<void> {
  if (spawnSync('redis-server', ['--version']).status !== 0) throw new Error('redis-server is not installed (apt-get install redis-server)');
  const steps = arg('steps', 3000);
  const seeds = arg('seeds', 3);
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-queue-bench-'));
  const port = await freePort();
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', tmp], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}/0`;
  const grid = ['--task', 'copy', '--delay', '100', '--hidden', '64', '--batch-size', '32', '--steps', String(steps), '--valid-every', '500', '--plot-format', 'none',
    '--grid', 'margin=0.01,0.1', `seed=${Array.from({ length: seeds }, (_, i) => i + 1).join(',')}`];
  const runs = 2 * seeds;
  const queuedSweep = async (round: number) => {
    const store = path.join(tmp, `store-${round}`);
    const workers = [0, 1].map(() => spawn(process.execPath, [...CLI, 'worker', '--queue', url, '--store', store, '--threads', '1'], { cwd: ROOT, stdio: 'ignore' }));
    await new Promise((resolve) => setTimeout(resolve, 3000)); // connected and waiting
    // A fresh sweep id each round: the same grid again would add nothing.
    const r = await run(['sweep', ...grid, '--queue', url, '--store', store, '--sweep-id', `bench-${round}`]);
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map((w) => new Promise((resolve) => w.on('close', resolve))));
    return r;
  };
  const localSweep = (round: number) => run(['sweep', ...grid, '--jobs', '2', '--threads', '1', '--out', path.join(tmp, `local-${round}`)]);
  try {
    await new Promise((resolve) => setTimeout(resolve, 500));
    // Alternated (local, queued, queued, local), so that a change in the machine's load hits both.
    const times: Record<'queued' | 'local', number[]> = { queued: [], local: [] };
    for (const [round, kind] of (['local', 'queued', 'queued', 'local'] as const).entries()) {
      const r = kind === 'queued' ? await queuedSweep(round) : await localSweep(round);
      if (r.code !== 0) throw new Error(`the ${kind} sweep failed (exit ${r.code})\n${r.stdout}`);
      times[kind].push(r.seconds);
      console.log(`round ${round + 1}: ${kind === 'queued' ? 'queued, 2 workers × 1 thread (submit to summary)' : 'local sweep --jobs 2 --threads 1'}: ${r.seconds.toFixed(1)} s wall; load average ${os.loadavg()[0].toFixed(1)}`);
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    console.log(`grid: copy task, delay 100, 64 units, batch 32, ${steps} steps; ${runs} runs (margin 0.01, 0.1 × ${seeds} seeds); ${os.availableParallelism()} cores`);
    console.log(`mean wall: queued ${mean(times.queued).toFixed(1)} s, local ${mean(times.local).toFixed(1)} s, queued / local ${(mean(times.queued) / mean(times.local)).toFixed(3)}`);
  } finally {
    redis.kill('SIGTERM');
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
