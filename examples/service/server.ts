/**
 * An example service on plain node:http: it trains a model in the background and serves
 * predictions from a Predictor that follows the training run. The training runs on a worker
 * thread (training.ts) at the background priority and posts its weights every
 * --refresh-every steps; the server loads them with predictor.setWeights, so requests never
 * wait behind training, on the event loop or on a core (docs/benchmarks.md, "Serving").
 *
 *   npx tsx examples/service/server.ts --port 8080 --out runs/service [--delay 100 --hidden 128 --steps 10000]
 *
 *   POST /predict  one sequence, L × d: JSON {"x": [[…d numbers], …], "output"?: "probabilities" |
 *                  "raw" | "argmax", "last"?: true}, or a raw body (Content-Type:
 *                  application/octet-stream) of little-endian float32 values with ?output=&last=1
 *                  in the query. Answers {"shape": […], "values": […], "step": weights' step}.
 *   GET  /status   the training step, the latest loss and validation, the predictor's counters.
 *   POST /stop     stops training after the step in progress; last.safetensors is written.
 *   SIGTERM/SIGINT stop training the same way, answer the requests in flight, and exit 0.
 *
 * It prints `listening on http://127.0.0.1:PORT` once it accepts requests (--port 0 picks a
 * free port). Errors are JSON {"error", "code"}: 400 for a bad request, 413 for a body over
 * 1 MiB, 503 when the predictor's queue is full or it is shutting down.
 */
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { Worker } from 'node:worker_threads';
import { createPredictor, loadModel, OverloadError, type Predictor, type PredictOutput } from '../../lib/index';
import type { EvalRecord, TrainResult } from '../../lib/train/index';
import type { TrainingSetup } from './training';

const MAX_BODY = 1 << 20;

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '8080' },
    host: { type: 'string', default: '127.0.0.1' },
    out: { type: 'string', default: path.join('runs', 'service') },
    delay: { type: 'string', default: '100' },
    hidden: { type: 'string', default: '128' },
    steps: { type: 'string', default: '10000' },
    'refresh-every': { type: 'string', default: '50' },
  },
});

/** An error answered with its status and the library's code. */
class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly code?: string) {
    super(message);
  }
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new HttpError(413, `the body is over ${MAX_BODY} bytes`));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** The request's sequence and options, from JSON or a raw float32 body. */
function parsePredict(req: http.IncomingMessage, body: Buffer, url: URL): { x: Float32Array | number[][]; output?: PredictOutput; last?: boolean } {
  if (req.headers['content-type'] === 'application/octet-stream') {
    if (body.length % 4 !== 0) throw new HttpError(400, 'a raw body holds float32 values: its length must be a multiple of 4');
    // Copied out, aligned, as little-endian float32 (what every current CPU uses).
    const x = new Float32Array(body.length / 4);
    new Uint8Array(x.buffer).set(body);
    const output = (url.searchParams.get('output') ?? undefined) as PredictOutput | undefined;
    const last = url.searchParams.has('last') ? url.searchParams.get('last') !== '0' && url.searchParams.get('last') !== 'false' : undefined;
    return { x, output, last };
  }
  let json: { x?: unknown; output?: unknown; last?: unknown };
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    throw new HttpError(400, 'the body is not JSON (or send application/octet-stream float32 values)');
  }
  if (json === null || typeof json !== 'object') throw new HttpError(400, 'the body must be a JSON object {"x": [[…], …]}');
  return { x: json.x as number[][], output: json.output as PredictOutput | undefined, last: json.last as boolean | undefined };
}

/** What the training thread posts (training.ts). */
type FromTraining =
  | { type: 'ready'; runDir: string; totalSteps: number; modelFile: string }
  | { type: 'weights'; step: number; state: Record<string, Float32Array | Float64Array> }
  | { type: 'step'; step: number; loss: number; valid: EvalRecord | null }
  | { type: 'done'; result: TrainResult }
  | { type: 'failed'; error: string };

/** The training thread: training.ts, through tsx's require hook when this runs under tsx. */
function startTraining(setup: TrainingSetup): Worker {
  const file = path.join(__dirname, 'training.ts');
  return new Worker(`require('tsx/cjs'); require(${JSON.stringify(file)});`, { eval: true, workerData: setup });
}

