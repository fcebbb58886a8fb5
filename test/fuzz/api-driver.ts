/**
 * Fuzzes the public API with malformed arguments; run as a child process by
 * test/46-fuzz-api.test.ts so that a crash fails the test instead of the runner.
 *
 * One table lists the entry points, each with a generator per argument that makes a valid
 * value. Every call starts from valid arguments and, most of the time, replaces one or two of
 * them by a malformed value (or, for option objects, adds an unknown key or spoils one
 * value). Every error thrown or rejected must carry an ERR_ORTHORNN_* code.
 *
 * Environment: ORTHORNN_FUZZ_API_CALLS (default 8000), ORTHORNN_TEST_SEED (default random),
 * ORTHORNN_FUZZ_TRACE (a file each call is appended to before it runs).
 * Exit code 0 when every error was coded, 1 otherwise; the last stdout line is a JSON summary.
 */
import { closeSync, openSync, writeSync } from 'node:fs';
import {
  Adam,
  backends,
  Context,
  defaultContext,
  ElmanRNN,
  LSTM,
  memory,
  memoryOf,
  ops,
  ReorthonormalizationPolicy,
  RMSprop,
  SGD,
  Tensor,
  tensor,
} from '../../lib/index';
import type { FloatDType, Optimizer, StateDict } from '../../lib/index';
import { rng } from '../helpers';
import { hostileObjects, JUNK, pick, proxiedTensor, show, type Rng } from './api-values';

const CALLS = Number(process.env.ORTHORNN_FUZZ_API_CALLS ?? 8000);
const SEED = Number(process.env.ORTHORNN_TEST_SEED ?? Math.floor(Math.random() * 2 ** 31));
const TRACE = process.env.ORTHORNN_FUZZ_TRACE;

type Model = ElmanRNN<FloatDType> | LSTM<FloatDType>;

/** What the arguments of one call share: the float dtype, and for model methods the model. */
interface CallState {
  dt: FloatDType;
  model: Model;
  optimizer: Optimizer;
  r: Rng;
}

interface Arg {
  valid: (c: CallState) => unknown;
  /** An option object: mutations may add an unknown key or spoil one of these. */
  keys?: readonly string[];
  /** Malformed values specific to this argument, besides the generic ones. */
  bad?: (c: CallState) => unknown[];
  /**
   * Replaced only by its `bad` values: the object a method is called on (by a disposed one),
   * and the options of the top-level tensor(), which lib/index.ts destructures unchecked.
   */
  onlyBad?: boolean;
}

interface Entry {
  name: string;
  args: Arg[];
  call: (a: unknown[], c: CallState) => unknown;
  /** Dispose the tensors and contexts the call returns (ops' outputs, not model buffers). */
  owns?: boolean;
  /** Only for models of this kind. */
  models?: 'elman' | 'any';
}

