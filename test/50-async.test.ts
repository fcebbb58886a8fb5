import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Context, NumericError, ops } from '../lib/index';
import { announceSeed, newContext } from './helpers';

const addonPath = process.env.ORTHORNN_ADDON ?? path.resolve(__dirname, '..', 'build', 'Release', 'orthornn.node');

describe('50 asynchrony: work runs off the JS thread, in order, with errors at the next await', () => {
  let ctx: Context;
  before(() => {
    announceSeed();
    ctx = newContext();
  });
  after(() => ctx.dispose());

  it('keeps the event loop free: a JS timer fires on schedule while a long computation runs', async () => {
    const n = 1024;
    const a = ctx.randn([n, n], { dtype: 'float64' });
    const out = ctx.empty([n, n], { dtype: 'float64' });
    // Calibrate so the work lasts about a second on whatever machine runs the test.
    const c0 = performance.now();
    for (let i = 0; i < 4; i++) ops.gemm(a, a, { out });
    await ctx.sync();
    const count = Math.max(8, Math.ceil((4 * 1000) / (performance.now() - c0)));
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 5);
    const t0 = performance.now();
    for (let i = 0; i < count; i++) ops.gemm(a, a, { out });
    const queued = performance.now() - t0;
    await ctx.sync();
    const elapsed = performance.now() - t0;
    clearInterval(timer);
    let maxGap = 0;
    for (let i = 1; i < ticks.length; i++) maxGap = Math.max(maxGap, ticks[i] - ticks[i - 1]);
    if (ticks.length) maxGap = Math.max(maxGap, ticks[0] - t0, performance.now() - ticks[ticks.length - 1]);
    console.log(`      ${count} GEMMs of 1024² took ${elapsed.toFixed(0)} ms; queueing them ${queued.toFixed(1)} ms; ${ticks.length} timer ticks, largest gap ${maxGap.toFixed(1)} ms`);
    // The property only means something if the work is long compared with the allowed gap.
    assert.ok(elapsed > 400, `the computation must be long enough to test anything (${elapsed} ms)`);
    assert.ok(queued < 50, `queueing must not wait for the work (${queued} ms)`);
    assert.ok(maxGap < Math.min(150, elapsed / 3), `the timer stalled for ${maxGap} ms during ${elapsed} ms of work`);
    assert.ok(ticks.length > elapsed / 5 / 4, `only ${ticks.length} ticks in ${elapsed} ms`);
  });

  it('runs ops in the order they were queued', async () => {
    const x = ctx.zeros([4], { dtype: 'float64' });
    const one = ctx.full([4], 1, { dtype: 'float64' });
    for (let i = 0; i < 100; i++) ops.axpby(2, x, 1, one, { out: x }); // x ← 2x + 1
    const v = await x.read();
    assert.equal(v[0], 2 ** 100 - 1);
  });

  it('a failure rejects the next await naming the op, skips the work queued after it, then clears', async () => {
    const marker = ctx.full([3], 1, { dtype: 'float64' });
    ops.luFactor(ctx.zeros([3, 3], { dtype: 'float64' })); // singular
    ops.fill(marker, 2); // must not run: it was queued after the failure
    await assert.rejects(marker.read(), (e: unknown) => e instanceof NumericError && /^op 'luFactor' failed/.test(e.message));
    assert.deepEqual([...(await marker.read())], [1, 1, 1], 'work queued after a failure is skipped');
    ops.fill(marker, 3);
    assert.deepEqual([...(await marker.read())], [3, 3, 3], 'the context works again after the failure was reported');
  });

  it('ctx.sequence(fn): the ops fn queues run as one unit, in order, as they would alone; a failure names its op and skips the rest; reads inside run after what came before; misuse is a coded error', async () => {
    const x = ctx.zeros([4], { dtype: 'float64' });
    const one = ctx.full([4], 1, { dtype: 'float64' });
    const returned = ctx.sequence(() => {
      for (let i = 0; i < 50; i++) ops.axpby(2, x, 1, one, { out: x }); // x ← 2x + 1
      return 'done';
    });
    assert.equal(returned, 'done');
    for (let i = 0; i < 50; i++) ctx.sequence(() => ops.axpby(2, x, 1, one, { out: x }));
    assert.equal((await x.read())[0], 2 ** 100 - 1);
    // A read inside: it waits for the ops recorded before it, and the rest follow.
    let seen: Promise<Float32Array | Float64Array | Int32Array> | undefined;
    ctx.sequence(() => {
      ops.fill(x, 5);
      seen = x.read();
      ops.fill(x, 6);
    });
    assert.deepEqual([...(await seen!)], [5, 5, 5, 5]);
    assert.deepEqual([...(await x.read())], [6, 6, 6, 6]);
    // A failure inside names its op and skips what follows, inside the sequence and after it.
    const marker = ctx.full([3], 1, { dtype: 'float64' });
    ctx.sequence(() => {
      ops.fill(marker, 7);
      ops.luFactor(ctx.zeros([3, 3], { dtype: 'float64' })); // singular
      ops.fill(marker, 2);
    });
    ops.fill(marker, 3);
    await assert.rejects(marker.read(), (e: unknown) => e instanceof NumericError && /^op 'luFactor' failed/.test(e.message));
    assert.deepEqual([...(await marker.read())], [7, 7, 7], 'the ops after the failure, in the sequence and after it, were skipped');
    // fn throwing: what it queued before still runs, and the error is fn's.
    assert.throws(() => ctx.sequence(() => {
      ops.fill(marker, 4);
      throw new Error('from fn');
    }), /from fn/);
    assert.deepEqual([...(await marker.read())], [4, 4, 4]);
    // Misuse.
    assert.throws(() => ctx.sequence(() => ctx.sequence(() => 0)), (e: Error & { code?: string }) => e.code === 'ERR_ORTHORNN_RANGE' && /sequences do not nest/.test(e.message));
    assert.throws(() => ctx.sequence(async () => {
      await Promise.resolve();
      ops.fill(marker, 9);
    }), (e: Error & { code?: string }) => e instanceof TypeError && e.code === 'ERR_ORTHORNN_TYPE' && /'fn' must be a function that queues its ops synchronously/.test(e.message));
    await new Promise((r) => setImmediate(r));
    assert.throws(() => ctx.sequence('fill' as never), (e: Error) => e instanceof TypeError && /'fn' must be a function/.test(e.message));
    assert.deepEqual([...(await marker.read())], [9, 9, 9], 'the ops after an async fn\'s await were queued on their own');
    assert.equal(ctx.variants().sequence.last, 'reference');
  });

  it('many concurrent awaits all settle, in order', async () => {
    const t = ctx.zeros([1], { dtype: 'float64' });
    const order: number[] = [];
    const ps = [];
    for (let i = 0; i < 200; i++) {
      ops.fill(t, i);
      ps.push(t.read().then((v) => order.push(v[0])));
    }
    await Promise.all(ps);
    assert.deepEqual(order, Array.from({ length: 200 }, (_, i) => i));
  });

  it("priority: 'background' puts the context's worker thread on Linux's SCHED_IDLE, the others stay normal; bad values are RangeErrors", async function () {
    if (process.platform !== 'linux') {
      console.log('      (skipped: SCHED_IDLE is a Linux policy; elsewhere the option is accepted and ignored)');
      this.skip();
    }
    /** Scheduling policy (/proc's field 41) of each of our context workers, by thread id. */
    const policies = () => {
      const out = new Map<string, number>();
      for (const tid of readdirSync('/proc/self/task')) {
        let stat: string;
        try {
          stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        } catch {
          continue; // the thread ended
        }
        const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        if (comm === 'orthornn-ctx') out.set(tid, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]));
      }
      return out;
    };
    const before = policies();
    const background = new Context({ priority: 'background', threads: 1 });
    const normal = new Context();
    try {
      assert.equal(background.background, true);
      assert.equal(normal.background, false);
      // Both workers have run an op (the background one after taking its priority).
      assert.equal(await ops.sum(background.full([2], 3)).item(), 6);
      assert.equal(await ops.sum(normal.full([2], 3)).item(), 6);
      const added = [...policies()].filter(([tid]) => !before.has(tid)).map(([, policy]) => policy).sort();
      assert.deepEqual(added, [0, 5], 'one new worker at SCHED_OTHER (0), one at SCHED_IDLE (5)');
    } finally {
      background.dispose();
      normal.dispose();
    }
    assert.throws(() => new Context({ priority: 'low' as never }), (e: Error & { code?: string }) => e instanceof RangeError && e.code === 'ERR_ORTHORNN_RANGE' && /argument 'priority' must be 'normal' or 'background', got 'low'/.test(e.message));
  });

  it('a worker thread that exits with work still queued shuts its contexts down cleanly', async () => {
    const code = `
      const { parentPort } = require('node:worker_threads');
      const a = require(${JSON.stringify(addonPath)});
      const c = new a.NativeContext('cpu', 0);
      const t = c.empty([700, 700], 'float64');
      c.randomNormal(t, 1, 0, 1);
      const out = c.empty([700, 700], 'float64');
      for (let i = 0; i < 20; i++) c.gemm(t, t, out, false, false, 1, 0);
      c.sync();
      parentPort.postMessage('queued');
    `;
    const w = new Worker(code, { eval: true });
    const msg = await new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    assert.equal(msg, 'queued');
    const exitCode = await w.terminate();
    assert.equal(exitCode, 1); // terminate() reports 1; a crash would take the whole process down instead
    // The main thread's context is unaffected.
    assert.equal(await ctx.full([], 5).item(), 5);
  });

  it('process.exit() in the middle of training steps exits cleanly (no crash, no hang)', function () {
    const lib = JSON.stringify(path.resolve(__dirname, '..', 'lib', 'index.ts'));
    for (const n of [64, 512]) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', '-e', `
        const { Context, ElmanRNN } = require(${lib});
        (async () => {
          const ctx = new Context();
          const m = await ElmanRNN.create({ inputSize: 4, hiddenSize: ${n}, outputSize: 4, context: ctx });
          const x = ctx.randn([400, 32, 4]);
          const targets = ctx.zeros([400, 32], { dtype: 'int32' });
          for (let i = 0; i < 3; i++) m.lossAndGradients({ x, targets });
          setTimeout(() => { console.log('exiting'); process.exit(0); }, 100);
        })();`], { encoding: 'utf8', timeout: 90_000 });
      assert.equal(r.signal, null, `n = ${n}: killed by ${r.signal} (timeout or crash)`);
      assert.equal(r.status, 0, `n = ${n}: ${r.stderr}`);
      assert.equal(r.stdout.trim(), 'exiting');
    }
  });

  // Generous timeouts: a cold start loads the CUDA libraries the addon links (hundreds of MB).
  it('a process exits by itself when no await is pending, and waits for pending ones', function () {
    const idle = spawnSync(process.execPath, ['-e', `
      const a = require(${JSON.stringify(addonPath)});
      const c = new a.NativeContext('cpu', 0);
      c.empty([10], 'float64');
      console.log('idle');`], { encoding: 'utf8', timeout: 90_000 });
    assert.equal(idle.status, 0, `idle process: ${idle.stderr}`);
    assert.equal(idle.stdout.trim(), 'idle');
    const busy = spawnSync(process.execPath, ['-e', `
      const a = require(${JSON.stringify(addonPath)});
      const c = new a.NativeContext('cpu', 0);
      const t = c.empty([600, 600], 'float64');
      c.randomNormal(t, 3, 0, 1);
      const o = c.empty([600, 600], 'float64');
      for (let i = 0; i < 10; i++) c.gemm(t, t, o, false, false, 1, 0);
      c.read(o).then((v) => console.log('read', v.length));`], { encoding: 'utf8', timeout: 90_000 });
    assert.equal(busy.status, 0, `busy process: ${busy.stderr}`);
    assert.equal(busy.stdout.trim(), 'read 360000');
  });
});
