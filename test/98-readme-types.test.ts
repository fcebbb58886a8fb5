/**
 * 98: the README's TypeScript examples type-check as a user's code would: against the
 * package's published declarations (emitted here into a temporary node_modules/orthornn with
 * the package's own package.json, so `orthornn` and `orthornn/train` resolve through its
 * `exports`), as ES modules, with `strict` and `noUncheckedIndexedAccess`. A block that uses
 * names from the text around it (a model, a batch) gets them declared first, here.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.join(__dirname, '..');
const TSC = path.join(ROOT, 'node_modules', '.bin', 'tsc');

/** What each block takes from the prose around it, by a line that identifies the block. */
const CONTEXT: [string, string][] = [
  ["import { InMemorySource, train } from 'orthornn/train';", 'declare const x: Float32Array, validX: Float32Array, testX: Float32Array;\ndeclare const targets: Int32Array, validTargets: Int32Array, testTargets: Int32Array;'],
  ["import { createPredictor } from 'orthornn';", "import type { ElmanRNN } from 'orthornn';\nimport type { Trainer } from 'orthornn/train';\ndeclare const model: ElmanRNN;\ndeclare const trainer: Trainer;\ndeclare const x: Float32Array, chunk: Float32Array, sequence: Float32Array;\ndeclare const T: number, B: number, d: number;"],
  ["import { loadModel, exportOnnx } from 'orthornn';", "import type { ElmanRNN } from 'orthornn';\ndeclare const model: ElmanRNN;"],
];

function readmeBlocks(): string[] {
  const text = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  return [...text.matchAll(/^```ts\n([\s\S]*?)^```/gm)].map((m) => m[1]);
}

describe('98 the README type-checks as user code (strict, noUncheckedIndexedAccess)', function () {
  this.timeout(300_000);

  it('every ```ts block compiles against the published declarations, without non-null assertions on model results', () => {
    const blocks = readmeBlocks();
    assert.ok(blocks.length >= 5, `the README's TypeScript blocks (found ${blocks.length})`);
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-readme-'));
    try {
      const pkg = path.join(tmp, 'node_modules', 'orthornn');
      mkdirSync(pkg, { recursive: true });
      copyFileSync(path.join(ROOT, 'package.json'), path.join(pkg, 'package.json'));
      const emit = spawnSync(TSC, ['-p', path.join(ROOT, 'tsconfig.json'), '--emitDeclarationOnly', '--declarationMap', 'false', '--outDir', path.join(pkg, 'dist')], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(emit.status, 0, `emitting the declarations: ${emit.stdout}${emit.stderr}`);
      const files: string[] = [];
      blocks.forEach((block, i) => {
        const context = CONTEXT.find(([marker]) => block.includes(marker))?.[1] ?? '';
        const file = `block${i + 1}.mts`;
        writeFileSync(path.join(tmp, file), `${context}\n${block}\nexport {};\n`);
        files.push(file);
      });
      writeFileSync(path.join(tmp, 'tsconfig.json'), JSON.stringify({
        compilerOptions: {
          strict: true, noUncheckedIndexedAccess: true, noEmit: true, target: 'ES2022', lib: ['ES2022', 'DOM'],
          module: 'nodenext', moduleResolution: 'nodenext', skipLibCheck: true,
          types: ['node'], typeRoots: [path.join(ROOT, 'node_modules', '@types')],
        },
        files,
      }));
      const check = spawnSync(TSC, ['-p', tmp], { cwd: tmp, encoding: 'utf8' });
      // Errors name the block (blockN.mts: the Nth ```ts block of the README) and its line.
      assert.equal(check.status, 0, `the README's code does not type-check:\n${check.stdout}${check.stderr}`);
      for (const [i, block] of blocks.entries()) {
        assert.doesNotMatch(block, /(gradients|frameGradients|parameters)!/, `block ${i + 1} needs no non-null assertion on a model's results`);
      }
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
