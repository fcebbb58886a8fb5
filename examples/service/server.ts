/**
 * An example service on plain node:http: it trains a model in the background and serves
 * predictions from a Predictor that follows the training run. The training runs on a worker
 * thread at the background priority (trainInBackground) and posts its weights every
 * --refresh-every steps; the predictor loads them as they come, so requests never wait behind
 * training, on the event loop or on a core (docs/benchmarks.md, "Serving").
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
import { createPredictor, OverloadError, type PredictOutput } from '../../lib/index';
import { trainInBackground, type EvalRecord, type TrainResult } from '../../lib/train/index';

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

async function main(): Promise<void> {
  const training = trainInBackground(
    { task: 'copy', delay: Number(args.delay), hidden: Number(args.hidden), steps: Number(args.steps), out: args.out },
    { weightsEvery: Number(args['refresh-every']) },
  );
  let valid: EvalRecord | undefined;
  let result: TrainResult | undefined;
  let failure: Error | undefined;
  training.on('record', (r) => {
    if (r.type === 'valid') valid = r;
  });
  const ended = training.result.then(
    (r) => void (result = r),
    (err: Error) => {
      failure = err;
      console.error(`training failed: ${err.message}`);
    },
  );
  const { runDir, plannedSteps } = await training.ready;
  const serving = await createPredictor(training);

  /** Stops training after the step in progress; resolves once last.safetensors is written. */
  async function stopTraining(): Promise<void> {
    await training.stop().catch(() => undefined);
    await ended;
  }

  function status() {
    return {
      training: result === undefined && failure === undefined,
      step: training.step,
      totalSteps: plannedSteps,
      loss: training.loss,
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
      send(res, 200, { stopped: true, step: training.step, interrupted: result?.interrupted ?? null, checkpoint: path.join(runDir, 'last.safetensors') });
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
    console.log(`stopped at step ${training.step}; checkpoint in ${runDir}`);
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
