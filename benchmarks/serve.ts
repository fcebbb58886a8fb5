/**
 * The serving benchmark: `npm run bench -- --suite serve [--quick] [--json FILE]`.
 *
 * One process trains the copy task (delay 100: 120-step sequences) and serves predictions of
 * the model being trained over node:http on 127.0.0.1, from a Predictor with its own context.
 * By default the training runs on a worker thread of the process (trainInBackground: a context
 * of one thread at the background priority) and posts its weights every 100 steps, which the
 * predictor loads as they come; ORTHORNN_SERVE_TRAINING=main trains on the server's own thread
 * instead (Trainer.trainStep in a loop, createPredictor(trainer, { refreshEvery: 100 })).
 *
 * A load generator in another process keeps 200 keep-alive connections busy, each sending one
 * 120-step sequence (raw float32, 120 × 10 values) and waiting for its answer (the last step's
 * probabilities, JSON) before sending the next: wrk when it is on PATH (a C program, one
 * thread: it takes less of the cores it shares with the server than a Node client), else one in
 * this file on undici's Pool; ORTHORNN_SERVE_LOAD=wrk|undici chooses. Each round trains alone
 * for a window, then trains and serves for a window of the same length; the figures are medians
 * over the rounds: requests/s, latency p50/p99, errors, the event loop's delay p99 (how late a
 * 1 ms timer runs in the serving process: perf_hooks.monitorEventLoopDelay less its
 * resolution), and training steps/s while serving beside training alone.
 *
 * ORTHORNN_SERVE_HIDDEN sets the model's hidden units (default 64), ORTHORNN_SERVE_CLIENTS
 * the connections (default 200); the training context's `threads` and `priority`
 * (ORTHORNN_SERVE_TRAINING_THREADS, _PRIORITY: on a worker 1 and 'background', on the main
 * thread all cores and 'normal') and the training thread's niceness (_NICE, worker only,
 * default 19). The predictor's context takes its default, one thread.
 */
import { fork, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const DELAY = 100; // copy-task sequences of DELAY + 20 = 120 steps
const INPUTS = 10;

/**
 * The event loop's delay: how late a repeating 1 ms timer runs. monitorEventLoopDelay's
 * histogram records the whole interval between the timer's runs, the resolution included (an
 * idle loop reads 10 ms at a resolution of 10 ms, 1.1 ms at 1 ms), so the lag is the recorded
 * value less the resolution.
 */
const LOOP_RESOLUTION_MS = 1;
const loopLag = (intervalNs: number): number => Math.max(0, intervalNs / 1e6 - LOOP_RESOLUTION_MS);

interface ClientResult {
  requests: number;
  errors: number;
  /** Why requests failed (status codes, socket errors), with counts. */
  errorKinds: Record<string, number>;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export interface ServeRound {
  round: number;
  soloStepsPerSecond: number;
  servingStepsPerSecond: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  eventLoopP99Ms: number;
  meanBatch: number;
  /** CPU time of the server's thread (the event loop's) per answered request, microseconds (Linux; NaN elsewhere). */
  serverCpuPerRequestUs: number;
}

export interface ServeRecord {
  suite: 'serve';
  hidden: number;
  clients: number;
  /** The load generator: wrk (when on PATH) or the one in this file on undici. */
  load: LoadGenerator;
  /** How the training run ran: on a worker thread or the server's, its context's threads and priority, its thread's niceness. */
  training: { thread: 'worker' | 'main'; threads: number | null; priority: 'normal' | 'background'; nice: number };
  windowSeconds: number;
  rounds: ServeRound[];
  /** Medians over the rounds. */
  median: Omit<ServeRound, 'round'> & { trainingShare: number };
}

// ---------------------------------------------------------------------------------------------
// The load generator (a child process)

/** Runs `clients` closed-loop connections for `seconds` after `warmup` seconds; reports to the parent. */
async function loadClient(port: number, clients: number, warmup: number, seconds: number, onMeasuring: () => void): Promise<ClientResult> {
  // undici's pool: one keep-alive connection per client, no pipelining; the cheapest client
  // node has, so that the load generator takes as little of the cores it shares as it can.
  const { Pool } = require('undici') as typeof import('undici');
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: clients, pipelining: 1, keepAliveTimeout: 60_000 });
  // Copy-task sequences: 10 symbols, blanks, the delimiter, blanks; one per client.
  const bodies = Array.from({ length: clients }, (_, c) => {
    const x = new Float32Array((DELAY + 20) * INPUTS);
    for (let t = 0; t < DELAY + 20; t++) x[t * INPUTS + (t < 10 ? 1 + ((t + c) % 8) : t === 10 + DELAY - 1 ? 9 : 0)] = 1;
    return Buffer.from(x.buffer);
  });
  const latencies: number[] = [];
  const errorKinds: Record<string, number> = {};
  let errors = 0;
  let measuring = false;
  let running = true;
  const fail = (kind: string) => {
    if (!measuring) return;
    errors++;
    errorKinds[kind] = (errorKinds[kind] ?? 0) + 1;
  };
  const one = async (c: number) => {
    const start = performance.now();
    try {
      const res = await pool.request({ path: '/predict', method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bodies[c] });
      const size = (await res.body.arrayBuffer()).byteLength;
      if (res.statusCode !== 200 || size === 0) return fail(`HTTP ${res.statusCode}`);
      if (measuring) latencies.push(performance.now() - start);
    } catch (e) {
      fail((e as Error).message);
    }
  };
  const loops = Array.from({ length: clients }, async (_, c) => {
    while (running) await one(c);
  });
  await new Promise((r) => setTimeout(r, warmup * 1000));
  measuring = true;
  onMeasuring();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const elapsed = (performance.now() - t0) / 1000;
  running = false;
  await Promise.all(loops);
  await pool.close();
  latencies.sort((a, b) => a - b);
  const at = (q: number) => (latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] : NaN);
  return { requests: latencies.length, errors, errorKinds, seconds: elapsed, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: latencies[latencies.length - 1] ?? NaN };
}