async function main(): Promise<void> {
  const worker = startTraining({
    config: { task: 'copy', delay: Number(args.delay), hidden: Number(args.hidden), steps: Number(args.steps), out: args.out },
    refreshEvery: Number(args['refresh-every']),
  });
  let step = 0;
  let loss = NaN;
  let valid: EvalRecord | undefined;
  let result: TrainResult | undefined;
  let failure: Error | undefined;
  let predictor: Predictor | undefined;
  // Weights that arrive before the predictor exists (the first ones) wait here.
  let pending: Extract<FromTraining, { type: 'weights' }> | undefined;
  let endTraining!: () => void;
  const training = new Promise<void>((resolve) => (endTraining = resolve));
  const ready = new Promise<Extract<FromTraining, { type: 'ready' }>>((resolve, reject) => {
    worker.on('message', (m: FromTraining) => {
      if (m.type === 'ready') resolve(m);
      else if (m.type === 'weights') {
        if (predictor) predictor.setWeights(m.state, m.step);
        else pending = m;
      } else if (m.type === 'step') {
        ({ step, loss } = m);
        valid = m.valid ?? valid;
      } else if (m.type === 'done') {
        result = m.result;
        step = m.result.steps;
        endTraining();
      } else if (m.type === 'failed') {
        failure = new Error(m.error);
        console.error(`training failed: ${m.error}`);
        reject(failure);
        endTraining();
      }
    });
    worker.on('error', (err) => {
      failure = err;
      reject(err);
      endTraining();
    });
    worker.on('exit', () => endTraining());
  });
  const { runDir, totalSteps, modelFile } = await ready;
  const served = await loadModel(modelFile);
  try {
    predictor = await createPredictor(served);
  } finally {
    served.dispose();
  }
  if (pending) predictor.setWeights(pending.state, pending.step);
  const serving = predictor;

  /** Stops training after the step in progress; resolves once last.safetensors is written. */
  async function stopTraining(): Promise<void> {
    worker.postMessage({ type: 'stop' });
    await training;
  }

  function status() {
    return {
      training: result === undefined && failure === undefined,
      step,
      totalSteps,
      loss,
      valid: valid ?? null,
      result: result ?? null,
      error: failure?.message ?? null,
      runDir,
      predictor: { ...serving.stats, refreshError: serving.stats.refreshError?.message ?? null },
    };
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = `${req.method} ${url.pathname}`;
    if (route === 'POST /predict') {
      const request = parsePredict(req, await readBody(req), url);
      const p = await serving.predict(request.x, { ...(request.output !== undefined && { output: request.output }), ...(request.last !== undefined && { last: request.last }) });
      send(res, 200, { shape: p.shape, values: Array.from(p.values), step: p.weightsStep });
    } else if (route === 'GET /status') {
      send(res, 200, status());
    } else if (route === 'POST /stop') {
      await stopTraining();
      send(res, 200, { stopped: true, step, interrupted: result?.interrupted ?? null, checkpoint: path.join(runDir, 'last.safetensors') });
    } else {
      throw new HttpError(404, `no route ${route}`);
    }
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: Error & { code?: string }) => {
      const status = err instanceof HttpError ? err.status : err instanceof OverloadError || err.code === 'ERR_ORTHORNN_DISPOSED' ? 503 : err.code === 'ERR_ORTHORNN_RANGE' || err.code === 'ERR_ORTHORNN_TYPE' ? 400 : 500;
      if (!res.headersSent) send(res, status, { error: err.message, code: err.code ?? null });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve) => server.listen(Number(args.port), args.host, resolve));
  const { port } = server.address() as { port: number };
  console.log(`listening on http://${args.host}:${port}`);

  let shuttingDown = false;
  async function shutdown(signal: string): Promise<void> {
    if (shuttingDown) {
      process.exit(1); // a second signal: at once
    }
    shuttingDown = true;
    console.log(`${signal}: stopping training and closing`);
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    await stopTraining();
    await closed;
    await serving.close();
    await worker.terminate();
    console.log(`stopped at step ${step}; checkpoint in ${runDir}`);
  }
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      shutdown(signal).then(
        () => process.exit(0),
        (err: Error) => {
          console.error(err.message);
          process.exit(1);
        },
      );
    });
  }
}

main().catch((err: Error) => {
  console.error(err.message);
  process.exit(1);
});
