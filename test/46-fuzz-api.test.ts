import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { announceSeed, TEST_SEED } from './helpers';

const ROOT = path.join(__dirname, '..');
const DRIVER = path.join(__dirname, 'fuzz', 'api-driver.ts');

/**
 * The public API under thousands of malformed calls (test/fuzz/api-driver.ts), in a child
 * process: a crash (a signal, an abort, a non-zero exit) fails the test with the seed and the
 * last calls made; otherwise every error the calls raised must carry an ERR_ORTHORNN_* code.
 * ORTHORNN_FUZZ_API_CALLS sets the number of calls (default 8000).
 */
describe('46 fuzzed public API: every error is coded, nothing crashes', function () {
  this.timeout(600_000);
  let tmp: string;
  before(() => {
    announceSeed();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-fuzz-api-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it('malformed arguments to every entry point end in coded errors', () => {
    const trace = path.join(tmp, 'trace.txt');
    const calls = process.env.ORTHORNN_FUZZ_API_CALLS ?? '8000';
    const r = spawnSync(process.execPath, ['--import', 'tsx', DRIVER], {
      cwd: ROOT,
      encoding: 'utf8',
      timeout: 540_000,
      maxBuffer: 64 * 1024 * 1024,
      env: { ...process.env, ORTHORNN_TEST_SEED: String(TEST_SEED), ORTHORNN_FUZZ_API_CALLS: calls, ORTHORNN_FUZZ_TRACE: trace },
    });
    const lastCalls = existsSync(trace) ? readFileSync(trace, 'utf8').trim().split('\n').slice(-8).join('\n      ') : '(none)';
    const replay = `ORTHORNN_TEST_SEED=${TEST_SEED} ORTHORNN_FUZZ_API_CALLS=${calls}`;
    const report = `\n${r.stdout ?? ''}\n${(r.stderr ?? '').slice(-4000)}`;
    if (r.error || r.signal !== null || (r.status !== 0 && r.status !== 1)) {
      assert.fail(
        `the fuzz driver crashed (${r.error?.message ?? (r.signal ? `signal ${r.signal}` : `exit code ${r.status}`)}); repeat with ${replay}\n` +
          `    the last calls (the cause may be queued work of one before the last):\n      ${lastCalls}${report}`,
      );
    }
    const lines = r.stdout.trim().split('\n');
    for (const line of lines.slice(0, -1)) console.log(`      ${line}`);
    const summary = JSON.parse(lines[lines.length - 1]) as { calls: number; uncoded: number; seconds: number };
    assert.equal(summary.calls, Number(calls));
    assert.equal(summary.uncoded, 0, `${summary.uncoded} errors without an ERR_ORTHORNN_* code (repeat with ${replay})${report}`);
    assert.equal(r.status, 0, report);
  });
});