if (process.env.ORTHORNN_SERVE_CLIENT && process.send) {
  const [port, clients, warmup, seconds] = process.env.ORTHORNN_SERVE_CLIENT.split(',').map(Number);
  loadClient(port, clients, warmup, seconds, () => process.send!('measuring')).then((r) => {
    process.send!(r, () => process.exit(0));
  });
}

export type LoadGenerator = 'wrk' | 'undici';

/** Whether wrk (https://github.com/wg/wrk; Debian's `wrk`) is on PATH. */
function haveWrk(): boolean {
  return spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined;
}

/**
 * wrk's script: every request POSTs the body file (raw float32), and at the end one JSON line
 * with the counts and the latency percentiles (microseconds).
 */
const WRK_SCRIPT = `
local f = assert(io.open(os.getenv("ORTHORNN_SERVE_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "application/octet-stream"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\nORTHORNN {"requests":%d,"us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50":%d,"p99":%d,"max":%d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
`;

/** One wrk run (one thread, `clients` keep-alive connections, closed loop) of `seconds`. */
function wrkRun(port: number, clients: number, seconds: number, dir: string): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', ['-t1', `-c${clients}`, `-d${seconds}s`, '--timeout', '5s', '-s', path.join(dir, 'serve.lua'), `http://127.0.0.1:${port}/predict`], {
      env: { ...process.env, ORTHORNN_SERVE_BODY: path.join(dir, 'body.f32') },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let text = '';
    child.stdout.on('data', (c: Buffer) => (text += c.toString()));
    child.once('error', reject);
    child.once('exit', (code) => {
      const line = text.split('\n').find((l) => l.startsWith('ORTHORNN '));
      if (code !== 0 || !line) return reject(new Error(`wrk exited with code ${code}:\n${text}`));
      const r = JSON.parse(line.slice('ORTHORNN '.length)) as Record<string, number>;
      const errorKinds: Record<string, number> = {};
      for (const kind of ['connect', 'read', 'write', 'status', 'timeout']) if (r[kind]) errorKinds[kind === 'status' ? 'HTTP status not 2xx/3xx' : `socket ${kind}`] = r[kind];
      const errors = Object.values(errorKinds).reduce((a, b) => a + b, 0);
      resolve({ requests: r.requests - r.status, errors, errorKinds, seconds: r.us / 1e6, p50Ms: r.p50 / 1000, p99Ms: r.p99 / 1000, maxMs: r.max / 1000 });
    });
  });
}

