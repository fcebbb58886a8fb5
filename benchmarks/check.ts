/**
 * `npm run bench -- --check`: proof that the peer computes what orthornn computes. For each case,
 * orthornn's initial parameters and one batch go to the peer as raw float32 files; the loss and
 * every gradient at those parameters, and the loss after one training step (RMSprop + Cayley),
 * must agree.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Context, ElmanRNN, ops, type Tensor } from '../lib/index';
import { trainingStep } from './cases';
import type { PeerCase, TorchPeer } from './peer';

/** Relative tolerances (float32, sums over up to T·B = 50k rows). */
export const LOSS_RTOL = 1e-4;
export const GRAD_RTOL = 1e-3;

export interface CheckRecord {
  suite: 'check';
  case: string;
  loss: number;
  peerLoss: number;
  /** |loss − peer| / |peer|. */
  lossRelError: number;
  /** max over parameters of max|g − g_peer| / max|g_peer|, and the parameter where it occurs. */
  gradRelError: number;
  gradWorst: string;
  lossAfterStep: number;
  peerLossAfterStep: number;
  lossAfterStepRelError: number;
  /** The peer's fused recurrence (torch._VF.rnn_tanh) against its loop: the larger loss error. */
  fusedLossRelError: number;
  pass: boolean;
}

function f32(t: ArrayLike<number>): Buffer {
  const a = t instanceof Float32Array ? t : Float32Array.from(t);
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

function readF32(file: string): Float32Array {
  const buf = readFileSync(file);
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);

export async function checkCase(peer: TorchPeer, name: string, c: PeerCase, margin: number, lr: number): Promise<CheckRecord> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'orthornn-check-'));
  const ctx = new Context({ seed: 7 });
  const tensors: Tensor[] = [];
  try {
    const model = await ElmanRNN.create({ inputSize: c.d, hiddenSize: c.n, outputSize: c.k, margin, context: ctx, seed: 3 });
    // A non-zero spectrum, so that ∂L/∂p and the margin sigmoid are exercised.
    const p = ctx.randn([c.n], { dtype: 'float32', seed: 5 });
    ops.copy(p, { out: model.parameters.p });
    p.dispose();
    const rows = c.score === 'last' ? c.B : c.T * c.B;
    const x = ctx.randn([c.T, c.B, c.d], { dtype: 'float32', seed: 11 });
    const targets = ctx.tensor(Int32Array.from({ length: rows }, (_, i) => (i * 7 + 3) % c.k), c.score === 'last' ? [c.B] : [c.T, c.B]);
    tensors.push(x, targets);
    for (const [key, value] of Object.entries(await model.state())) writeFileSync(path.join(dir, `${key}.f32`), f32(value));
    writeFileSync(path.join(dir, 'x.f32'), f32(await x.read()));
    const t = (await targets.read()) as Int32Array;
    writeFileSync(path.join(dir, 'targets.i32'), Buffer.from(t.buffer, t.byteOffset, t.byteLength));

    const peerReply = (await peer.request({ op: 'check', dir, case: c, margin, lr })) as unknown as Record<'loop' | 'fused', { loss: number; lossAfterStep: number }>;

    const r = await model.lossAndGradients({ x, targets, score: c.score });
    let gradRelError = 0;
    let gradWorst = '';
    for (const [key, g] of Object.entries(r.gradients)) {
      const ours = await g.read();
      const theirs = readF32(path.join(dir, `grad-${key}.f32`));
      let diff = 0;
      let scale = 0;
      for (let i = 0; i < theirs.length; i++) {
        diff = Math.max(diff, Math.abs(ours[i] - theirs[i]));
        scale = Math.max(scale, Math.abs(theirs[i]));
      }
      const e = diff / Math.max(scale, 1e-30);
      if (e >= gradRelError) [gradRelError, gradWorst] = [e, key];
    }
    const loss = r.loss;
    // The step `orthornn train` takes (lib/train/step.ts), against the peer's RMSprop and
    // ambient Cayley steps: for orthogonal U and V the frame steps are the same steps.
    const training = trainingStep(model, lr);
    await training.run({ x, targets, score: c.score });
    const after = (await model.lossAndGradients({ x, targets, score: c.score })).loss;
    training.dispose();
    model.dispose();

    const lossRelError = rel(loss, peerReply.loop.loss);
    const lossAfterStepRelError = rel(after, peerReply.loop.lossAfterStep);
    const fusedLossRelError = Math.max(rel(peerReply.fused.loss, peerReply.loop.loss), rel(peerReply.fused.lossAfterStep, peerReply.loop.lossAfterStep));
    return {
      suite: 'check',
      case: name,
      loss,
      peerLoss: peerReply.loop.loss,
      lossRelError,
      gradRelError,
      gradWorst,
      lossAfterStep: after,
      peerLossAfterStep: peerReply.loop.lossAfterStep,
      lossAfterStepRelError,
      fusedLossRelError,
      pass: lossRelError <= LOSS_RTOL && lossAfterStepRelError <= LOSS_RTOL && gradRelError <= GRAD_RTOL && fusedLossRelError <= LOSS_RTOL,
    };
  } finally {
    for (const t of tensors) t.dispose();
    ctx.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}
