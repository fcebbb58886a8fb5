import assert from 'node:assert/strict';
import { backends, Context, ops } from '../lib/index';
import { native } from '../lib/native';
import { announceSeed, skippedBackends } from './helpers';

describe('00 setup: the addon and its backends', () => {
  before(() => announceSeed());

  it('loads and lists cpu and cuda with name, compiled, available, device', () => {
    const list = backends();
    assert.deepEqual(list.map((b) => b.name), ['cpu', 'cuda']);
    for (const b of list) {
      assert.equal(typeof b.compiled, 'boolean');
      assert.equal(typeof b.available, 'boolean');
      assert.equal(typeof b.device, 'string');
    }
    for (const s of skippedBackends()) console.log(`      ${s.name}: unavailable here (${s.reason})`);
  });

  it('always has the CPU backend, naming the CPU and its BLAS', () => {
    const cpu = backends().find((b) => b.name === 'cpu')!;
    assert.equal(cpu.compiled, true);
    assert.equal(cpu.available, true);
    assert.match(cpu.device, /OpenBLAS/);
  });

  it('reports cuda as compiled exactly when the addon was built with it, and unavailable with a reason when it cannot run', () => {
    const cuda = backends().find((b) => b.name === 'cuda')!;
    assert.equal(cuda.compiled, native().cudaCompiled);
    if (!cuda.available) {
      assert.ok(cuda.reason && cuda.reason.length > 0, 'an unavailable backend says why');
      assert.equal(cuda.deviceCount, 0);
    } else {
      assert.ok(cuda.deviceCount > 0);
    }
    console.log(`      cuda: compiled=${cuda.compiled} available=${cuda.available}${cuda.reason ? ` (${cuda.reason})` : ` (${cuda.device})`}`);
  });

  it('launchCounters() counts device submissions: all zero on the CPU, a number per kind', async () => {
    const ctx = new Context({ device: 'cpu' });
    try {
      ops.gemm(ctx.zeros([4, 4]), ctx.zeros([4, 4]));
      await ctx.sync();
      assert.deepEqual(ctx.launchCounters(), { kernels: 0, libraryCalls: 0, graphs: 0, graphNodes: 0, graphsBuilt: 0, graphsUpdated: 0 });
    } finally {
      ctx.dispose();
    }
  });

  it('the CI build includes CUDA when ORTHORNN_EXPECT_CUDA=1 (set by .ci/run after the CMake build)', function () {
    if (process.env.ORTHORNN_EXPECT_CUDA !== '1') {
      console.log('      skipped: ORTHORNN_EXPECT_CUDA is not set (only the CUDA-enabled CI build asserts this)');
      this.skip();
    }
    assert.equal(native().cudaCompiled, true, 'the CMake build with the CUDA toolkit installed must compile the cuda backend');
  });
});
