import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadModel } from '../lib/index';

const ROOT = path.resolve(__dirname, '..');
const SERVER = ['--import', 'tsx', path.join(ROOT, 'examples/service/server.ts')];

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

async function call(port: number, method: string, route: string, body?: unknown, raw?: Buffer): Promise<Reply> {
  const res = await fetch(`http://127.0.0.1:${port}${route}`, {
    method,
    ...(raw ? { body: raw, headers: { 'content-type': 'application/octet-stream' } } : body !== undefined ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** A copy-task input: 10 symbols, blanks, the delimiter, blanks (delay + 20 steps of 10 one-hot channels). */
function copyInput(delay: number): number[][] {
  const steps = delay + 20;
  return Array.from({ length: steps }, (_, t) => {
    const row = new Array<number>(10).fill(0);
    row[t < 10 ? 1 + (t % 8) : t === 10 + delay - 1 ? 9 : 0] = 1;
    return row;
  });
}

describe('94 example service: training in the background, predictions over HTTP', () => {
  let dir: string;
  let child: ChildProcess | undefined;
  let output = '';
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'orthornn-service-'));
  });
  after(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves /predict and /status while training, stops on /stop with a checkpoint, exits cleanly on SIGTERM', async () => {
    const out = path.join(dir, 'run');
    const proc = spawn(process.execPath, [...SERVER, '--port', '0', '--out', out, '--delay', '10', '--hidden', '16', '--steps', '100000', '--refresh-every', '20'], { cwd: ROOT });
    child = proc;
    proc.stdout!.on('data', (b: Buffer) => (output += b.toString()));
    proc.stderr!.on('data', (b: Buffer) => (output += b.toString()));
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the service did not start: ${output}`)), 60_000);
      const check = () => {
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(output);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      };
      proc.stdout!.on('data', check);
      proc.on('exit', (code) => reject(new Error(`the service exited (${code}): ${output}`)));
    });

    // Training goes on in the background.
    let status = await call(port, 'GET', '/status');
    assert.equal(status.status, 200);
    assert.equal(status.body.training, true);
    const deadline = Date.now() + 60_000;
    while ((status.body.step as number) < 50 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      status = await call(port, 'GET', '/status');
    }
    assert.ok((status.body.step as number) >= 50, `training reached step ${status.body.step}`);

    // Predictions: JSON, concurrent, with the weights' step; and a raw float32 body.
    const x = copyInput(10);
    const replies = await Promise.all(Array.from({ length: 8 }, () => call(port, 'POST', '/predict', { x, last: true })));
    for (const r of replies) {
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.deepEqual(r.body.shape, [10]);
      const p = r.body.values as number[];
      assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-5, 'probabilities sum to 1');
      assert.equal(typeof r.body.step, 'number');
      // Replies from the same weights agree (the weights follow training between batches).
      if (r.body.step === replies[0].body.step) p.forEach((v, i) => assert.ok(Math.abs(v - (replies[0].body.values as number[])[i]) < 1e-5));
    }
    const raw = Buffer.from(Float32Array.from(x.flat()).buffer);
    const ids = await call(port, 'POST', '/predict?output=argmax', undefined, raw);
    assert.equal(ids.status, 200, JSON.stringify(ids.body));
    assert.deepEqual(ids.body.shape, [30]);
    assert.ok((ids.body.values as number[]).every((v) => Number.isInteger(v) && v >= 0 && v < 10));

    // Bad requests: coded errors.
    const bad = await call(port, 'POST', '/predict', { x: [[1, 2]] });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'ERR_ORTHORNN_RANGE');
    assert.match(bad.body.error as string, /'x\[0\]'/);
    assert.equal((await call(port, 'GET', '/nowhere')).status, 404);

    // /stop: training stops after the step in progress, with last.safetensors written.
    const stopped = await call(port, 'POST', '/stop');
    assert.equal(stopped.status, 200);
    assert.equal(stopped.body.interrupted, true);
    assert.ok(existsSync(path.join(out, 'last.safetensors')));
    const model = await loadModel(path.join(out, 'last.safetensors'));
    assert.equal(model.hiddenSize, 16);
    model.dispose();
    status = await call(port, 'GET', '/status');
    assert.equal(status.body.training, false);
    assert.equal(status.body.step, stopped.body.step);
    // Still serving, from the last weights.
    assert.equal((await call(port, 'POST', '/predict', { x, output: 'raw' })).status, 200);

    // SIGTERM: a clean exit.
    const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
    proc.kill('SIGTERM');
    assert.equal(await exited, 0, output);
    assert.match(output, /SIGTERM: stopping training and closing/);
  });
});
