import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const ROOT = path.join(__dirname, '..');

describe('47 threaded BLAS beside spawned processes', function () {
  this.timeout(180_000);

  it('training on two contexts while the process spawns children never hangs (OpenBLAS stops its threads at each fork)', () => {
    // Without the fork handler in the CPU backend this froze in 3 of 3 runs.
    const r = spawnSync(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/fuzz/fork-driver.ts'), '60'], { cwd: ROOT, encoding: 'utf8', timeout: 120_000, killSignal: 'SIGKILL' });
    assert.equal(r.signal, null, `the driver hung and was killed (${r.signal}); stderr: ${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^ok: 120 steps on two contexts beside \d+ children spawned/);
    console.log(`      ${r.stdout.trim()}`);
  });
});
