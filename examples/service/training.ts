/**
 * The example service's training run, on a worker thread of the service's process
 * (server.ts starts it). Its steps have their own event loop, so they never wait behind the
 * server's request callbacks, and its context runs at the background priority (the worker
 * thread on Linux's SCHED_IDLE: it takes only the cores the server leaves idle). It talks to
 * the server by messages:
 *   to the server   {type: 'ready', runDir, totalSteps, modelFile}   once, before training
 *                   {type: 'weights', step, state}                   the parameters (buffers transferred), at
 *                                                                    the start, every refreshEvery steps, at the end
 *                   {type: 'step', step, loss, valid}                after each step
 *                   {type: 'done', result} or {type: 'failed', error} when the run ends
 *   from the server {type: 'stop'}                                   stop after the step in progress (the
 *                                                                    checkpoint last.safetensors is written)
 */
import os from 'node:os';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { Context } from '../../lib/index';
import { Trainer, type TrainConfig } from '../../lib/train/index';

export interface TrainingSetup {
  config: Partial<TrainConfig>;
  refreshEvery: number;
}

async function train(setup: TrainingSetup): Promise<void> {
  const port = parentPort!;
  try {
    // This thread's event loop below the server's (Linux: the calling thread only).
    os.setPriority(0, 19);
  } catch {
    // not permitted or not supported: normal priority
  }
  const context = new Context({ threads: 1, priority: 'background' });
  const trainer = await Trainer.create(setup.config, { context });
  const stop = new AbortController();
  port.on('message', (m: { type?: string }) => {
    if (m?.type === 'stop') stop.abort();
  });
  const postWeights = async () => {
    const step = trainer.step;
    const state = (await trainer.model.state()) as Record<string, Float32Array | Float64Array>;
    port.postMessage({ type: 'weights', step, state }, Object.values(state).map((a) => a.buffer as ArrayBuffer));
  };
  try {
    // The model's architecture, for the server's predictor (loadModel reads it back).
    const modelFile = path.join(trainer.runDir, 'model.safetensors');
    await trainer.model.save(modelFile);
    port.postMessage({ type: 'ready', runDir: trainer.runDir, totalSteps: trainer.plannedSteps, modelFile });
    await postWeights();
    let posting: Promise<void> = Promise.resolve();
    const result = await trainer.run({
      signal: stop.signal,
      onStep: (p) => {
        port.postMessage({ type: 'step', step: p.step, loss: p.loss, valid: p.valid ?? null });
        if (p.step % setup.refreshEvery === 0) posting = posting.then(postWeights);
      },
    });
    await posting;
    await postWeights();
    port.postMessage({ type: 'done', result });
  } catch (err) {
    port.postMessage({ type: 'failed', error: (err as Error).message });
  } finally {
    trainer.dispose();
    context.dispose();
  }
}

train(workerData as TrainingSetup).catch((err: Error) => parentPort!.postMessage({ type: 'failed', error: err.message }));
