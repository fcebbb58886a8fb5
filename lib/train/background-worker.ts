/**
 * The worker thread of trainInBackground (background.ts): builds the context and the Trainer,
 * trains, and talks to the thread that started it by messages (the protocol is in
 * background.ts, `FromWorker` and `ToWorker`). Not an entry point of the package.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parentPort, workerData } from 'node:worker_threads';
import { Context } from '../context';
import { architectureOf } from '../models/files';
import type { TaskSource } from './sources';
import { Trainer } from './trainer';
import type { FromWorker, ToWorker, WorkerSetup } from './background';

/**
 * The data source the setup names: the module's export, called with the options. The module
 * is required (CommonJS, or TypeScript under a require hook such as tsx's), or imported when it
 * is an ES module.
 */
async function loadSource(spec: NonNullable<WorkerSetup['source']>): Promise<TaskSource> {
  let module: Record<string, unknown>;
  try {
    module = require(spec.module) as Record<string, unknown>;
  } catch (err) {
    if ((err as { code?: string }).code !== 'ERR_REQUIRE_ESM') throw err;
    module = (await import(path.isAbsolute(spec.module) ? pathToFileURL(spec.module).href : spec.module)) as Record<string, unknown>;
  }
  const name = spec.export ?? 'createSource';
  const make = module[name] ?? (module.default as Record<string, unknown> | undefined)?.[name];
  if (typeof make !== 'function') {
    throw new TypeError(`trainInBackground: argument 'options.source.export' must name a function of '${spec.module}' that returns a TaskSource; its '${name}' is ${typeof make}`);
  }
  return (await make(spec.options)) as TaskSource;
}

/** The device to train on: the one given, the configuration's, or a resumed run's (its config.json). */
function deviceOf(setup: WorkerSetup): string {
  if (setup.device !== undefined) return setup.device;
  if (!setup.resume) return typeof setup.config.device === 'string' ? setup.config.device : 'cpu';
  try {
    const stored = JSON.parse(readFileSync(path.join(setup.resume.runDir, 'config.json'), 'utf8')) as { device?: unknown };
    return typeof stored.device === 'string' ? stored.device : 'cpu';
  } catch {
    return 'cpu'; // Trainer.resume reports an unreadable run folder
  }
}

function describeError(err: unknown): { name: string; message: string; code?: string } {
  const e = err as { name?: unknown; message?: unknown; code?: unknown };
  return { name: typeof e?.name === 'string' ? e.name : 'Error', message: typeof e?.message === 'string' ? e.message : String(err), ...(typeof e?.code === 'string' && { code: e.code }) };
}

async function main(setup: WorkerSetup): Promise<void> {
  const port = parentPort!;
  const post = (m: FromWorker, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);
  const counters = new Int32Array(setup.shared, 0, 2);
  const loss = new Float64Array(setup.shared, 8, 1);
  const stop = new AbortController();
  let progress = false;
  port.on('message', (m: ToWorker) => {
    if (m.type === 'stop') stop.abort();
    else if (m.type === 'progress') progress = m.on;
  });
  if (setup.nice > 0) {
    try {
      // This thread's event loop (Linux: the calling thread only); the context's worker thread,
      // created below, inherits it.
      os.setPriority(0, setup.nice);
    } catch {
      // not permitted here: normal niceness
    }
  }
  let context: Context | undefined;
  let trainer: Trainer | undefined;
  try {
    context = new Context({ device: deviceOf(setup), ...(setup.threads !== undefined && { threads: setup.threads }), priority: setup.priority });
    const source = setup.source ? await loadSource(setup.source) : undefined;
    trainer = setup.resume
      ? await Trainer.resume(setup.resume.runDir, { context, ...(setup.resume.steps !== undefined && { steps: setup.resume.steps }), ...(source && { source }) })
      : await Trainer.create(setup.config, { context, ...(source && { source }), runFolder: setup.runFolder });
    const t = trainer;
    const weights = async () => {
      const step = t.step;
      const state = (await t.model.state()) as Record<string, Float32Array | Float64Array>;
      post({ type: 'weights', step, state }, Object.values(state).map((a) => a.buffer as ArrayBuffer));
    };
    Atomics.store(counters, 0, t.step);
    post({ type: 'ready', runDir: t.runDir, plannedSteps: t.plannedSteps, step: t.step, device: context.device, architecture: architectureOf(t.model) });
    await weights();
    let posting: Promise<void> = Promise.resolve();
    const result = await t.run({
      signal: stop.signal,
      onStep: (p) => {
        Atomics.store(counters, 0, p.step);
        loss[0] = p.loss;
        if (progress) post({ type: 'step', progress: p });
        // Called now: the reads queue behind this step's work and ahead of the next step's.
        if (setup.weightsEvery > 0 && p.step % setup.weightsEvery === 0) posting = Promise.all([posting, weights()]).then(() => undefined);
      },
      onRecord: (record) => post({ type: 'record', record }),
    });
    await posting;
    await weights();
    post({ type: 'done', result });
  } catch (err) {
    post({ type: 'failed', error: describeError(err) });
  } finally {
    trainer?.dispose();
    context?.dispose();
    port.close();
  }
}

main(workerData as WorkerSetup).catch((err) => parentPort!.postMessage({ type: 'failed', error: describeError(err) } satisfies FromWorker));
