import assert from 'node:assert/strict';
import { Context, DeviceError, DisposedError, ElmanRNN, OrthornnError, ops, RMSprop, backends } from '../lib/index';
import { announceSeed, newContext } from './helpers';

/** Asserts that `fn` throws synchronously an error of `cls` whose message matches `re`. */
function throwsLike(fn: () => unknown, cls: new (...a: never[]) => Error, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof cls, `expected ${cls.name}, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    assert.match((e as Error).message, re);
    assert.match(String((e as { code?: string }).code), /^ERR_ORTHORNN_/);
    return true;
  });
}

describe('40 bad input: clear errors, never a crash, the context still usable', () => {
  let ctx: Context;
  before(() => {
    announceSeed();
    ctx = newContext();
  });
  after(() => ctx.dispose());

  it('plain arrays instead of typed arrays are TypeErrors naming the argument', () => {
    throwsLike(() => ctx.tensor([1, 2, 3] as unknown as Float32Array, [3]), TypeError, /tensor: argument 'data' must be a Float32Array, Float64Array or Int32Array, got an array of length 3/);
    throwsLike(() => ctx.tensor(new Uint8Array(3) as unknown as Float32Array, [3]), TypeError, /got Uint8Array/);
    throwsLike(() => ops.matmul([[1]] as never, ctx.zeros([1, 1])), TypeError, /gemm: argument 'a' must be a Tensor/);
  });

  it('shapes that do not fit the data, or are not non-negative integers, are RangeErrors', () => {
    throwsLike(() => ctx.tensor(new Float32Array(6), [4, 2]), RangeError, /argument 'data' must be 8 elements for shape \[4, 2\], got 6/);
    throwsLike(() => ctx.zeros([2, -1]), RangeError, /argument 'shape'/);
    throwsLike(() => ctx.zeros([2.5]), RangeError, /argument 'shape'/);
    throwsLike(() => ctx.zeros('3' as never), TypeError, /argument 'shape'/);
  });

  it('mismatched shapes in ops are RangeErrors that give both shapes', () => {
    const a = ctx.zeros([3, 4]), b = ctx.zeros([5, 6]);
    throwsLike(() => ops.matmul(a, b), RangeError, /op\(a\) = 3×4.*op\(b\) = 5×6/);
    throwsLike(() => ops.add(a, b), RangeError, /axpby: argument 'y' must have 12 elements like 'x' \(shape \[3, 4\]\), got 30 elements \(shape \[5, 6\]\)/);
    throwsLike(() => ops.luFactor(a), RangeError, /square matrix/);
    throwsLike(() => ops.biasActivation(a, ctx.zeros([3]), 'tanh'), RangeError, /biasActivation: argument 'bias' must have 4 elements, got 3 elements \(shape \[3\]\)/);
    throwsLike(() => ops.gemm(a, ctx.zeros([4, 2]), { out: ctx.zeros([3, 3]) }), RangeError, /argument 'out' must be of shape \[3, 2\]/);
    throwsLike(() => ops.softmaxCrossEntropy(a, ctx.zeros([2], { dtype: 'int32' })), RangeError, /softmaxCrossEntropy: argument 'targets' must have 3 elements, got 2 elements/);
  });

  it('wrong dtypes are TypeErrors', () => {
    const f32 = ctx.zeros([2, 2]), f64 = ctx.zeros([2, 2], { dtype: 'float64' }), i32 = ctx.zeros([2, 2], { dtype: 'int32' });
    throwsLike(() => ops.matmul(f32, f64 as never), TypeError, /gemm: argument 'b' must be float32 like 'a', got float64/);
    throwsLike(() => ops.add(i32 as never, i32 as never), TypeError, /axpby: argument 'x' must be float32 or float64, got int32/);
    throwsLike(() => ops.softmaxCrossEntropy(f32, f32 as never), TypeError, /softmaxCrossEntropy: argument 'targets' must be int32, got float32/);
    throwsLike(() => ctx.randn([2], { dtype: 'int32' as never }), RangeError, /argument 'dtype'/);
  });

  it('NaN and ±Inf in input data are refused unless explicitly allowed', () => {
    throwsLike(() => ctx.tensor(new Float64Array([0, 1, NaN]), [3]), RangeError, /argument 'data' must be finite.*NaN at index 2/);
    throwsLike(() => ctx.tensor(new Float32Array([-Infinity]), [1]), RangeError, /-Infinity at index 0/);
    throwsLike(() => ctx.full([2], NaN), RangeError, /argument 'value' must be a finite number/);
    throwsLike(() => ops.scale(ctx.zeros([2]), Infinity), RangeError, /argument 'alpha' must be a finite number/);
    assert.doesNotThrow(() => ctx.tensor(new Float64Array([NaN]), [1], { allowNonFinite: true }).dispose());
  });

  it('unknown options and bad option values are RangeErrors naming them', () => {
    throwsLike(() => ctx.zeros([2], { dtyp: 'float32' } as never), RangeError, /unknown option 'dtyp'/);
    throwsLike(() => ops.gemm(ctx.zeros([1, 1]), ctx.zeros([1, 1]), { transpose: true } as never), RangeError, /unknown option 'transpose'/);
    throwsLike(() => ops.gemm(ctx.zeros([1, 1]), ctx.zeros([1, 1]), { transA: 1 } as never), TypeError, /argument 'transA' must be a boolean/);
    throwsLike(() => ops.gemm(ctx.zeros([1, 1]), ctx.zeros([1, 1]), { beta: 1 }), RangeError, /argument 'beta' must be 0 unless 'out' is given/);
    throwsLike(() => ops.biasActivation(ctx.zeros([1]), null, 'sigmoid' as never), RangeError, /argument 'activation'/);
    throwsLike(() => ops.marginSigmoid(ctx.zeros([1]), -0.1), RangeError, /argument 'margin' must be non-negative/);
    throwsLike(() => new Context({ device: 'tpu' }), RangeError, /argument 'device'/);
    throwsLike(() => new Context({ seed: -1 }), RangeError, /argument 'seed'/);
    throwsLike(() => ctx.randn([1], { seed: 1.5 }), RangeError, /argument 'seed'/);
  });

  it('disposed tensors are DisposedErrors naming the argument', () => {
    const a = ctx.zeros([2, 2]);
    const b = ctx.zeros([2, 2]);
    b.dispose();
    throwsLike(() => ops.matmul(a, b), DisposedError, /gemm: argument 'b'.*has been disposed/);
    throwsLike(() => ops.copy(a, { out: b }), DisposedError, /argument 'out'/);
  });

  it('missing tensors, look-alikes and hostile objects are coded TypeErrors naming the argument', () => {
    throwsLike(() => ops.sum(null as never), TypeError, /sum: argument 'x' must be a Tensor, got null/);
    throwsLike(() => ops.gemm(undefined as never, ctx.zeros([1, 1])), TypeError, /gemm: argument 'a' must be a Tensor, got undefined/);
    throwsLike(() => ops.luSolve({ lu: ctx.zeros([2, 2]) } as never, ctx.zeros([2])), TypeError, /argument 'factors.pivots' must be a Tensor/);
    const t = ctx.zeros([2]);
    throwsLike(() => ops.sum(new Proxy(t, {}) as never), TypeError, /argument 'x' must be a Tensor/);
    const hostile = new Proxy({}, { ownKeys: () => { throw new Error('trap'); } });
    throwsLike(() => ops.sum(t, hostile as never), TypeError, /argument 'options' must be an object whose properties can be read/);
    throwsLike(() => ctx.zeros(null as never), TypeError, /zeros: argument 'shape'/);
  });

  it('luSolve checks the factors: a square float lu, n int32 pivots of the same context, a matching b', () => {
    const lu = ctx.zeros([3, 3]), pivots = ctx.zeros([3], { dtype: 'int32' }), b = ctx.zeros([3]);
    throwsLike(() => ops.luSolve({ lu: ctx.zeros([3, 2]), pivots }, b), RangeError, /luSolve: argument 'lu' must be a square matrix, got shape \[3, 2\]/);
    throwsLike(() => ops.luSolve({ lu, pivots: ctx.zeros([3]) as never }, b), TypeError, /luSolve: argument 'pivots' must be int32, got float32/);
    throwsLike(() => ops.luSolve({ lu, pivots: ctx.zeros([4], { dtype: 'int32' }) }, b), RangeError, /luSolve: argument 'pivots' must have 3 elements, got 4 elements/);
    const other = new Context();
    throwsLike(() => ops.luSolve({ lu, pivots: other.zeros([3], { dtype: 'int32' }) }, b), RangeError, /argument 'factors.pivots' must be on the same context/);
    other.dispose();
    throwsLike(() => ops.luSolve({ lu, pivots }, ctx.zeros([2])), RangeError, /luSolve: argument 'b' must be of shape \[3\] or \[3, r\], got \[2\]/);
  });

  it('coefficients far outside any that trains, and non-finite model state, are RangeErrors naming them', async () => {
    const M = ctx.zeros([2, 2]);
    throwsLike(() => ops.cayleyStep(M, M, 1e308), RangeError, /argument 'lr' must be in \[0, 1e9\], got 1e\+308/);
    throwsLike(() => ops.marginSigmoid(ctx.zeros([2]), 1e308), RangeError, /argument 'margin'/);
    throwsLike(() => new RMSprop({ w: ctx.zeros([2]) }, { lr: 1e-3, eps: Infinity }), RangeError, /argument 'eps' must be a finite number/);
    throwsLike(() => ops.fill(ctx.zeros([1], { dtype: 'int32' }), 1.5), RangeError, /argument 'value' must be an integer that an int32 element can hold/);
    const model = await ElmanRNN.create({ inputSize: 2, hiddenSize: 3, outputSize: 2, context: ctx });
    const state = await model.state();
    const b = state.b.slice();
    b[1] = NaN;
    throwsLike(() => model.loadState({ ...state, b }), RangeError, /loadState: argument 'state.b' must be finite.*NaN at index 1/);
    await assert.rejects(ElmanRNN.create({ inputSize: 2, hiddenSize: 3, outputSize: 2, margin: NaN, context: ctx }), /argument 'margin' must be a finite number/);
    model.dispose();
  });

  it('a disposed model is a DisposedError, like a disposed tensor or context', async () => {
    const model = await ElmanRNN.create({ inputSize: 2, hiddenSize: 3, outputSize: 2, context: ctx });
    model.dispose();
    throwsLike(() => model.forward(ctx.zeros([1, 1, 2])), DisposedError, /forward: the model has been disposed/);
    await assert.rejects(model.lossAndGradients({ x: ctx.zeros([1, 1, 2]), targets: ctx.zeros([1, 1], { dtype: 'int32' }) }), (e: unknown) => e instanceof DisposedError && (e as DisposedError).code === 'ERR_ORTHORNN_DISPOSED');
    throwsLike(() => model.state(), DisposedError, /state: the model has been disposed/);
  });

  it('tensors of two contexts cannot be mixed', () => {
    const other = new Context();
    throwsLike(() => ops.add(ctx.zeros([2]), other.zeros([2])), RangeError, /argument 'y' must be on the same context/);
    other.dispose();
  });

  it('a cuda context on a machine without a usable GPU is a DeviceError with the reason', function () {
    const cuda = backends().find((b) => b.name === 'cuda')!;
    if (cuda.available) {
      console.log('      skipped: this machine has a usable GPU');
      this.skip();
    }
    throwsLike(() => new Context({ device: 'cuda' }), DeviceError, /cuda backend is unavailable/);
  });

  it('native checks stand on their own: the raw binding rejects what lib/ would have caught', () => {
    const a = ctx.zeros([3, 4]), b = ctx.zeros([5, 6]), out = ctx.zeros([3, 6]);
    throwsLike(() => ctx.native.gemm(a.handle, b.handle, out.handle, false, false, 1, 0), RangeError, /inner dimensions differ/);
    throwsLike(() => ctx.native.fromArray([1] as never, [1]), TypeError, /argument 'data'/);
    throwsLike(() => ctx.native.reduce(a.handle, 9, out.handle), RangeError, /kind/);
    throwsLike(() => ctx.native.luFactor(a.handle, a.handle, a.handle), RangeError, /square matrix/);
    throwsLike(() => ctx.native.empty([1], 'float16' as never), RangeError, /dtype/);
  });

  it('after every one of these errors the context still computes correctly', async () => {
    const x = ctx.tensor(new Float64Array([1, 2, 3, 4]), [2, 2]);
    assert.deepEqual([...(await ops.matmul(x, x).read())], [7, 10, 15, 22]);
  });

  it('every project error is an OrthornnError with a code', () => {
    const e = new DisposedError('x');
    assert.ok(e instanceof OrthornnError);
    assert.equal(e.code, 'ERR_ORTHORNN_DISPOSED');
    assert.equal(e.name, 'DisposedError');
  });
});
