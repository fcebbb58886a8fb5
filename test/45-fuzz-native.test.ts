import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { native } from '../lib/native';
import { TEST_SEED, announceSeed } from './helpers';

const ROOT = path.join(__dirname, '..');
const CALLS = Number(process.env.ORTHORNN_FUZZ_NATIVE_CALLS ?? 10000);

interface Child {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a script (TypeScript through tsx) in a child process, so that a crash is a result. */
function child(script: string, env: Record<string, string>, timeout = 240_000): Child {
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', script], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, ...env },
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

function lastLines(file: string, n: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no trace)';
  }
}

describe('45 the raw addon is memory-safe on its own: fuzzing and regressions', function () {
  this.timeout(300_000);
  let tmp: string;
  before(() => {
    announceSeed();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-fuzz-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it(`${CALLS} seeded random raw-binding calls, mostly malformed: no crash, every error coded, every promise settled`, () => {
    const trace = path.join(tmp, 'trace.txt');
    const seed = String(TEST_SEED);
    const started = Date.now();
    const r = child(path.join(ROOT, 'test/fuzz/native-driver.ts'), {
      ORTHORNN_FUZZ_SEED: seed,
      ORTHORNN_FUZZ_NATIVE_CALLS: String(CALLS),
      ORTHORNN_FUZZ_TRACE: trace,
    });
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    const repeat = `repeat with ORTHORNN_TEST_SEED=${seed}`;
    if (r.status !== 0) {
      assert.fail(
        `the fuzz driver ${r.signal ? `was killed by ${r.signal}` : `exited with status ${r.status}`} (${repeat}); ` +
          `its last calls:\n${lastLines(trace, 5)}\nstderr:\n${r.stderr.slice(-3000)}`,
      );
    }
    const summary = JSON.parse(r.stdout.trim().split('\n').pop()!);
    const histogram = Object.entries(summary.histogram as Record<string, number>)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    console.log(`      seed ${seed}: ${summary.calls} calls in ${seconds} s (driver ${(summary.ms / 1000).toFixed(1)} s): ${histogram}`);
    assert.ok(summary.calls >= CALLS, `only ${summary.calls} calls were made`);
    assert.equal(summary.neverSettled, 0, `promises that never settled (${repeat}):\n${summary.uncodedExamples.join('\n')}`);
    assert.equal(summary.uncoded, 0, `errors without an ERR_ORTHORNN_ code (${repeat}):\n${summary.uncodedExamples.join('\n')}`);
    assert.equal(summary.contextsUsable, summary.contextsAlive, `contexts unusable after the fuzzing (${repeat}):\n${summary.uncodedExamples.join('\n')}`);
    // The run reached the queued-failure paths and the synchronous checks alike.
    assert.ok(summary.histogram.ok > CALLS / 10, 'too few calls succeeded');
    assert.ok(summary.histogram.ERR_ORTHORNN_RANGE > 0 && summary.histogram.ERR_ORTHORNN_TYPE > 0);
  });

  describe('regressions', () => {
    const addon = native() as unknown as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

    async function rejectsCoded(p: Promise<unknown>, code: string, re: RegExp): Promise<void> {
      await assert.rejects(p, (e: { code?: string; message?: string }) => {
        assert.equal(e.code, code, String(e.message));
        assert.match(String(e.message), re);
        return true;
      });
    }

    it("luSolve with pivots outside 1..n rejects the next await with a coded RangeError naming 'pivots'; the context stays usable", async () => {
      const ctx = new addon.NativeContext('cpu', 0);
      try {
        for (const dtype of ['float32', 'float64'] as const) {
          const Arr = dtype === 'float32' ? Float32Array : Float64Array;
          const n = 4;
          const lu = ctx.fromArray(new Arr([4, 1, 0, 0, 1, 4, 1, 0, 0, 1, 4, 1, 0, 0, 1, 4]), [n, n]);
          const b = ctx.fromArray(new Arr([1, 2, 3, 4]), [n]);
          const x = ctx.empty([n], dtype);
          for (const bad of [[1, 99, 3, 4], [0, 2, 3, 4], [-(2 ** 31), 2, 3, 4], [1, 2, 3, 2 ** 31 - 1], [5, 5, 5, 5]]) {
            ctx.luSolve(lu, ctx.fromArray(new Int32Array(bad), [n]), b, x);
            await rejectsCoded(ctx.read(x), 'ERR_ORTHORNN_RANGE', /luSolve.*argument 'pivots' must hold row numbers in 1\.\.4/);
          }
          // Synchronous refusals: the wrong count and the wrong dtype.
          assert.throws(() => ctx.luSolve(lu, ctx.fromArray(new Int32Array(3).fill(1), [3]), b, x), { code: 'ERR_ORTHORNN_RANGE', message: /argument 'pivots' must have 4 elements/ });
          assert.throws(() => ctx.luSolve(lu, ctx.fromArray(new Float32Array(4).fill(1), [4]), b, x), { code: 'ERR_ORTHORNN_TYPE', message: /argument 'pivots' must be int32/ });
          // Still usable: a real factorisation solves.
          const piv = ctx.empty([n], 'int32');
          const lu2 = ctx.empty([n, n], dtype);
          ctx.luFactor(lu, lu2, piv);
          ctx.luSolve(lu2, piv, b, x);
          const got = (await ctx.read(x)) as Float64Array;
          const A = [4, 1, 0, 0, 1, 4, 1, 0, 0, 1, 4, 1, 0, 0, 1, 4];
          for (let i = 0; i < n; i++) {
            let s = 0;
            for (let j = 0; j < n; j++) s += A[i * n + j] * got[j];
            assert.ok(Math.abs(s - (i + 1)) < 1e-4, `row ${i}: ${s}`);
          }
        }
      } finally {
        ctx.dispose();
      }
    });

    it("a workspace used with another context, or after its context was disposed, is a coded error naming 'workspace'", async () => {
      const a = new addon.NativeContext('cpu', 0), b = new addon.NativeContext('cpu', 0);
      try {
        const ws = a.createWorkspace();
        const M = b.fromArray(new Float64Array([1, 0, 0, 1]), [2, 2]), G = b.fromArray(new Float64Array([0, 1, 0, 0]), [2, 2]);
        const out = b.empty([1], 'float64');
        for (const call of [
          () => b.cayleyStep(ws, M, G, 0.1),
          () => b.cayleyStepInFrame(ws, M, G, 0.1),
          () => b.orthogonalityError(ws, M, out),
          () => b.reorthonormalize(ws, M),
          () => b.releaseWorkspace(ws),
          () => b.elmanForward(ws, {}, {}, M, null, M, M),
          () => b.lstmForward(ws, {}, {}, M, null, null, M, M, M),
          () => b.lstmLossAndGradients(ws, {}, {}, {}, {}),
        ]) {
          assert.throws(call, { code: 'ERR_ORTHORNN_RANGE', message: /argument 'workspace' must belong to the context it is used with/ });
        }
        assert.throws(() => b.cayleyStep({}, M, G, 0.1), { code: 'ERR_ORTHORNN_TYPE', message: /argument 'workspace'/ });
        assert.throws(() => b.cayleyStep(M, M, G, 0.1), { code: 'ERR_ORTHORNN_TYPE', message: /argument 'workspace'/ });
        // b's own workspace works, and b is still usable.
        b.cayleyStep(b.createWorkspace(), M, G, 0.1);
        await b.sync();
        a.dispose();
        assert.throws(() => b.cayleyStep(ws, M, G, 0.1), { code: 'ERR_ORTHORNN_DISPOSED', message: /argument 'workspace'/ });
      } finally {
        a.dispose();
        b.dispose();
      }
    });

    it('a failing sync() settles even when the error class handed to the addon throws, or refuses its code', () => {
      // In a child: setErrorClasses is process-wide and these classes must not leak into other suites.
      const script = path.join(tmp, 'throwing-class.ts');
      writeFileSync(
        script,
        `import { native } from ${JSON.stringify(path.join(ROOT, 'lib/native'))};
const addon: any = native();
const results: string[] = [];
class Throws extends Error { constructor(m: string) { super(m); throw new Error('constructor threw'); } }
class NoCode extends Error { get code() { return 'MINE'; } }
class NotError { constructor() { return 42 as any; } }
async function attempt(cls: unknown): Promise<void> {
  addon.setErrorClasses({ ERR_ORTHORNN_NUMERIC: cls, ERR_ORTHORNN_DISPOSED: cls });
  const ctx = new addon.NativeContext('cpu', 0);
  ctx.luFactor(ctx.fromArray(new Float64Array(4), [2, 2]), ctx.empty([2, 2], 'float64'), ctx.empty([2], 'int32'));
  const timer = setTimeout(() => { console.log('PENDING'); process.exit(5); }, 10000);
  try { await ctx.sync(); results.push('resolved'); } catch (e: any) { results.push(e.code + ': ' + e.message); }
  // A disposal with work pending rejects through the same path.
  ctx.fill(ctx.empty([1000], 'float64'), 1);
  const p = ctx.sync();
  ctx.dispose();
  try { await p; results.push('resolved'); } catch (e: any) { results.push(e.code); }
  clearTimeout(timer);
}
(async () => {
  for (const cls of [Throws, NoCode, NotError]) await attempt(cls);
  console.log(JSON.stringify(results));
})();
`,
      );
      const r = child(script, {}, 60_000);
      assert.equal(r.status, 0, `status ${r.status} signal ${r.signal}\n${r.stdout}\n${r.stderr}`);
      const results: string[] = JSON.parse(r.stdout.trim().split('\n').pop()!);
      assert.equal(results.length, 6);
      for (let i = 0; i < 6; i += 2) {
        assert.match(results[i], /^ERR_ORTHORNN_NUMERIC: op 'luFactor' failed: the matrix is singular/);
        assert.match(results[i + 1], /^(ERR_ORTHORNN_DISPOSED|resolved)$/);
      }
    });

    it('methods called on the wrong receiver and objects faking a prototype are coded TypeErrors', () => {
      const ctx = new addon.NativeContext('cpu', 0);
      try {
        const t = ctx.empty([2], 'float32');
        assert.throws(() => addon.NativeContext.prototype.read.call(t, t), { code: 'ERR_ORTHORNN_TYPE' });
        assert.throws(() => Object.getOwnPropertyDescriptor(addon.NativeTensor.prototype, 'shape')!.get!.call(ctx), { code: 'ERR_ORTHORNN_TYPE' });
        assert.throws(() => ctx.fill(Object.create(addon.NativeTensor.prototype), 1), { code: 'ERR_ORTHORNN_TYPE' });
        assert.throws(() => ctx.fill(Object.setPrototypeOf(ctx, addon.NativeTensor.prototype), 1), { code: 'ERR_ORTHORNN_TYPE' });
        Object.setPrototypeOf(ctx, addon.NativeContext.prototype);
        assert.throws(() => addon.NativeContext('cpu', 0), { code: 'ERR_ORTHORNN_TYPE', message: /with `new`/ });
        assert.throws(() => new addon.NativeTensor(ctx.createWorkspace()), { code: 'ERR_ORTHORNN_TYPE' });
        const getter = Object.defineProperty({}, 'inputSize', { get() { throw new Error('boom'); } });
        assert.throws(() => ctx.lstmForward(ctx.createWorkspace(), getter, {}, t, null, null, t, t, t), { code: 'ERR_ORTHORNN_TYPE', message: /config\.inputSize' could not be read: its getter threw: boom/ });
      } finally {
        ctx.dispose();
      }
    });

    it('a 3-D operand of batch 0 is not taken for a shared matrix; absurd sizes are coded OutOfMemory errors', () => {
      const ctx = new addon.NativeContext('cpu', 0);
      try {
        assert.throws(() => ctx.gemm(ctx.empty([0, 5, 1], 'float32'), ctx.empty([1, 4], 'float32'), ctx.empty([5, 4], 'float32'), false, false, 1, 0), { code: 'ERR_ORTHORNN_RANGE', message: /batch sizes differ/ });
        assert.throws(() => ctx.empty([1e6, 1e6, 1e3], 'float64'), { code: 'ERR_ORTHORNN_OUT_OF_MEMORY' });
        assert.throws(() => ctx.empty([2 ** 40, 2 ** 20], 'float64'), { code: 'ERR_ORTHORNN_RANGE' });
      } finally {
        ctx.dispose();
      }
    });
  });
});
