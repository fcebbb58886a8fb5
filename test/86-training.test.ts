import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { Context, DataError, ElmanRNN, memoryOf } from '../lib/index';
import { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors } from '../lib/io/safetensors';
import { TextCorpusTask } from '../lib/tasks/text';
import { readCheckpoint } from '../lib/train/checkpoint';
import { parseOption, resolveConfig } from '../lib/train/config';
import type { RunRecord, TrainRecord } from '../lib/train/records';
import { scheduleFactor, Trainer } from '../lib/train/trainer';
import { announceSeed, rng, TEST_SEED } from './helpers';

function records(dir: string): RunRecord[] {
  return readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as RunRecord);
}

function trainLosses(dir: string): Map<number, number> {
  return new Map(records(dir).filter((r): r is TrainRecord => r.type === 'train').map((r) => [r.step, r.loss]));
}

describe('86 training: configuration, checkpoints, the training loop', () => {
  let tmp: string;
  before(() => {
    announceSeed();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-train-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  describe('configuration', () => {
    it('fills the task defaults under the given options', () => {
      const c = resolveConfig({ task: 'copy', hidden: 64 });
      assert.equal(c.hidden, 64);
      assert.equal(c.activation, 'identity', 'copy defaults to the linear activation');
      assert.equal(c.delay, 100);
      const m = resolveConfig({ task: 'mnist' });
      assert.equal(m.batchSize, 50);
      assert.equal(m.activation, 'tanh');
      assert.equal(m.epochs, 1);
      assert.equal(resolveConfig({ task: 'mnist', steps: 7 }).epochs, 0, 'steps replace the default epochs');
    });

    it("a generated task's epoch is the paper's: 100 batches of fresh sequences", async () => {
      const c = resolveConfig({ task: 'copy', epochs: 2.5 });
      assert.equal(c.epochs, 2.5);
      assert.equal(c.steps, 0);
      const trainer = await Trainer.create({ task: 'adding', length: 10, hidden: 4, batchSize: 3, epochs: 2.5 }, { runFolder: false });
      try {
        assert.equal(trainer.totalSteps, 250);
      } finally {
        trainer.dispose();
      }
    });

    it('refuses unknown options, wrong types, out-of-range values and options the model does not use', () => {
      assert.throws(() => resolveConfig({ hiddn: 3 } as never), /unknown option 'hiddn'/);
      assert.throws(() => resolveConfig({ hidden: '3' } as never), (e: Error) => e instanceof TypeError && /'hidden'/.test(e.message));
      assert.throws(() => resolveConfig({ hidden: 0 }), /'hidden' must be ≥ 1/);
      assert.throws(() => resolveConfig({ lr: 0 }), /'lr' must be > 0/);
      assert.throws(() => resolveConfig({ task: 'copi' as never }), /'task'/);
      assert.throws(() => resolveConfig({ model: 'plain', margin: 0.1 }), /'margin' must be given only with model svd/);
      assert.throws(() => resolveConfig({ model: 'lstm', clipPreactivation: 5 }), /'clipPreactivation' must be omitted for the lstm/);
      assert.throws(() => resolveConfig({ optimizer: 'adam', rmsprop: 'lasagne' }), /'rmsprop' must be given only with optimizer rmsprop/);
      assert.throws(() => resolveConfig({ rmsprop: 'keras' as never }), /'rmsprop' must be 'pytorch', 'lasagne'/);
      assert.throws(() => resolveConfig({ model: 'svd', lstmInit: 'paper' }), /'lstmInit' must be given only with model lstm/);
      assert.throws(() => resolveConfig({ task: 'ptb' }), /'dataDir'/);
      assert.throws(() => resolveConfig({ steps: 10, epochs: 1, task: 'mnist' }), /'epochs' must be omitted when steps is given/);
    });

    it('parses flag values by the option table', () => {
      assert.equal(parseOption('hidden', '64'), 64);
      assert.equal(parseOption('learnH0', 'true'), true);
      assert.equal(parseOption('task', 'adding'), 'adding');
      assert.throws(() => parseOption('lr', 'fast'), /'lr' must be a number/);
      assert.throws(() => parseOption('learnH0', 'maybe'), /'learnH0'/);
      assert.throws(() => parseOption('nope', '1'), /unknown option 'nope'/);
    });

    it('step schedules multiply the learning rates by decayRate every decayEvery steps', () => {
      const c = resolveConfig({ schedule: 'step', decayEvery: 10, decayRate: 0.5 });
      assert.deepEqual([1, 10, 11, 20, 21, 35].map((s) => scheduleFactor(c, s)), [1, 1, 0.5, 0.5, 0.25, 0.125]);
      assert.equal(scheduleFactor(resolveConfig({}), 1000), 1);
    });
  });

  describe('safetensors', () => {
    it('round-trips F32, F64 and I32 tensors with shapes and metadata, in the documented layout', () => {
      const r = rng(TEST_SEED);
      const a = Float32Array.from({ length: 6 }, r), b = Float64Array.from({ length: 5 }, r), c = Int32Array.from([1, -2, 3]);
      const bytes = encodeSafetensors({ tensors: { a: { data: a, shape: [2, 3] }, b: { data: b, shape: [5] }, c: { data: c, shape: [3, 1] } }, metadata: { note: 'x' } });
      const headerLength = Number(bytes.readBigUInt64LE(0));
      assert.equal((8 + headerLength) % 8, 0, 'data starts 8-byte aligned');
      const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString());
      assert.deepEqual(header.a, { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] });
      assert.deepEqual(header.b.data_offsets, [24, 64]);
      assert.deepEqual(header.__metadata__, { note: 'x' });
      assert.equal(bytes.length, 8 + headerLength + 24 + 40 + 12);
      const back = decodeSafetensors(bytes);
      assert.deepEqual(back.tensors.a, { data: a, shape: [2, 3] });
      assert.deepEqual(back.tensors.b, { data: b, shape: [5] });
      assert.deepEqual(back.tensors.c, { data: c, shape: [3, 1] });
      assert.deepEqual(back.metadata, { note: 'x' });
    });

    it('writes atomically (no temporary file left) and names the file in errors', () => {
      const file = path.join(tmp, 'x.safetensors');
      writeSafetensors(file, { tensors: { w: { data: new Float32Array([1, 2]), shape: [2] } }, metadata: {} });
      assert.deepEqual(readSafetensors(file).tensors.w.data, new Float32Array([1, 2]));
      assert.deepEqual(readdirSync(tmp).filter((f) => f.includes('.tmp')), []);
      writeFileSync(path.join(tmp, 'short.safetensors'), Buffer.from([1, 2, 3]));
      assert.throws(() => readSafetensors(path.join(tmp, 'short.safetensors')), (e: Error) => e instanceof DataError && /short\.safetensors.*shorter than the 8-byte/.test(e.message));
      const bad = Buffer.alloc(16);
      bad.writeBigUInt64LE(8n, 0);
      bad.write('{"a":{"d', 8);
      assert.throws(() => decodeSafetensors(bad, 'bad.st'), /'bad.st' is not a valid safetensors file: the header is not JSON/);
      const lying = encodeSafetensors({ tensors: { w: { data: new Float64Array(4), shape: [4] } }, metadata: {} });
      assert.throws(() => decodeSafetensors(lying.subarray(0, lying.length - 8)), /data_offsets/);
      assert.throws(() => readSafetensors(path.join(tmp, 'missing.safetensors')), /cannot read '.*missing\.safetensors'/);
      assert.throws(() => readCheckpoint(file), /is not an orthornn checkpoint/);
    });
  });

  describe('text corpus', () => {
    it('cuts a file 90/5/5, encodes characters, targets the next character, and reads gzip', () => {
      const text = 'the quick brown fox jumps over the lazy dog. '.repeat(40);
      const file = path.join(tmp, 'corpus.txt.gz');
      writeFileSync(file, gzipSync(Buffer.from(text)));
      const task = new TextCorpusTask({ file, length: 12, seed: 3 });
      assert.deepEqual(task.vocabulary, [...new Set(text)].sort());
      const total = text.length;
      assert.equal(task.parts.train.length, Math.floor(total * 0.9));
      assert.equal(task.parts.train.length + task.parts.valid.length + task.parts.test.length, total);
      const b = task.batch(4);
      const V = task.vocabularySize;
      for (let bi = 0; bi < 4; bi++) {
        const chars: string[] = [];
        for (let t = 0; t < 12; t++) chars.push(task.vocabulary[b.x.subarray((t * 4 + bi) * V, (t * 4 + bi + 1) * V).indexOf(1)]);
        const next = Array.from({ length: 12 }, (_, t) => task.vocabulary[b.targets[t * 4 + bi]]);
        assert.equal(next.slice(0, 11).join(''), chars.slice(1).join(''), 'targets are the inputs shifted by one');
        assert.ok(text.includes(chars.join('') + next[11]));
      }
      const w = task.windowBatch('valid', [0, 1]);
      const first = Array.from({ length: 12 }, (_, t) => task.vocabulary[w.x.subarray((t * 2) * V, (t * 2 + 1) * V).indexOf(1)]).join('');
      assert.equal(first, Array.from(task.parts.valid.subarray(0, 12), (id) => task.vocabulary[id]).join(''));
      assert.throws(() => new TextCorpusTask({ file, length: 10_000 }), /fewer than one sequence/);
      assert.throws(() => new TextCorpusTask({ file: path.join(tmp, 'none.txt'), length: 5 }), (e: Error) => e instanceof DataError);
    });
  });

  describe('element-wise clipping of the pre-activation gradient', () => {
    it('bounds every dL/da_t element by c (so |db_j| ≤ T·B·c), and a c above every element changes nothing', async () => {
      const ctx = new Context();
      try {
        const T = 6, B = 3, n = 8, d = 4, k = 5;
        const make = (clip: number) => ElmanRNN.create({ inputSize: d, hiddenSize: n, outputSize: k, dtype: 'float64', context: ctx, seed: 7, activation: 'tanh', clipPreactivation: clip });
        const r = rng(TEST_SEED);
        const x = ctx.tensor(Float64Array.from({ length: T * B * d }, () => 4 * (r() - 0.5)), [T, B, d]);
        const targets = ctx.tensor(Int32Array.from({ length: T * B }, () => Math.floor(r() * k)), [T, B]);
        const grads = async (clip: number) => {
          const m = await make(clip);
          const g = await m.lossAndGradients({ x, targets });
          const out = { b: Array.from(await g.gradients.b.read()), W_in: Array.from(await g.gradients.W_in.read()) };
          m.dispose();
          return out;
        };
        const free = await grads(0);
        const maxDb = Math.max(...free.b.map(Math.abs));
        const c = maxDb / (T * B) / 4; // well below the largest dA elements
        const clipped = await grads(c);
        assert.ok(maxDb > T * B * c, 'the bound is not met without clipping');
        for (const v of clipped.b) assert.ok(Math.abs(v) <= T * B * c * (1 + 1e-12), `|db| = ${Math.abs(v)} > T·B·c = ${T * B * c}`);
        assert.deepEqual(await grads(1e6), free, 'clipping far above every element is the identity');
        await assert.rejects(make(-1), /clipPreactivation/);
      } finally {
        ctx.dispose();
      }
    });
  });

  describe('the trainer', () => {
    it('solves a small copy task through train(): target accuracy reached, best weights tested, records and checkpoints written', async function () {
      this.timeout(300_000);
      const out = path.join(tmp, 'copy-run');
      const trainer = await Trainer.create({ task: 'copy', delay: 10, hidden: 64, margin: 0.1, seed: 1, steps: 3000, validEvery: 100, validSize: 200, targetAccuracy: 1, out });
      try {
        const result = await trainer.run();
        console.log(`      solved in ${result.steps} steps (${result.seconds.toFixed(1)} s): test ${JSON.stringify(result.test)}`);
        assert.ok(result.reachedTarget, `accuracy 1 not reached within 3000 steps: best ${JSON.stringify(result.best)}`);
        assert.ok(result.test!.accuracy! >= 0.99, 'the test set (other sequences) is recalled too');
        assert.equal(result.test!.step, result.best!.step);
        const recs = records(out);
        const train = recs.filter((r): r is TrainRecord => r.type === 'train');
        assert.ok(train.length >= result.steps / 10 - 1);
        const last = train[train.length - 1];
        assert.ok(last.orthogonality!.U < 1e-4 && last.orthogonality!.V < 1e-4);
        assert.ok(last.singularValues!.min >= 0.9 - 1e-6 && last.singularValues!.max <= 1.1 + 1e-6, 'the spectrum stays in the margin');
        assert.ok(recs.some((r) => r.type === 'gradientNorms' && r.norms.length === 30));
        for (const f of ['config.json', 'last.safetensors', 'best.safetensors']) assert.ok(existsSync(path.join(out, f)), f);
        const ckpt = readCheckpoint(path.join(out, 'last.safetensors'));
        assert.equal(ckpt.step, result.steps);
        assert.deepEqual(Object.keys(ckpt.parameters).sort(), ['U', 'V', 'W_in', 'W_out', 'b', 'c', 'p']);
        assert.deepEqual(readSafetensors(path.join(out, 'last.safetensors')).tensors.W_in.shape, [64, 10], 'parameters keep their shapes (docs/math.md §3)');
        await assert.rejects(Trainer.create({ task: 'copy', out }), /'out' must be a new run folder \(or resume this one\)/, 'a finished run is never overwritten');
      } finally {
        trainer.dispose();
      }
    });

    // Exact resume: the same losses, bit for bit, after a checkpoint as in one uninterrupted run.
    const resumeCases: [string, Record<string, unknown>][] = [
      ['copy, svd, Adam (bias correction counts steps), spectrum group, step schedule, clipping', { task: 'copy', delay: 5, hidden: 16, optimizer: 'adam', margin: 0.2, schedule: 'step', decayEvery: 7, clipNorm: 1, clipPreactivation: 50, weightDecay: 1e-3 }],
      ['text corpus, plain W, RMSprop, learned h0', { task: 'text', length: 16, hidden: 24, model: 'plain', learnH0: true, weightDecay: 1e-4 }],
    ];
    for (const [label, options] of resumeCases) {
      it(`resuming from a checkpoint continues exactly: ${label}`, async function () {
        this.timeout(120_000);
        if (options.task === 'text') {
          const file = path.join(tmp, 'resume.txt');
          writeFileSync(file, 'abcde fghij klmno pqrst uvwxy z. '.repeat(60));
          options.textFile = file;
        }
        const common = { ...options, seed: 5, logEvery: 1, validEvery: 10, validSize: 20, batchSize: 4 };
        const whole = path.join(tmp, `whole-${options.task}`), split = path.join(tmp, `split-${options.task}`);
        const a = await Trainer.create({ ...common, steps: 24, out: whole } as never);
        await a.run();
        a.dispose();
        const b1 = await Trainer.create({ ...common, steps: 10, out: split } as never);
        await b1.run();
        b1.dispose();
        const b2 = await Trainer.resume(split, { steps: 24 });
        assert.equal(b2.step, 10);
        await b2.run();
        b2.dispose();
        const times = records(split).filter((r): r is TrainRecord => r.type === 'train').map((r) => r.time);
        for (let i = 1; i < times.length; i++) assert.ok(times[i] >= times[i - 1], 'the clock goes on across the resume');
        const la = trainLosses(whole), lb = trainLosses(split);
        for (let s = 11; s <= 24; s++) assert.equal(lb.get(s), la.get(s), `step ${s}: ${lb.get(s)} after resume, ${la.get(s)} uninterrupted`);
        const pa = readCheckpoint(path.join(whole, 'last.safetensors')).parameters, pb = readCheckpoint(path.join(split, 'last.safetensors')).parameters;
        for (const name of Object.keys(pa)) assert.deepEqual(pb[name], pa[name], `final ${name}`);
      });
    }

    it('optimiser groups: weight decay only on weight matrices, the spectrum at lr / 2m, U and V only through Cayley steps', async () => {
      type Groups = { weights: { params: object; weightDecay: number }; others?: { params: object; weightDecay: number }; spectrum?: { params: object; lr: number; weightDecay: number }; baseLr: { cayley: number } };
      const groupsOf = (t: Trainer) => (t as unknown as { training: { groups: Groups } }).training.groups;
      const svd = await Trainer.create({ task: 'copy', delay: 3, hidden: 8, margin: 0.05, lr: 0.002, weightDecay: 0.1, learnH0: true, out: path.join(tmp, 'groups-svd') });
      try {
        const g = groupsOf(svd);
        assert.deepEqual(Object.keys(g.weights.params).sort(), ['W_in', 'W_out']);
        assert.equal(g.weights.weightDecay, 0.1);
        assert.deepEqual(Object.keys(g.others!.params).sort(), ['b', 'c', 'h0']);
        assert.equal(g.others!.weightDecay, 0);
        assert.deepEqual(Object.keys(g.spectrum!.params), ['p']);
        assert.equal(g.spectrum!.weightDecay, 0);
        assert.ok(Math.abs(g.spectrum!.lr - 0.002 / 0.1) < 1e-15, `spectrum lr ${g.spectrum!.lr}`);
        assert.equal(g.baseLr.cayley, 0.002);
      } finally {
        svd.dispose();
      }
      const plain = await Trainer.create({ task: 'copy', delay: 3, hidden: 8, model: 'plain', weightDecay: 0.1, out: path.join(tmp, 'groups-plain') });
      try {
        assert.deepEqual(Object.keys(groupsOf(plain).weights.params).sort(), ['W', 'W_in', 'W_out']);
        assert.equal(groupsOf(plain).spectrum, undefined);
      } finally {
        plain.dispose();
      }
      const lstm = await Trainer.create({ task: 'copy', delay: 3, hidden: 8, model: 'lstm', weightDecay: 0.1, out: path.join(tmp, 'groups-lstm') });
      try {
        assert.deepEqual(Object.keys(groupsOf(lstm).weights.params).sort(), ['W_out', 'weight_hh_l0', 'weight_ih_l0']);
        assert.deepEqual(Object.keys(groupsOf(lstm).others!.params).sort(), ['bias_hh_l0', 'bias_ih_l0', 'c']);
      } finally {
        lstm.dispose();
      }
    });

    it('refuses a resume without a checkpoint, naming the file', async () => {
      await assert.rejects(Trainer.resume(path.join(tmp, 'nothing-here')), /cannot read '.*nothing-here\/last\.safetensors'/);
      // best.safetensors holds weights only: no optimiser state to resume from. Nothing leaks.
      const before = memoryOf('cpu').tensors;
      const run = path.join(tmp, 'copy-run');
      await assert.rejects(Trainer.resume(run, { checkpoint: path.join(run, 'best.safetensors') }), /optimiser state for the 'weights' group/);
      assert.equal(memoryOf('cpu').tensors, before, 'the failed resume freed its model');
    });
  });
});