async function main(): Promise<void> {
  console.log(`fuzz api: seed ORTHORNN_TEST_SEED=${SEED}, ${CALLS} calls`);
  const r = rng(SEED);
  const ctx = new Context({ seed: SEED % 1000 });
  const other = new Context({ seed: 1 });
  const gone = new Context();
  const goneTensor = gone.zeros([3, 3]);
  gone.dispose();

  // Tensors reused by every call, by dtype and shape; never disposed by the fuzzing.
  const kept = new Set<unknown>();
  const cache = new Map<string, Tensor>();
  // Typed loosely: the fuzzing hands these to signatures of every dtype.
  const T = (shape: number[], dtype: 'float32' | 'float64' | 'int32' = 'float32'): Tensor<never> => {
    const key = `${dtype}:${shape.join(',')}`;
    let t = cache.get(key);
    if (!t) {
      t = dtype === 'int32' ? ctx.zeros(shape, { dtype }) : ctx.randn(shape, { dtype });
      cache.set(key, t);
      kept.add(t);
    }
    return t as Tensor<never>;
  };
  const SHAPES = [[], [0], [1], [2], [3], [4], [2, 3], [3, 2], [3, 3], [4, 4], [0, 3], [2, 3, 3], [5, 2, 3], [2, 4]];
  const anyTensor = (c: CallState) => T(pick(c.r, SHAPES), pick(c.r, ['float32', 'float64', 'int32'] as const));
  const ids = (values: number[], shape: number[]) => {
    const t = ctx.tensor(Int32Array.from(values), shape);
    kept.add(t);
    return t;
  };
  const targets2 = ids([0, 2], [2]);
  const targets52 = ids([0, 1, 2, 0, 1, 2, 0, 1, 2, 0], [5, 2]);
  /** Row interchanges no LU factorisation makes: 0 and negative (LAPACK counts from 1), and past n. */
  const wildPivots = ids([9, -3, 0, 2], [4]);
  const orth: Record<FloatDType, Tensor<FloatDType>> = {
    float32: ops.qr(ctx.randn([4, 4], { dtype: 'float32' })).q,
    float64: ops.qr(ctx.randn([4, 4], { dtype: 'float64' })).q,
  };
  const factors: Record<FloatDType, ops.LU> = { float32: ops.luFactor(orth.float32), float64: ops.luFactor(orth.float64) };
  for (const f of Object.values(factors)) kept.add(f.lu).add(f.pivots);
  for (const m of Object.values(orth)) kept.add(m);

  const small = { inputSize: 3, hiddenSize: 4, outputSize: 3 };
  const models: Model[] = [
    await ElmanRNN.create({ ...small, context: ctx, seed: 1 }),
    await ElmanRNN.create({ ...small, recurrent: 'plain', dtype: 'float64', context: ctx, seed: 2 }),
    await LSTM.create({ ...small, context: ctx, seed: 3 }),
  ];
  const deadModel = await ElmanRNN.create({ ...small, context: ctx });
  deadModel.dispose();
  const states = new Map<Model, StateDict>();
  for (const m of models) {
    states.set(m, await m.state());
    for (const t of Object.values(m.parameters)) kept.add(t);
  }
  const optimizers: Optimizer[] = [
    new RMSprop({ a: T([3]), b: T([2, 3]) }, { lr: 1e-3 }),
    new Adam({ a: T([3], 'float64') }, { lr: 1e-3 }),
    new SGD({ a: T([3]), b: T([2, 3]) }, { lr: 1e-3, momentum: 0.5 }),
  ];
  const optimizerStates = new Map<Optimizer, Record<string, Float32Array | Float64Array>>();
  for (const o of optimizers) optimizerStates.set(o, await o.state());
  const policy = new ReorthonormalizationPolicy({ every: 3, tolerance: 1e-5 });

  const hostile = hostileObjects();
  const foreign = { float32: other.zeros([3, 3]), float64: other.zeros([3, 3], { dtype: 'float64' }) };
  const badTensors = (c: CallState): unknown[] => {
    const dead = ctx.zeros([3, 3], { dtype: c.dt });
    dead.dispose();
    return [dead, goneTensor, foreign[c.dt], anyTensor(c), proxiedTensor(T([3, 3], c.dt))];
  };
  /** One malformed value for an argument. */
  const malformed = (arg: Arg, c: CallState): unknown => {
    const roll = c.r();
    if (arg.onlyBad) return arg.bad ? pick(c.r, arg.bad(c)) : arg.valid(c);
    if (arg.bad && roll < 0.2) return pick(c.r, arg.bad(c));
    if (arg.keys && roll < 0.55) {
      const o = arg.valid(c);
      if (o === null || typeof o !== 'object') return o;
      const spoilt: Record<string, unknown> = { ...(o as object) };
      if (c.r() < 0.3) spoilt[pick(c.r, ['bogus', 'Out', 'dtyp', '__proto__x'])] = 1;
      else spoilt[pick(c.r, arg.keys)] = c.r() < 0.5 ? pick(c.r, JUNK) : pick(c.r, [...badTensors(c), ...hostile]);
      return spoilt;
    }
    if (roll < 0.7) return pick(c.r, JUNK);
    if (roll < 0.85) return pick(c.r, badTensors(c));
    return pick(c.r, hostile);
  };

  // Argument generators shared by many entries.
  const tensorArg = (shape: number[]): Arg => ({ valid: (c) => T(shape, c.dt) });
  const outOpts = (shape: number[]): Arg => ({ valid: (c) => (c.r() < 0.5 ? {} : { out: T(shape, c.dt) }), keys: ['out'] });
  const num = (v: number): Arg => ({ valid: () => v, bad: () => [1e308, -1e308, NaN, Infinity, -1, 1e300, 2 ** 31] });
  const activation: Arg = { valid: (c) => pick(c.r, ['tanh', 'relu', 'identity']), bad: () => ['sigmoid', 'TANH', ''] };
  const shapeArg: Arg = { valid: (c) => pick(c.r, [[2, 3], [3], [], [0]]), bad: () => [[2, -1], [1.5], [NaN], [1e12, 1e12], [2 ** 53], [2 ** 46], ['3'], [null], [Infinity]] };
  const dtypeOpts = (keys: string[], extra: (c: CallState) => Record<string, unknown> = () => ({})): Arg => ({
    valid: (c) => ({ dtype: c.dt, ...extra(c) }),
    keys,
    bad: () => [{ dtype: 'int8' }, { dtype: 'float16' }],
  });
  const receiverCtx: Arg = { valid: () => ctx, bad: () => [gone, other], onlyBad: true };
  const modelArg: Arg = { valid: (c) => c.model, bad: () => [deadModel], onlyBad: true };
  const receiverTensor = (shapes: number[][]): Arg => ({ valid: (c) => T(pick(c.r, shapes), c.dt), bad: (c) => badTensors(c).slice(0, 2), onlyBad: true });
  const modelOptions = (extra: Record<string, unknown>): Arg => ({
    valid: (c) => ({ ...small, dtype: c.dt, context: ctx, seed: Math.floor(c.r() * 100), ...extra }),
    keys: ['inputSize', 'hiddenSize', 'outputSize', 'dtype', 'context', 'device', 'seed', ...Object.keys(extra)],
    bad: (c) => [
      { ...small, hiddenSize: 1e14 },
      { ...small, hiddenSize: 2 ** 46, inputSize: 1 },
      { ...small, context: gone },
      { ...small, context: ctx, device: 'cpu' },
      { ...small, dtype: 'int32' },
      { ...small, seed: -1 },
      ...Object.keys(extra).map((k) => ({ ...small, [k]: pick(c.r, [NaN, Infinity, 1e308, -1, 'x']) })),
    ],
  });
  const batchArg: Arg = {
    valid: (c) => {
      const x = T([5, 2, 3], c.dt);
      const roll = c.r();
      if (roll < 0.25) return { x, targets: T([5, 2, 3], c.dt), loss: 'mse' };
      if (roll < 0.45) return { x, targets: targets52, score: 'mask', mask: new Float32Array(10).fill(1) };
      if (roll < 0.6) return { x, targets: targets52, initialState: T([2, 4], c.dt) };
      return { x, targets: targets52, score: 'all' };
    },
    keys: ['x', 'targets', 'loss', 'score', 'mask', 'initialState', 'initialCellState'],
    bad: (c) => [
      { x: T([5, 2, 3], c.dt), targets: targets52, score: 'mask', mask: new Float32Array(10).fill(NaN) },
      { x: T([5, 2, 3], c.dt), targets: targets52, score: 'mask', mask: new Float64Array(10) },
      { x: T([5, 2, 3], c.dt), targets: T([5, 2], 'int32'), loss: 'hinge' },
      { x: T([5, 2, 3], c.dt), targets: targets52, initialCellState: T([2, 4], c.dt) },
    ],
  };
  const stateArg: Arg = {
    valid: (c) => states.get(c.model),
    keys: ['W_in', 'b', 'U', 'V', 'p', 'W', 'W_out', 'c', 'weight_ih_l0', 'weight_hh_l0', 'bias_ih_l0', 'bias_hh_l0'],
    bad: (c) => {
      const s = states.get(c.model)!;
      const name = pick(c.r, Object.keys(s));
      const spoilt = s[name].slice();
      spoilt[0] = pick(c.r, [NaN, Infinity, -Infinity]);
      return [{ ...s, [name]: spoilt }, { ...s, [name]: new Float32Array(1) }, { ...s, extra: new Float32Array(1) }];
    },
  };
  const deadOptimizer = new SGD({ a: T([3]) }, { lr: 1 });
  deadOptimizer.dispose();
  const optimizerArg: Arg = { valid: (c) => c.optimizer, bad: () => [deadOptimizer], onlyBad: true };
  const optParams: Arg = { valid: (c) => ({ w: T([3], c.dt), v: T([2, 3], c.dt) }), keys: ['w', 'v'] };
  const optOptions = (extra: Record<string, number>): Arg => ({
    valid: () => ({ lr: 1e-3, weightDecay: 0, ...extra }),
    keys: ['lr', 'weightDecay', ...Object.keys(extra)],
    bad: () => [{ lr: 1e308 }, { lr: NaN }, { lr: -1 }, { lr: 1e-3, weightDecay: Infinity }, ...Object.keys(extra).map((k) => ({ lr: 1e-3, [k]: 1e308 }))],
  });

  const red = (name: 'sum' | 'sumSquares' | 'maxAbs' | 'countNonFinite'): Entry => ({
    name: `ops.${name}`, owns: true, args: [tensorArg([2, 3]), outOpts([])], call: ([x, o]) => ops[name](x as never, o as never),
  });
  const binary = (name: 'add' | 'sub' | 'mul'): Entry => ({
    name: `ops.${name}`, owns: true, args: [tensorArg([2, 3]), tensorArg([2, 3]), outOpts([2, 3])], call: ([x, y, o]) => ops[name](x as never, y as never, o as never),
  });

  const table: Entry[] = [
    {
      name: 'ops.gemm', owns: true,
      args: [tensorArg([2, 3]), tensorArg([3, 2]), { valid: (c) => (c.r() < 0.5 ? { alpha: 2 } : { out: T([2, 2], c.dt), beta: 0.5, transA: false }), keys: ['transA', 'transB', 'alpha', 'beta', 'out'], bad: () => [{ alpha: 1e308 }, { transA: 'yes' }] }],
      call: ([a, b, o]) => ops.gemm(a as never, b as never, o as never),
    },
    { name: 'ops.matmul', owns: true, args: [tensorArg([2, 3, 3]), tensorArg([3, 3])], call: ([a, b]) => ops.matmul(a as never, b as never) },
    { name: 'ops.luFactor', owns: true, args: [tensorArg([3, 3])], call: ([a]) => ops.luFactor(a as never) },
    {
      name: 'ops.luSolve', owns: true,
      args: [
        { valid: (c) => ({ ...factors[c.dt] }), keys: ['lu', 'pivots'], bad: (c) => [{ lu: factors[c.dt].lu, pivots: wildPivots }, { lu: factors[c.dt].lu, pivots: T([4], 'int32') }, { lu: factors[c.dt].lu, pivots: T([3], 'int32') }, { lu: factors[c.dt].lu, pivots: factors[c.dt === 'float32' ? 'float64' : 'float32'].lu }, { lu: T([3, 2], c.dt), pivots: T([3], 'int32') }, { lu: factors[c.dt].lu, pivots: other.zeros([4], { dtype: 'int32' }) }, { lu: factors[c.dt].lu }] },
        { valid: (c) => T(pick(c.r, [[4], [4, 2]]), c.dt), bad: (c) => [T([3], c.dt), T([4, 2, 1], c.dt)] },
        outOpts([4]),
      ],
      call: ([f, b, o]) => ops.luSolve(f as never, b as never, o as never),
    },
    { name: 'ops.solve', owns: true, args: [{ valid: (c) => orth[c.dt] }, tensorArg([4, 2])], call: ([a, b]) => ops.solve(a as never, b as never) },
    { name: 'ops.qr', owns: true, args: [tensorArg([3, 2])], call: ([a]) => ops.qr(a as never) },
    { name: 'ops.svd', owns: true, args: [tensorArg([2, 3])], call: ([a]) => ops.svd(a as never) },
    { name: 'ops.copy', owns: true, args: [tensorArg([2, 3]), outOpts([2, 3])], call: ([x, o]) => ops.copy(x as never, o as never) },
    { name: 'ops.fill', args: [{ valid: (c) => T([2], pick(c.r, ['float32', 'float64', 'int32'] as const)) }, num(2)], call: ([x, v]) => ops.fill(x as never, v as never) },
    {
      name: 'ops.axpby', owns: true,
      args: [num(0.5), tensorArg([2, 3]), num(-1), tensorArg([2, 3]), outOpts([2, 3])],
      call: ([a, x, b, y, o]) => ops.axpby(a as never, x as never, b as never, y as never, o as never),
    },
    binary('add'),
    binary('sub'),
    binary('mul'),
    { name: 'ops.scale', owns: true, args: [tensorArg([2, 3]), num(3), outOpts([2, 3])], call: ([x, a, o]) => ops.scale(x as never, a as never, o as never) },
    { name: 'ops.scaleColumns', owns: true, args: [tensorArg([2, 3]), tensorArg([3]), outOpts([2, 3])], call: ([x, s, o]) => ops.scaleColumns(x as never, s as never, o as never) },
    {
      name: 'ops.biasActivation', owns: true,
      args: [tensorArg([2, 3]), { valid: (c) => (c.r() < 0.3 ? null : T([3], c.dt)) }, activation, outOpts([2, 3])],
      call: ([x, b, a, o]) => ops.biasActivation(x as never, b as never, a as never, o as never),
    },
    {
      name: 'ops.activationBackward', owns: true,
      args: [tensorArg([2, 3]), tensorArg([2, 3]), activation, outOpts([2, 3])],
      call: ([dy, h, a, o]) => ops.activationBackward(dy as never, h as never, a as never, o as never),
    },
    { name: 'ops.marginSigmoid', owns: true, args: [tensorArg([3]), num(0.1), outOpts([3])], call: ([p, m, o]) => ops.marginSigmoid(p as never, m as never, o as never) },
    {
      name: 'ops.marginSigmoidBackward', owns: true,
      args: [tensorArg([3]), num(0.1), tensorArg([3]), outOpts([3])],
      call: ([p, m, ds, o]) => ops.marginSigmoidBackward(p as never, m as never, ds as never, o as never),
    },
    red('sum'),
    red('sumSquares'),
    red('maxAbs'),
    red('countNonFinite'),
    {
      name: 'ops.columnSum', owns: true,
      args: [tensorArg([2, 3]), { valid: (c) => (c.r() < 0.5 ? {} : { out: T([3], c.dt), beta: 1 }), keys: ['out', 'beta'], bad: () => [{ beta: 1 }, { beta: NaN }] }],
      call: ([x, o]) => ops.columnSum(x as never, o as never),
    },
    { name: 'ops.groupNorms', owns: true, args: [tensorArg([2, 3, 3]), outOpts([2])], call: ([x, o]) => ops.groupNorms(x as never, o as never) },
    {
      name: 'ops.softmaxCrossEntropy', owns: true,
      args: [tensorArg([2, 3]), { valid: () => targets2, bad: () => [T([2], 'int32'), ids([5, -1], [2])] }, { valid: (c) => (c.r() < 0.5 ? {} : { weights: T([2], c.dt), gradient: false }), keys: ['weights', 'gradient'] }],
      call: ([l, t, o]) => ops.softmaxCrossEntropy(l as never, t as never, o as never),
    },
    {
      name: 'ops.meanSquaredError', owns: true,
      args: [tensorArg([2, 3]), tensorArg([2, 3]), { valid: (c) => (c.r() < 0.5 ? {} : { weights: T([2], c.dt) }), keys: ['weights', 'gradient'] }],
      call: ([y, t, o]) => ops.meanSquaredError(y as never, t as never, o as never),
    },
    { name: 'ops.cayleyStep', args: [{ valid: (c) => orth[c.dt] }, tensorArg([4, 4]), num(1e-3)], call: ([m, g, lr]) => ops.cayleyStep(m as never, g as never, lr as never) },
    { name: 'ops.cayleyStepInFrame', args: [{ valid: (c) => orth[c.dt] }, tensorArg([4, 4]), num(1e-3)], call: ([m, f, lr]) => ops.cayleyStepInFrame(m as never, f as never, lr as never) },
    { name: 'ops.orthogonalityError', owns: true, args: [{ valid: (c) => orth[c.dt] }, outOpts([])], call: ([m, o]) => ops.orthogonalityError(m as never, o as never) },
    { name: 'ops.reorthonormalize', args: [{ valid: (c) => orth[c.dt] }], call: ([m]) => ops.reorthonormalize(m as never) },

    { name: 'new Context', owns: true, args: [{ valid: (c) => ({ device: 'cpu', seed: Math.floor(c.r() * 9) }), keys: ['device', 'seed'], bad: () => [{ device: 'cuda:99999999999999999999' }, { device: 'gpu' }, { seed: 2 ** 60 }] }], call: ([o]) => new Context(o as never) },
    { name: 'defaultContext', args: [{ valid: () => 'cpu', bad: () => ['cuda:x', 'cpu:1e3', 'CPU'] }], call: ([d]) => defaultContext(d as never) },
    {
      name: 'ctx.tensor', owns: true,
      args: [receiverCtx, { valid: (c) => (c.dt === 'float32' ? new Float32Array(6) : new Float64Array(6)), bad: () => [new Float32Array([1, NaN, 0, 0, 0, 0]), new Float64Array(5), new Uint8Array(6)] }, { valid: () => [2, 3] , bad: () => [[6, 1, 1.5], [-6], [6, NaN]] }, { valid: () => ({ allowNonFinite: false }), keys: ['allowNonFinite'] }],
      call: ([cx, data, shape, o]) => (cx as Context).tensor(data as never, shape as never, o as never),
    },
    { name: 'tensor', owns: true, args: [{ valid: () => new Float32Array(3) }, { valid: () => [3] }, { valid: () => ({ device: 'cpu' }), bad: () => [{ device: 'tpu' }, { allowNonFinite: 'yes' }, { bogus: 1 }, {}], onlyBad: true }], call: ([d, s, o]) => tensor(d as never, s as never, o as never) },
    { name: 'ctx.empty', owns: true, args: [receiverCtx, shapeArg, dtypeOpts(['dtype'])], call: ([cx, s, o]) => (cx as Context).empty(s as never, o as never) },
    { name: 'ctx.full', owns: true, args: [receiverCtx, shapeArg, num(1.5), dtypeOpts(['dtype'])], call: ([cx, s, v, o]) => (cx as Context).full(s as never, v as never, o as never) },
    { name: 'ctx.full int32', owns: true, args: [receiverCtx, shapeArg, { valid: () => 7, bad: () => [1.5, 2 ** 40, -(2 ** 40)] }, { valid: () => ({ dtype: 'int32' }), keys: ['dtype'] }], call: ([cx, s, v, o]) => (cx as Context).full(s as never, v as never, o as never) },
    { name: 'ctx.zeros', owns: true, args: [receiverCtx, shapeArg, dtypeOpts(['dtype'])], call: ([cx, s, o]) => (cx as Context).zeros(s as never, o as never) },
    { name: 'ctx.randn', owns: true, args: [receiverCtx, shapeArg, dtypeOpts(['dtype', 'seed', 'mean', 'std'], () => ({ seed: 3, std: 2 }))], call: ([cx, s, o]) => (cx as Context).randn(s as never, o as never) },
    { name: 'ctx.rand', owns: true, args: [receiverCtx, shapeArg, dtypeOpts(['dtype', 'seed', 'low', 'high'], () => ({ low: -1, high: 1 }))], call: ([cx, s, o]) => (cx as Context).rand(s as never, o as never) },
    { name: 'ctx.supports', args: [receiverCtx, { valid: () => 'gemm', bad: () => ['', 'nope'] }, { valid: (c) => c.dt }], call: ([cx, op, d]) => (cx as Context).supports(op as never, d as never) },
    { name: 'ctx.launchCounters', args: [receiverCtx], call: ([cx]) => (cx as Context).launchCounters() },
    { name: 'ctx.sync', args: [receiverCtx], call: ([cx]) => (cx as Context).sync() },
    { name: 'tensor.read', args: [receiverTensor([[2, 3]])], call: ([t]) => (t as Tensor).read() },
    { name: 'tensor.item', args: [receiverTensor([[], [1], [2, 3]])], call: ([t]) => (t as Tensor).item() },
    { name: 'tensor.toString', args: [receiverTensor([[2, 3]])], call: ([t]) => (t as Tensor).toString() },
    { name: 'tensor.dispose', args: [{ valid: () => ctx.zeros([2]), bad: (c) => badTensors(c).slice(0, 2), onlyBad: true }], call: ([t]) => (t as Tensor).dispose() },

    { name: 'ElmanRNN.create', owns: true, args: [modelOptions({ recurrent: 'svd', margin: 0.1, activation: 'tanh', init: 'orthogonal', learnH0: false, clipPreactivation: 0, spectrumPrior: 0 })], call: ([o]) => ElmanRNN.create(o as never) },
    { name: 'LSTM.create', owns: true, args: [modelOptions({})], call: ([o]) => LSTM.create(o as never) },
    {
      name: 'model.forward', owns: true,
      args: [modelArg, { valid: (c) => T([5, 2, 3], c.dt) }, { valid: (c) => (c.r() < 0.5 ? {} : { initialState: T([2, 4], c.dt) }), keys: ['initialState', 'initialCellState'] }],
      call: ([m, x, o]) => (m as Model).forward(x as never, o as never),
    },
    {
      name: 'model.lossAndGradients',
      args: [modelArg, batchArg, { valid: (c) => ({ frameGradients: c.model instanceof ElmanRNN && c.model.recurrent === 'svd' && c.r() < 0.5 }), keys: ['frameGradients'] }],
      call: ([m, b, o]) => (m as Model).lossAndGradients(b as never, o as never),
    },
    { name: 'model.state', args: [modelArg], call: ([m]) => (m as Model).state() },
    { name: 'model.loadState', args: [modelArg, stateArg], call: ([m, s]) => (m as Model).loadState(s as never) },
    { name: 'model.recurrentMatrix', owns: true, models: 'elman', args: [modelArg], call: ([m]) => (m as ElmanRNN<FloatDType>).recurrentMatrix() },
    { name: 'model.singularValues', models: 'elman', args: [modelArg], call: ([m]) => (m as ElmanRNN<FloatDType>).singularValues() },

    { name: 'new RMSprop', owns: true, args: [optParams, optOptions({ rho: 0.9, eps: 1e-8 })], call: ([p, o]) => new RMSprop(p as never, o as never) },
    { name: 'new Adam', owns: true, args: [optParams, optOptions({ beta1: 0.9, beta2: 0.999, eps: 1e-8 })], call: ([p, o]) => new Adam(p as never, o as never) },
    { name: 'new SGD', owns: true, args: [optParams, optOptions({ momentum: 0.9 })], call: ([p, o]) => new SGD(p as never, o as never) },
    {
      name: 'optimizer.step',
      args: [optimizerArg, { valid: (c) => Object.fromEntries(Object.entries(c.optimizer.params).map(([k, p]) => [k, T([...p.shape], p.dtype as FloatDType)])), keys: ['a', 'b'] }],
      call: ([o, g]) => (o as Optimizer).step(g as never),
    },
    {
      name: 'optimizer.loadState',
      args: [
        optimizerArg,
        {
          valid: (c) => optimizerStates.get(c.optimizer),
          keys: ['a.square_avg', 'a.exp_avg', 'a.exp_avg_sq', 'a.momentum_buffer', 'b.square_avg'],
          bad: (c) => Object.entries(optimizerStates.get(c.optimizer)!).map(([k, v]) => ({ ...optimizerStates.get(c.optimizer), [k]: v.map(() => NaN) })),
        },
        { valid: () => 3, bad: () => [-1, 1.5, 1e308, 2 ** 53] },
      ],
      call: ([o, v, s]) => (o as Optimizer).loadState(v as never, s as never),
    },
    { name: 'optimizer.lr=', args: [optimizerArg, num(1e-3)], call: ([o, v]) => ((o as Optimizer).lr = v as never) },
    { name: 'optimizer.state', args: [optimizerArg], call: ([o]) => (o as Optimizer).state() },
    {
      name: 'new ReorthonormalizationPolicy',
      args: [{ valid: () => ({ every: 2, tolerance: 1e-5, checkEvery: 1 }), keys: ['every', 'tolerance', 'checkEvery'], bad: () => [{}, { every: 0 }, { tolerance: 1e308 }, { tolerance: -1 }] }],
      call: ([o]) => new ReorthonormalizationPolicy(o as never),
    },
    {
      name: 'policy.apply',
      args: [{ valid: () => policy, onlyBad: true }, { valid: (c) => 1 + Math.floor(c.r() * 10) }, { valid: (c) => [orth[c.dt]], bad: (c) => [[orth[c.dt], null], [T([2, 3], c.dt)], 'M'] }],
      call: ([p, s, m]) => (p as ReorthonormalizationPolicy).apply(s as never, m as never),
    },
    { name: 'memory', args: [], call: () => memory() },
    { name: 'memoryOf', args: [{ valid: () => 'cpu', bad: () => ['cuda:0', 'tpu'] }], call: ([d]) => memoryOf(d as never) },
    { name: 'backends', args: [], call: () => backends() },
  ];

  const histogram = new Map<string, number>();
  const uncoded: string[] = [];
  let uncodedCount = 0;
  const traceFd = TRACE ? openSync(TRACE, 'a') : undefined;
  let owned: unknown[] = [];
  let returned = 0;

  const record = (desc: string, e: unknown) => {
    const code = (e as { code?: unknown } | null)?.code;
    const coded = typeof code === 'string' && code.startsWith('ERR_ORTHORNN_');
    const key = coded ? (code as string) : `uncoded ${(e as Error)?.constructor?.name ?? typeof e}`;
    histogram.set(key, (histogram.get(key) ?? 0) + 1);
    if (!coded) {
      uncodedCount++;
      if (uncoded.length < 10) uncoded.push(`${desc}\n      → ${(e as Error)?.constructor?.name}: ${(e as Error)?.message ?? String(e)}`);
    }
  };
  const disposable = (v: unknown): v is { dispose(): void } =>
    [Tensor, Context, ElmanRNN, LSTM, RMSprop, Adam, SGD].some((cls) => v instanceof cls) && !kept.has(v) && v !== ctx;
  /** Frees what the calls returned: a tensor, context, model or optimiser, or an object of tensors. */
  const disposeOwned = () => {
    for (const v of owned) for (const t of disposable(v) ? [v] : Object.values(v as object)) if (disposable(t)) t.dispose();
    owned = [];
  };

  const stateFor = (entry: Entry): CallState => {
    const model = pick(r, models.filter((m) => entry.models !== 'elman' || m instanceof ElmanRNN));
    return { r, model, optimizer: pick(r, optimizers), dt: entry.name.startsWith('model.') ? model.dtype : pick(r, ['float32', 'float64'] as const) };
  };
  /** Each entry once with each specific malformed value of each argument; then random calls. */
  function* plan(): Generator<[Entry, CallState, unknown[], boolean]> {
    for (const entry of table) {
      for (const [k, arg] of entry.args.entries()) {
        const count = arg.bad?.(stateFor(entry)).length ?? 0;
        for (let j = 0; j < count; j++) {
          const c = stateFor(entry);
          const args = entry.args.map((a) => a.valid(c));
          args[k] = arg.bad!(c)[j];
          yield [entry, c, args, true];
        }
      }
    }
    for (;;) {
      const entry = table[Math.floor(r() * table.length)];
      const c = stateFor(entry);
      const args = entry.args.map((a) => a.valid(c));
      const roll = r();
      const mutations = entry.args.length === 0 || roll < 0.3 ? 0 : roll < 0.85 ? 1 : 2;
      for (let m = 0; m < mutations; m++) {
        const k = Math.floor(r() * entry.args.length);
        args[k] = malformed(entry.args[k], c);
      }
      yield [entry, c, args, false];
    }
  }

  const started = Date.now();
  let i = 0;
  for (const [entry, c, args, sweep] of plan()) {
    if (i === CALLS) break;
    const desc = `#${i} ${entry.name}(${args.map((a) => show(a)).join(', ')})`;
    if (traceFd !== undefined) writeSync(traceFd, desc + '\n');
    try {
      let out = entry.call(args, c);
      if (out instanceof Promise) out = await out;
      if (entry.owns && out !== null && typeof out === 'object') owned.push(out);
      returned++;
    } catch (e) {
      record(desc, e);
    }
    // Each call of the first pass is run to completion, so that a crash follows its cause.
    if (sweep || i % 25 === 24) {
      try {
        await ctx.sync();
      } catch (e) {
        record(`#${i} ctx.sync() after the calls above`, e);
      }
      if (!sweep) disposeOwned();
    }
    i++;
  }
  try {
    await ctx.sync();
  } catch (e) {
    record('ctx.sync() at the end', e);
  }
  disposeOwned();
  for (const m of models) m.dispose();
  for (const o of optimizers) o.dispose();
  ctx.dispose();
  other.dispose();
  if (traceFd !== undefined) closeSync(traceFd);

  const seconds = (Date.now() - started) / 1000;
  console.log(`calls: ${CALLS} in ${seconds.toFixed(1)} s, ${returned} returned; errors by code:`);
  for (const [k, n] of [...histogram].sort((a, b) => b[1] - a[1])) console.log(`  ${k.padEnd(28)} ${n}`);
  if (uncodedCount > 0) {
    console.log(`${uncodedCount} errors without an ERR_ORTHORNN_* code; the first ${uncoded.length}:`);
    for (const u of uncoded) console.log(`  ${u}`);
  }
  console.log(JSON.stringify({ seed: SEED, calls: CALLS, returned, seconds, uncoded: uncodedCount, histogram: Object.fromEntries(histogram) }));
  process.exitCode = uncodedCount > 0 ? 1 : 0;
}

main().catch((e) => {
  console.error('fuzz driver failed:', e);
  process.exitCode = 2;
});