/** The load generator as wrk: a warm-up run, then the measured run. */
async function wrkClient(port: number, clients: number, warmup: number, seconds: number, onMeasuring: () => void): Promise<ClientResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'orthornn-serve-wrk-'));
  try {
    writeFileSync(path.join(dir, 'serve.lua'), WRK_SCRIPT);
    // One copy-task sequence (the load generator built into this file varies it per client; the
    // work per request does not depend on the values).
    const x = new Float32Array((DELAY + 20) * INPUTS);
    for (let t = 0; t < DELAY + 20; t++) x[t * INPUTS + (t < 10 ? 1 + (t % 8) : t === 10 + DELAY - 1 ? 9 : 0)] = 1;
    writeFileSync(path.join(dir, 'body.f32'), Buffer.from(x.buffer));
    await wrkRun(port, clients, Math.max(1, Math.round(warmup)), dir);
    const measured = wrkRun(port, clients, seconds, dir);
    onMeasuring();
    return await measured;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A load generator's run: `measuring` once its warm-up is over, `done` with its figures. */
interface LoadRun {
  measuring: Promise<void>;
  done: Promise<ClientResult>;
}

/** The load generator in a child process (its own cores' worth of scheduling, its own event loop). */
function runClient(port: number, clients: number, warmup: number, seconds: number, generator: LoadGenerator): LoadRun {
  let onMeasuring!: () => void;
  const measuring = new Promise<void>((r) => (onMeasuring = r));
  if (generator === 'wrk') return { measuring, done: wrkClient(port, clients, warmup, seconds, onMeasuring) };
  const done = new Promise<ClientResult>((resolve, reject) => {
    const child = fork(__filename, [], { env: { ...process.env, ORTHORNN_SERVE_CLIENT: `${port},${clients},${warmup},${seconds}` }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.on('message', (m) => (m === 'measuring' ? onMeasuring() : resolve(m as ClientResult)));
    child.once('exit', (code) => reject(new Error(`the load generator exited with code ${code} before reporting`)));
  });
  return { measuring, done };
}

/** The run both ways of training use: the copy task without validations, logging every 100 steps. */
function trainingConfig(hidden: number, out: string) {
  return { task: 'copy' as const, delay: DELAY, hidden, steps: 10_000_000, validEvery: 10_000_000, logEvery: 100, gradientNormsEvery: 1_000_000, out };
}

// ---------------------------------------------------------------------------------------------
// The server and the rounds

/** CPU seconds the main thread has used (Linux: /proc/self/task/PID/stat; NaN where it cannot be read). */
function mainThreadCpuSeconds(): number {
  try {
    const fields = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    // utime and stime, fields 14 and 15 of stat (11 and 12 after the command), in clock ticks (100 per second on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export async function serveBenchmark(options: { quick: boolean; json: string }): Promise<number> {
  const hidden = Number(process.env.ORTHORNN_SERVE_HIDDEN ?? 64);
  const clients = Number(process.env.ORTHORNN_SERVE_CLIENTS ?? (options.quick ? 20 : 200));
  const [rounds, window, warmup] = options.quick ? [1, 2, 0.5] : [3, 10, 2];
  // Imported here: the load generator's process (this file, forked) needs none of it.
  const { Context, createPredictor, OverloadError } = require('../lib/index') as typeof import('../lib/index');
  const { Trainer, trainInBackground } = require('../lib/train/index') as typeof import('../lib/train/index');
  const out = mkdtempSync(path.join(os.tmpdir(), 'orthornn-serve-bench-'));
  const where = process.env.ORTHORNN_SERVE_TRAINING ?? 'worker';
  if (where !== 'worker' && where !== 'main') throw new Error(`ORTHORNN_SERVE_TRAINING must be 'worker' or 'main', got '${where}'`);
  // On a worker thread, by default the setup a service should use: one thread, the background
  // priority, the training thread's own event loop reniced to 19. On the server's thread, the
  // defaults of a plain Context.
  const env = process.env;
  const trainingThreads = env.ORTHORNN_SERVE_TRAINING_THREADS ? Number(env.ORTHORNN_SERVE_TRAINING_THREADS) : where === 'worker' ? 1 : undefined;
  const priority: 'normal' | 'background' = (env.ORTHORNN_SERVE_TRAINING_PRIORITY ?? (where === 'worker' ? 'background' : 'normal')) === 'background' ? 'background' : 'normal';
  const nice = Number(env.ORTHORNN_SERVE_TRAINING_NICE ?? (where === 'worker' ? 19 : 0));
  const refreshEvery = 100;
  const generator = (env.ORTHORNN_SERVE_LOAD ?? (haveWrk() ? 'wrk' : 'undici')) as LoadGenerator;
  if (generator !== 'wrk' && generator !== 'undici') throw new Error(`ORTHORNN_SERVE_LOAD must be 'wrk' or 'undici', got '${generator}'`);
  if (generator === 'wrk' && !haveWrk()) throw new Error('ORTHORNN_SERVE_LOAD=wrk: wrk is not on PATH (Debian: apt-get install wrk)');

  // The training run and how to read its step count, stop it and serve its weights.
  let steps: () => number;
  let stopTraining: () => Promise<void>;
  let predictor: Awaited<ReturnType<typeof createPredictor>>;
  if (where === 'main') {
    // On the server's thread: each step's turns on the event loop wait behind the requests'.
    const trainingContext = new Context({ ...(trainingThreads && { threads: trainingThreads }), priority });
    const trainer = await Trainer.create(trainingConfig(hidden, out), { context: trainingContext });
    predictor = await createPredictor(trainer, { refreshEvery, maxBatch: 256, maxWaitMs: 1 });
    let training = true;
    const loop = (async () => {
      while (training) await trainer.trainStep();
    })();
    steps = () => trainer.step;
    stopTraining = async () => {
      training = false;
      await loop;
      trainer.dispose();
      trainingContext.dispose();
    };
  } else {
    // On a worker thread of this process: the library's trainInBackground, its weights posted
    // every refreshEvery steps and loaded by the predictor as they come.
    const training = trainInBackground(trainingConfig(hidden, out), { ...(trainingThreads && { threads: trainingThreads }), priority, nice, weightsEvery: refreshEvery });
    await training.ready;
    predictor = await createPredictor(training, { maxBatch: 256, maxWaitMs: 1 });
    steps = () => training.step;
    stopTraining = async () => {
      await training.stop();
    };
  }
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
      // The body's bytes as float32 where they are aligned (predict copies them), else a copy.
      const x = body.byteOffset % 4 === 0 ? new Float32Array(body.buffer, body.byteOffset, body.length >> 2) : new Float32Array(body.buffer.slice(body.byteOffset, body.byteOffset + (body.length & ~3)));
      predictor.predict(x, { last: true }).then(
        (p) => {
          const text = JSON.stringify({ values: Array.from(p.values), step: p.weightsStep });
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
          res.end(text);
        },
        (err: Error) => {
          res.writeHead(err instanceof OverloadError ? 503 : 400, { 'content-type': 'text/plain' });
          res.end(err.message);
        },
      );
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };

  /** Training steps per second over `seconds`, while `during` runs. */
  const trainingRate = async <T>(seconds: number, during?: () => Promise<T>): Promise<{ rate: number; result?: T }> => {
    const [s0, t0] = [steps(), performance.now()];
    const result = during ? await during() : await new Promise<undefined>((r) => setTimeout(() => r(undefined), seconds * 1000));
    return { rate: (steps() - s0) / ((performance.now() - t0) / 1000), result };
  };

  console.log(`\nServing (copy task, T = ${DELAY + 20}, hidden ${hidden}, float32, cpu, training on ${where === 'worker' ? 'a worker thread' : "the server's thread"}): ${clients} keep-alive clients (${generator}), ${window} s windows, ${rounds} round(s)`);
  console.log('round  solo steps/s  serving steps/s  share   req/s  p50 ms  p99 ms  errors  loop p99 ms  mean batch  server µs/req');
  const results: ServeRound[] = [];
  try {
    await trainingRate(options.quick ? 0.5 : 2); // warm-up
    for (let round = 1; round <= rounds; round++) {
      const solo = await trainingRate(window);
      const loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
      let client!: ClientResult;
      let serving!: number;
      const load = runClient(port, clients, warmup, window, generator);
      // The measured window starts after the client's warm-up.
      await Promise.race([load.measuring, load.done]);
      const batches0 = predictor.stats;
      loopDelay.enable();
      const cpu0 = mainThreadCpuSeconds();
      const measured = await trainingRate(window, () => load.done);
      const serverCpu = mainThreadCpuSeconds() - cpu0;
      loopDelay.disable();
      client = measured.result!;
      serving = measured.rate;
      const batches = predictor.stats.batches - batches0.batches;
      const answered = predictor.stats.requests - batches0.requests;
      const r: ServeRound = {
        round,
        soloStepsPerSecond: solo.rate,
        servingStepsPerSecond: serving,
        requestsPerSecond: client.requests / client.seconds,
        p50Ms: client.p50Ms,
        p99Ms: client.p99Ms,
        errors: client.errors,
        eventLoopP99Ms: loopLag(loopDelay.percentile(99)),
        meanBatch: batches ? answered / batches : 0,
        serverCpuPerRequestUs: answered ? (serverCpu / answered) * 1e6 : NaN,
      };
      results.push(r);
      if (client.errors) console.log(`  errors: ${JSON.stringify(client.errorKinds)}`);
      console.log(
        `${String(round).padStart(5)}  ${r.soloStepsPerSecond.toFixed(1).padStart(12)}  ${r.servingStepsPerSecond.toFixed(1).padStart(15)}  ${(r.servingStepsPerSecond / r.soloStepsPerSecond * 100).toFixed(0).padStart(4)}%  ${r.requestsPerSecond.toFixed(0).padStart(6)}  ${r.p50Ms.toFixed(1).padStart(6)}  ${r.p99Ms.toFixed(1).padStart(6)}  ${String(r.errors).padStart(6)}  ${r.eventLoopP99Ms.toFixed(1).padStart(11)}  ${r.meanBatch.toFixed(1).padStart(10)}  ${r.serverCpuPerRequestUs.toFixed(1).padStart(13)}`,
      );
    }
  } finally {
    await stopTraining();
    server.close();
    await predictor.close();
    rmSync(out, { recursive: true, force: true });
  }
  const m = (key: keyof ServeRound) => median(results.map((r) => r[key]));
  const record: ServeRecord = {
    suite: 'serve',
    hidden,
    clients,
    load: generator,
    training: { thread: where, threads: trainingThreads ?? null, priority, nice: where === 'worker' ? nice : 0 },
    windowSeconds: window,
    rounds: results,
    median: {
      soloStepsPerSecond: m('soloStepsPerSecond'),
      servingStepsPerSecond: m('servingStepsPerSecond'),
      trainingShare: median(results.map((r) => r.servingStepsPerSecond / r.soloStepsPerSecond)),
      requestsPerSecond: m('requestsPerSecond'),
      p50Ms: m('p50Ms'),
      p99Ms: m('p99Ms'),
      errors: m('errors'),
      eventLoopP99Ms: m('eventLoopP99Ms'),
      meanBatch: m('meanBatch'),
      serverCpuPerRequestUs: m('serverCpuPerRequestUs'),
    },
  };
  const md = record.median;
  console.log(
    `median: ${md.requestsPerSecond.toFixed(0)} req/s, p50 ${md.p50Ms.toFixed(1)} ms, p99 ${md.p99Ms.toFixed(1)} ms, ${md.errors} errors, event loop p99 ${md.eventLoopP99Ms.toFixed(1)} ms; ` +
      `training ${md.servingStepsPerSecond.toFixed(1)} steps/s beside ${md.soloStepsPerSecond.toFixed(1)} alone (${(md.trainingShare * 100).toFixed(0)}%)`,
  );
  mkdirSync(path.dirname(path.resolve(options.json)), { recursive: true });
  writeFileSync(options.json, JSON.stringify({ date: new Date().toISOString(), node: process.version, cpu: os.cpus()[0]?.model ?? null, cores: os.availableParallelism(), records: [record] }, null, 2) + '\n');
  console.log(`wrote ${options.json}`);
  const failed = results.filter((r) => r.errors > 0 || r.requestsPerSecond === 0);
  if (failed.length) {
    console.error(`error: round(s) ${failed.map((r) => r.round).join(', ')} had failed requests or answered none`);
    return 1;
  }
  return 0;
}
