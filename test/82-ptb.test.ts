import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { Context, DataError, ElmanRNN } from '../lib/index';
import { bitsPerCharacter, PtbCharTask } from '../lib/train/index';
import { announceSeed } from './helpers';

const sharedPtb = path.resolve(__dirname, '..', '..', 'shared', 'data', 'ptb');

function writePtb(lines: Record<'train' | 'valid' | 'test', string[]>, gz = false): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'orthornn-ptb-'));
  for (const [name, ls] of Object.entries(lines)) {
    const text = ls.map((l) => ` ${l.split('').map((c) => (c === ' ' ? '_' : c)).join(' ')} \n`).join('');
    if (gz) writeFileSync(path.join(dir, `ptb.char.${name}.txt.gz`), gzipSync(text));
    else writeFileSync(path.join(dir, `ptb.char.${name}.txt`), text);
  }
  return dir;
}

describe('82 Penn Treebank characters: sentences, length filter, masks, bits per character', function () {
  this.timeout(120_000);
  before(() => announceSeed());

  it('one sentence per sequence; longer ones dropped; next-character targets ending in the end of sentence', () => {
    for (const gz of [false, true]) {
      const dir = writePtb({ train: ['the cat', 'a dog sat down here', 'hi'], valid: ['a cat', 'the dog sat down'], test: ['hat'] }, gz);
      const task = new PtbCharTask({ dir, maxLength: 10 });
      assert.deepEqual(task.vocabulary, ['_', 'a', 'c', 'd', 'e', 'g', 'h', 'i', 'n', 'o', 'r', 's', 't', 'w', '\n']);
      assert.equal(task.train.length, 2);
      assert.deepEqual(task.dropped, { train: 1, valid: 1, test: 0 });
      const decode = (s: Int32Array) => Array.from(s, (i) => task.vocabulary[i]).join('');
      assert.deepEqual(task.train.map(decode), ['the_cat', 'hi']);
      const b = task.batch(task.train, [0, 1]);
      assert.equal(b.steps, 7);
      const V = task.vocabularySize;
      const input = (t: number, s: number) => task.vocabulary[Array.from(b.x.subarray((t * 2 + s) * V, (t * 2 + s + 1) * V)).indexOf(1)];
      assert.equal(input(0, 0), 't');
      assert.equal(task.vocabulary[b.targets[0 * 2 + 0]], 'h');
      assert.equal(task.vocabulary[b.targets[6 * 2 + 0]], '\n', 'the last character predicts the end of the sentence');
      assert.equal(task.vocabulary[b.targets[1 * 2 + 1]], '\n');
      assert.deepEqual(Array.from({ length: 7 }, (_, t) => b.mask[t * 2 + 1]), [1, 1, 0, 0, 0, 0, 0]);
      assert.ok(b.x.subarray((2 * 2 + 1) * V, (2 * 2 + 2) * V).every((v) => v === 0), 'padding inputs are zero');
    }
  });

  it('a masked batch feeds an Elman model: the loss is the mean over real positions, in bits per character', async () => {
    const dir = writePtb({ train: ['the cat', 'hi'], valid: ['hi'], test: ['hi'] });
    const task = new PtbCharTask({ dir, maxLength: 10 });
    const ctx = new Context();
    const V = task.vocabularySize;
    const model = await ElmanRNN.create({ inputSize: V, hiddenSize: 8, outputSize: V, context: ctx });
    const b = task.batch(task.train, [0, 1]);
    const r = await model.lossAndGradients({ x: ctx.tensor(b.x, [b.steps, 2, V]), targets: ctx.tensor(b.targets, [b.steps, 2]), score: 'mask', mask: b.mask });
    // An untrained model with small output weights predicts nearly uniformly: ≈ log2(V) bits.
    assert.ok(Math.abs(bitsPerCharacter(r.loss) - Math.log2(V)) < 0.5, `${bitsPerCharacter(r.loss)} vs ${Math.log2(V)}`);
    ctx.dispose();
  });

  it("Mikolov's files: 42,068 training sentences, length filters of the paper", function () {
    if (!existsSync(sharedPtb)) {
      console.log(`      skipped: no ${sharedPtb} beside this checkout`);
      this.skip();
    }
    const p75 = new PtbCharTask({ dir: sharedPtb, maxLength: 75 });
    const p300 = new PtbCharTask({ dir: sharedPtb, maxLength: 300 });
    assert.equal(p75.train.length + p75.dropped.train, 42_068);
    assert.ok(p75.train.length < p300.train.length);
    assert.ok(p300.train.length + p300.dropped.train === 42_068);
    assert.equal(p75.vocabulary[p75.vocabularySize - 1], '\n');
    assert.ok(p75.vocabularySize > 40 && p75.vocabularySize < 60, `vocabulary of ${p75.vocabularySize}`);
    console.log(`      PTBc-75: ${p75.train.length}/${p75.valid.length}/${p75.test.length} sentences; PTBc-300: ${p300.train.length}/${p300.valid.length}/${p300.test.length}; ${p75.vocabularySize} symbols`);
  });

  it('a missing folder or file, or a character unseen in training, is a DataError', () => {
    assert.throws(() => new PtbCharTask({ dir: '/nonexistent', maxLength: 75 }), (e: unknown) => e instanceof DataError && /ptb\.char\.train\.txt/.test(e.message));
    const dir = writePtb({ train: ['ab'], valid: ['xyz'], test: ['a'] });
    assert.throws(() => new PtbCharTask({ dir, maxLength: 75 }), (e: unknown) => e instanceof DataError && /'x' does not occur/.test(e.message));
    assert.throws(() => new PtbCharTask({ dir, maxLength: 0 }), RangeError);
  });
});
