/**
 * Fuzzes the raw native addon (the NativeAddon surface of lib/native.ts, below every check of
 * the TypeScript layer) with seeded random calls, most of them malformed: wrong types,
 * undefined, NaN, ±Infinity, negative and huge numbers, disposed tensors, tensors and
 * workspaces of another context, wrong dtypes and shapes, bad pivots and class ids, throwing
 * getters and proxy traps, wrong receivers. Some calls are valid, so queued work runs and
 * queued failures reach read() and sync().
 *
 * Run in a child process by test/45-fuzz-native.test.ts, so that a crash is a failed test:
 *   node --expose-gc --import tsx test/fuzz/native-driver.ts
 * Environment: ORTHORNN_FUZZ_SEED (default random), ORTHORNN_FUZZ_NATIVE_CALLS (default
 * 10000), ORTHORNN_FUZZ_TRACE (a file that gets one line per call before it is made: after a
 * crash, its last line is the call that crashed). The last line of stdout is a JSON summary.
 */
/* eslint-disable @typescript-eslint/no-explicit-any */
import { closeSync, openSync, writeSync } from 'node:fs';
import { isProxy } from 'node:util/types';
import { native } from '../../lib/native';
import { rng } from '../helpers';

type Any = any;

const seed = Number(process.env.ORTHORNN_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const totalCalls = Number(process.env.ORTHORNN_FUZZ_NATIVE_CALLS ?? 10000);
const tracePath = process.env.ORTHORNN_FUZZ_TRACE;
const traceFd = tracePath ? openSync(tracePath, 'w') : -1;
/** How long an awaited read()/sync() may stay pending before it counts as never settling. */
const SETTLE_TIMEOUT_MS = 20_000;

const random = rng(seed);
const int = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)];
const chance = (p: number): boolean => random() < p;

const addon: Any = native();

// --- bookkeeping -------------------------------------------------------------------------

const histogram: Record<string, number> = {};
const uncoded: string[] = [];
let uncodedCount = 0;
let calls = 0;
let pendingNeverSettled = 0;
let lastCall = '';

function trace(line: string): void {
  lastCall = line;
  if (traceFd >= 0) writeSync(traceFd, line + '\n');
}

function record(err: unknown, call: string): void {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && code.startsWith('ERR_ORTHORNN_')) {
    histogram[code] = (histogram[code] ?? 0) + 1;
    return;
  }
  uncodedCount++;
  histogram.uncoded = (histogram.uncoded ?? 0) + 1;
  if (uncoded.length < 10) {
    const e = err as { name?: string; message?: string };
    uncoded.push(`${call} -> ${e?.name ?? typeof err}: ${String(e?.message ?? err).slice(0, 200)}`);
  }
}

function recordOk(): void {
  histogram.ok = (histogram.ok ?? 0) + 1;
}

/** Awaits a promise from the addon, counting one that never settles. */
async function settle(p: unknown, call: string): Promise<unknown> {
  if (!(p instanceof Promise)) return p;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), SETTLE_TIMEOUT_MS);
  });
  try {
    const r = await Promise.race([p, timeout]);
    if (r === TIMED_OUT) {
      pendingNeverSettled++;
      uncoded.push(`${call} -> the promise never settled`);
    }
    return r;
  } finally {
    clearTimeout(timer);
  }
}
const TIMED_OUT = Symbol('timed out');

// --- the world the calls act on ----------------------------------------------------------

interface Ctx {
  native: Any;
  name: string;
  tensors: Any[];
  workspaces: Any[];
  alive: boolean;
}

const contexts: Ctx[] = [];
const deadTensors: Any[] = [];
const deadWorkspaces: Any[] = [];
const deadContexts: Any[] = [];
let contextSerial = 0;

function newContext(): Ctx {
  const c: Ctx = { native: new addon.NativeContext('cpu', 0), name: `ctx${contextSerial++}`, tensors: [], workspaces: [], alive: true };
  c.workspaces.push(c.native.createWorkspace());
  contexts.push(c);
  return c;
}

function keep(c: Ctx, t: Any): Any {
  c.tensors.push(t);
  if (c.tensors.length > 400) {
    const old = c.tensors.splice(0, 100);
    for (const o of old) {
      o.dispose();
      if (deadTensors.length < 200) deadTensors.push(o);
    }
  }
  return t;
}

const DTYPES = ['float32', 'float64', 'int32'] as const;
type DT = (typeof DTYPES)[number];

function data(dtype: DT, n: number, fill?: () => number): Float32Array | Float64Array | Int32Array {
  const a = dtype === 'float32' ? new Float32Array(n) : dtype === 'float64' ? new Float64Array(n) : new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = fill ? fill() : dtype === 'int32' ? int(-3, 8) : 2 * random() - 1;
  return a;
}

function tensor(c: Ctx, shape: number[], dtype: DT, fill?: () => number): Any {
  const n = shape.reduce((a, b) => a * b, 1);
  return keep(c, c.native.fromArray(data(dtype, n, fill), shape));
}

function randomShape(): number[] {
  const rank = int(0, 3);
  return Array.from({ length: rank }, () => (chance(0.1) ? 0 : int(1, 5)));
}

// --- malformed values --------------------------------------------------------------------

const throwingGetter = (): Any =>
  Object.defineProperty({}, 'x', {
    get() {
      throw new Error('getter threw');
    },
  });
const throwingProxy = (): Any =>
  new Proxy(
    {},
    {
      get() {
        throw new Error('proxy get trap threw');
      },
      has() {
        throw new Error('proxy has trap threw');
      },
      getPrototypeOf() {
        throw new Error('proxy getPrototypeOf trap threw');
      },
      ownKeys() {
        throw new Error('proxy ownKeys trap threw');
      },
    },
  );
const throwingArray = (): Any => {
  const a = [2, 2];
  Object.defineProperty(a, 0, {
    get() {
      throw new Error('array element getter threw');
    },
  });
  return a;
};

/** A value of the wrong kind, or a right-kind value that is wrong here. */
function junk(c: Ctx): Any {
  const other = contexts.find((o) => o !== c && o.alive);
  switch (int(0, 34)) {
    case 0: return undefined;
    case 1: return null;
    case 2: return NaN;
    case 3: return Infinity;
    case 4: return -Infinity;
    case 5: return -1;
    case 6: return 0;
    case 7: return -0;
    case 8: return 1.5;
    case 9: return 2 ** 31;
    case 10: return 2 ** 53 + 2;
    case 11: return 1e308;
    case 12: return -1e15;
    case 13: return 'float32';
    case 14: return '3';
    case 15: return true;
    case 16: return {};
    case 17: return [];
    case 18: return [1e9, 1e9, 1e9];
    case 19: return () => 1;
    case 20: return Symbol('s');
    case 21: return 10n;
    case 22: return new Float64Array(4);
    case 23: return throwingGetter();
    case 24: return throwingProxy();
    case 25: return throwingArray();
    case 26: return deadTensors.length ? pick(deadTensors) : undefined;
    case 27: return other && other.tensors.length ? pick(other.tensors) : null;
    case 28: return other ? pick(other.workspaces) : undefined;
    case 29: return deadWorkspaces.length ? pick(deadWorkspaces) : {};
    case 30: return c.native;
    case 31: return Object.create(addon.NativeTensor.prototype);
    case 32: return Object.setPrototypeOf({}, addon.NativeContext.prototype);
    case 33: return c.workspaces[0];
    default: return c.tensors.length ? pick(c.tensors) : undefined;  // right kind, likely wrong shape or dtype
  }
}

// --- valid argument lists, then mutated ----------------------------------------------------

const F: DT[] = ['float32', 'float64'];
const ACTS = ['tanh', 'relu', 'identity'];

function badPivots(c: Ctx, n: number): Any {
  return tensor(c, [n], 'int32', () => pick([int(-3, n + 3), 0, n + 1, -(2 ** 31), 2 ** 31 - 1, int(1, n)]));
}

function elmanSetup(c: Ctx, withGrads: boolean): Any {
  const dt = pick(F);
  const d = int(1, 3), n = int(1, 4), k = int(1, 3), T = int(1, 3), B = int(1, 2);
  const recurrent = pick(['svd', 'plain', 'penalty']);
  const loss = pick(['crossEntropy', 'mse']);
  const lastStepOnly = chance(0.3);
  const config: Any = {
    inputSize: d, hiddenSize: n, outputSize: k, activation: pick(ACTS), recurrent, margin: 0.1, penalty: 0.01,
    spectrumPrior: 0, loss, lastStepOnly, clipPreactivation: chance(0.5) ? 0 : 10,
  };
  const params: Any = { W_in: tensor(c, [n, d], dt), b: tensor(c, [n], dt), W_out: tensor(c, [k, n], dt), c: tensor(c, [k], dt) };
  if (recurrent === 'svd') Object.assign(params, { U: tensor(c, [n, n], dt), V: tensor(c, [n, n], dt), p: tensor(c, [n], dt) });
  else params.W = tensor(c, [n, n], dt);
  const x = tensor(c, [T, B, d], dt);
  const rows = lastStepOnly ? B : T * B;
  const batch: Any = {
    x,
    targets: loss === 'crossEntropy' ? tensor(c, [rows], 'int32', () => (chance(0.1) ? int(-2, k + 2) : int(0, k - 1))) : tensor(c, [rows, k], dt),
    weights: tensor(c, [rows], dt),
  };
  const grads: Any = { loss: tensor(c, [1], dt) };
  for (const [key, t] of Object.entries(params)) grads[key] = c.native.empty((t as Any).shape, dt);
  for (const t of Object.values(grads)) if (withGrads || t !== grads.loss) keep(c, t);
  return { config, params, batch, grads, x, T, B, n, k, dt };
}

function lstmSetup(c: Ctx): Any {
  const dt = pick(F);
  const d = int(1, 3), n = int(1, 3), k = int(1, 3), T = int(1, 3), B = int(1, 2);
  const loss = pick(['crossEntropy', 'mse']);
  const lastStepOnly = chance(0.3);
  const config: Any = { inputSize: d, hiddenSize: n, outputSize: k, loss, lastStepOnly };
  const params: Any = {
    weight_ih_l0: tensor(c, [4 * n, d], dt), weight_hh_l0: tensor(c, [4 * n, n], dt), bias_ih_l0: tensor(c, [4 * n], dt),
    bias_hh_l0: tensor(c, [4 * n], dt), W_out: tensor(c, [k, n], dt), c: tensor(c, [k], dt),
  };
  const rows = lastStepOnly ? B : T * B;
  const x = tensor(c, [T, B, d], dt);
  const batch: Any = {
    x,
    targets: loss === 'crossEntropy' ? tensor(c, [rows], 'int32', () => (chance(0.1) ? int(-2, k + 2) : int(0, k - 1))) : tensor(c, [rows, k], dt),
    weights: tensor(c, [rows], dt),
  };
  const grads: Any = { loss: tensor(c, [1], dt) };
  for (const [key, t] of Object.entries(params)) grads[key] = keep(c, c.native.empty((t as Any).shape, dt));
  return { config, params, batch, grads, x, T, B, n, k, dt };
}

interface Call {
  /** 'ctx': a method of the context; 'mod': a module function, or a model op called on its first argument as `this`; 'raw': a thunk. */
  kind: 'ctx' | 'mod' | 'raw';
  name: string;
  args: Any[];
  thunk?: () => unknown;
}

function validCall(c: Ctx): Call {
  const ctx = c.native;
  const ws = c.workspaces[0];
  const m = (name: string, ...args: Any[]): Call => ({ kind: 'ctx', name, args });
  const mod = (name: string, ...args: Any[]): Call => ({ kind: 'mod', name, args });
  const dt = pick(F);
  const n = int(1, 5), r = int(1, 4);
  switch (int(0, 44)) {
    case 0: { const shape = randomShape(); const t = pick(DTYPES); return m('fromArray', data(t, shape.reduce((a, b) => a * b, 1)), shape); }
    case 1: return m('empty', randomShape(), pick(DTYPES));
    case 2: return m('fill', tensor(c, randomShape(), pick(DTYPES)), int(-3, 3));
    case 3: return m('randomNormal', tensor(c, [n, r], dt), int(0, 1000), 0, 1);
    case 4: return m('randomUniform', tensor(c, [n], dt), int(0, 1000), -1, 1);
    case 5: { const a = tensor(c, [n, r], dt); return m('copy', a, c.native.empty([n, r], dt)); }
    case 6: { const k = int(1, 4); return m('gemm', tensor(c, [n, k], dt), tensor(c, [k, r], dt), keep(c, ctx.empty([n, r], dt)), false, false, 1, 0); }
    case 7: { const k = int(1, 3), b = int(0, 3); return m('gemm', tensor(c, [b, n, k], dt), tensor(c, [k, r], dt), keep(c, ctx.empty([b, n, r], dt)), false, false, 1, 0); }
    case 8: return m('luFactor', tensor(c, [n, n], dt, chance(0.2) ? () => 0 : undefined), keep(c, ctx.empty([n, n], dt)), keep(c, ctx.empty([n], 'int32')));
    case 9:
    case 10: {
      // The pivots: luFactor's (valid), or any int32 data (often out of 1..n).
      const a = tensor(c, [n, n], dt), lu = keep(c, ctx.empty([n, n], dt)), piv = keep(c, ctx.empty([n], 'int32'));
      ctx.luFactor(a, lu, piv);
      const pivots = chance(0.6) ? badPivots(c, n) : piv;
      const rhs = chance(0.5) ? tensor(c, [n], dt) : tensor(c, [n, r], dt);
      return m('luSolve', lu, pivots, rhs, keep(c, ctx.empty(rhs.shape, dt)));
    }
    case 11: { const k = Math.min(n, r); return m('qr', tensor(c, [n, r], dt), keep(c, ctx.empty([n, k], dt)), keep(c, ctx.empty([k, r], dt))); }
    case 12: { const k = Math.min(n, r); return m('svd', tensor(c, [n, r], dt), keep(c, ctx.empty([n, k], dt)), keep(c, ctx.empty([k], dt)), keep(c, ctx.empty([k, r], dt))); }
    case 13: return m('axpby', 2, tensor(c, [n], dt), -1, tensor(c, [n], dt), keep(c, ctx.empty([n], dt)));
    case 14: return m('mul', tensor(c, [n], dt), tensor(c, [n], dt), keep(c, ctx.empty([n], dt)));
    case 15: return m('scaleColumns', tensor(c, [n, r], dt), tensor(c, [r], dt), keep(c, ctx.empty([n, r], dt)));
    case 16: return m('rmspropStep', tensor(c, [n], dt), tensor(c, [n], dt), tensor(c, [n], dt), 1e-3, 0.9, 1e-8, chance(0.5), 0);
    case 17: return m('adamStep', tensor(c, [n], dt), tensor(c, [n], dt), tensor(c, [n], dt), tensor(c, [n], dt), 1e-3, 0.9, 0.999, 1e-8, 0, int(1, 9));
    case 18: return m('sgdStep', tensor(c, [n], dt), tensor(c, [n], dt), tensor(c, [n], dt), 0.1, 0.9, 0, chance(0.5));
    case 19: return m('biasActivation', tensor(c, [n, r], dt), chance(0.5) ? tensor(c, [r], dt) : null, pick(ACTS), keep(c, ctx.empty([n, r], dt)));
    case 20: return m('activationBackward', tensor(c, [n], dt), tensor(c, [n], dt), pick(ACTS), keep(c, ctx.empty([n], dt)));
    case 21: return m('marginSigmoid', tensor(c, [n], dt), 0.1, keep(c, ctx.empty([n], dt)));
    case 22: return m('marginSigmoidBackward', tensor(c, [n], dt), 0.1, tensor(c, [n], dt), keep(c, ctx.empty([n], dt)));
    case 23: return m('reduce', tensor(c, [n, r], dt, chance(0.2) ? () => NaN : undefined), int(0, 3), keep(c, ctx.empty([1], dt)));
    case 24: return m('columnSum', tensor(c, [n, r], dt), 0, keep(c, ctx.empty([r], dt)));
    case 25: return m('groupNorms', tensor(c, [n, r], dt), keep(c, ctx.empty([n], dt)));
    case 26:
    case 27: {
      // Class ids: often out of range (a queued Range failure).
      const targets = tensor(c, [n], 'int32', () => (chance(0.3) ? pick([-1, r, 2 ** 31 - 1, -(2 ** 31)]) : int(0, r - 1)));
      return m('softmaxCrossEntropy', tensor(c, [n, r], dt), targets, chance(0.5) ? tensor(c, [n], dt) : null, keep(c, ctx.empty([1], dt)), chance(0.5) ? keep(c, ctx.empty([n, r], dt)) : null);
    }
    case 28: return m('meanSquaredError', tensor(c, [n, r], dt), tensor(c, [n, r], dt), null, keep(c, ctx.empty([1], dt)), chance(0.5) ? keep(c, ctx.empty([n, r], dt)) : null);
    case 29: return m('supports', pick(['gemm', 'luSolve', 'svd', 'nope']), pick(DTYPES));
    case 30: return chance(0.5) ? m('launchCounters') : m('variants');
    case 31: return m('read', c.tensors.length ? pick(c.tensors) : tensor(c, [1], dt));
    case 32: return m('sync');
    case 33: return mod('createWorkspace', ctx);
    case 34: return mod('releaseWorkspace', ctx, pick(c.workspaces));
    case 35: { const M = tensor(c, [n, n], dt); return mod(pick(['cayleyStep', 'cayleyStepInFrame']), ctx, ws, M, tensor(c, [n, n], dt), 0.01); }
    case 36: return mod('orthogonalityError', ctx, ws, tensor(c, [n, n], dt), keep(c, ctx.empty([1], dt)));
    case 37: return mod('reorthonormalize', ctx, ws, tensor(c, [n, n], dt));
    case 38:
    case 39: { const s = elmanSetup(c, true); return mod('elmanLossAndGradients', ctx, ws, s.config, s.params, s.batch, s.grads); }
    case 40: {
      const s = elmanSetup(c, false);
      return mod('elmanForward', ctx, ws, s.config, s.params, s.x, chance(0.5) ? tensor(c, [s.B, s.n], s.dt) : null, keep(c, ctx.empty([s.T, s.B, s.k], s.dt)), keep(c, ctx.empty([s.B, s.n], s.dt)));
    }
    case 41: { const s = lstmSetup(c); return mod('lstmLossAndGradients', ctx, ws, s.config, s.params, s.batch, s.grads); }
    case 42: {
      const s = lstmSetup(c);
      const st = () => (chance(0.5) ? tensor(c, [s.B, s.n], s.dt) : null);
      return mod('lstmForward', ctx, ws, s.config, s.params, s.x, st(), st(), keep(c, ctx.empty([s.T, s.B, s.k], s.dt)), keep(c, ctx.empty([s.B, s.n], s.dt)), keep(c, ctx.empty([s.B, s.n], s.dt)));
    }
    case 43: return chance(0.5) ? mod(pick(['backends', 'memory'])) : chance(0.5)
      ? m('forceVariant', pick(['elmanRecurrence', 'lstmRecurrence', 'cayleyFrameSolve', 'gemm']), pick(['reference', 'libxsmm', 'tiled', 'graph', '', 'nope']))
      : m('limitThreads', pick([1, 2, 0, -1, 1.5, 5000]));
    default: {
      // Receivers, constructors and accessors used the wrong way.
      const t = c.tensors.length ? pick(c.tensors) : tensor(c, [1], dt);
      const variants: Array<[string, () => unknown]> = [
        ['NativeContext.prototype.read.call(tensor)', () => addon.NativeContext.prototype.read.call(t, t)],
        ['NativeContext.prototype.sync.call(junk)', () => addon.NativeContext.prototype.sync.call(junk(c))],
        ['NativeTensor.prototype.shape getter on a context', () => Object.getOwnPropertyDescriptor(addon.NativeTensor.prototype, 'shape')!.get!.call(ctx)],
        ['NativeTensor.prototype.dispose.call(junk)', () => addon.NativeTensor.prototype.dispose.call(junk(c))],
        ['NativeContext backend getter on junk', () => Object.getOwnPropertyDescriptor(addon.NativeContext.prototype, 'backend')!.get!.call(junk(c))],
        ['new NativeTensor(junk)', () => new addon.NativeTensor(junk(c))],
        ['new NativeContext(junk, junk)', () => new addon.NativeContext(pick(['cpu', 'cuda', 'tpu', junk(c)]), junk(c))],
        ['NativeContext(cpu, 0) without new', () => addon.NativeContext('cpu', 0)],
        ['setErrorClasses(junk)', () => addon.setErrorClasses(pick([junk(c), throwingProxy(), { ERR_ORTHORNN_NUMERIC: 5 }]))],
        ['tensor accessors', () => [t.shape, t.dtype, t.device, t.disposed, t.bytes]],
        ['context accessors', () => [ctx.backend, ctx.device, ctx.disposed]],
      ];
      const [name, thunk] = pick(variants);
      return { kind: 'raw', name, args: [], thunk };
    }
  }
}

/** Replaces a few arguments (or fields of object arguments) with malformed values. */
function mutate(c: Ctx, call: Call): void {
  const times = int(1, 3);
  for (let i = 0; i < times; i++) {
    const len = call.args.length;
    const at = int(0, len);  // len: append an extra argument, or (below) drop the last
    if (at === len) {
      if (chance(0.5) && len > 0) call.args.pop();
      else call.args.push(junk(c));
      continue;
    }
    const a = call.args[at];
    if (a && typeof a === 'object' && !isProxy(a) && Object.getPrototypeOf(a) === Object.prototype && chance(0.7)) {
      // A config, params, batch or grads object: change one field.
      const keys = Object.keys(a);
      const copy: Any = Object.defineProperties({}, Object.getOwnPropertyDescriptors(a));  // getters not run
      const key = keys.length ? pick(keys) : 'x';
      if (!Object.getOwnPropertyDescriptor(copy, key)?.configurable && key in copy) {
        call.args[at] = junk(c);
        continue;
      }
      switch (int(0, 3)) {
        case 0: delete copy[key]; break;
        case 1:
          Object.defineProperty(copy, key, {
            enumerable: true,
            configurable: true,
            get() {
              throw new Error(`getter of ${key} threw`);
            },
          });
          break;
        default: Object.defineProperty(copy, key, { value: junk(c), enumerable: true, configurable: true, writable: true });
      }
      call.args[at] = copy;
    } else if (chance(0.1) && typeof a === 'object' && a !== null) {
      call.args[at] = new Proxy(a, {
        get(target, p, r) {
          if (chance(0.5)) throw new Error('proxy trap threw');
          return Reflect.get(target, p, r);
        },
      });
    } else {
      call.args[at] = junk(c);
    }
  }
}

function describe(v: Any): string {
  try {
    return describeValue(v);
  } catch {
    return 'object(throws)';
  }
}

function describeValue(v: Any): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (typeof v === 'number') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'symbol' || typeof v === 'bigint') return typeof v;
  if (typeof v === 'function') return 'function';
  if (isProxy(v)) return 'proxy';
  if (v instanceof addon.NativeTensor) {
    try {
      return `tensor(${v.dtype}[${v.shape.join(',')}]${v.disposed ? ' disposed' : ''})`;
    } catch {
      return 'tensor-like';
    }
  }
  if (v instanceof addon.NativeContext) return 'context';
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as Any).length})`;
  if (Array.isArray(v)) return `[${v.length}]`;
  return 'object';
}

async function run(): Promise<void> {
  const started = Date.now();
  for (let i = 0; i < 3; i++) newContext();
  while (calls < totalCalls) {
    // Churn: now and then a context is disposed (its tensors and workspaces become dead
    // values) and another made.
    if (chance(0.002)) {
      const victim = pick(contexts.filter((c) => c.alive));
      if (victim && contexts.filter((c) => c.alive).length > 2) {
        trace(`#${calls} dispose ${victim.name}`);
        victim.native.dispose();
        victim.alive = false;
        deadContexts.push(victim.native);
        deadWorkspaces.push(...victim.workspaces);
        deadTensors.push(...victim.tensors.slice(0, 50));
        newContext();
      }
    }
    const alive = contexts.filter((c) => c.alive);
    const c = pick(alive);
    let call: Call;
    try {
      call = validCall(c);
    } catch (err) {
      // Setting up a valid call can meet a queued failure only through read/sync, which are
      // not used here; anything thrown is a finding.
      record(err, `setup on ${c.name}`);
      continue;
    }
    if (!chance(0.25) && call.kind !== 'raw') mutate(c, call);
    if (call.kind === 'ctx' && chance(0.03)) call.args.unshift(junk(c));  // shifted arguments
    const target = call.kind === 'ctx' && chance(0.02) ? pick(deadContexts.length ? deadContexts : [c.native]) : c.native;
    const text = `#${calls} ${c.name}.${call.name}(${call.args.map(describe).join(', ')})`;
    trace(text);
    calls++;
    try {
      let result: unknown;
      if (call.kind === 'raw') result = call.thunk!();
      else if (call.kind === 'ctx') result = target[call.name](...call.args);
      // A module function, or a model op: a NativeContext method called on its first argument
      // (possibly junk: a coded TypeError).
      else if (typeof addon[call.name] === 'function') result = addon[call.name](...call.args);
      else result = addon.NativeContext.prototype[call.name].call(call.args[0], ...call.args.slice(1));
      if (result instanceof Promise) await settle(result, text);
      if (call.name === 'createWorkspace' && result) c.workspaces.push(result);
      if (call.name === 'fromArray' || call.name === 'empty') keep(c, result);
      if (result && typeof result === 'object' && result instanceof addon.NativeContext) {
        (result as Any).dispose();
      }
      recordOk();
    } catch (err) {
      record(err, text);
    }
    // Await the queued work now and then: failures of queued ops reject here.
    if (chance(0.08)) {
      const which = pick(alive);
      const how = chance(0.5) || !which.tensors.length ? 'sync' : 'read';
      const line = `#${calls} ${which.name}.${how}() [await]`;
      trace(line);
      calls++;
      try {
        await settle(how === 'sync' ? which.native.sync() : which.native.read(pick(which.tensors)), line);
        recordOk();
      } catch (err) {
        record(err, line);
      }
    }
    if (calls % 1000 < 2 && typeof global.gc === 'function') global.gc();
  }
  // Every live context is still usable: a fresh product reads back right.
  let usable = 0;
  for (const c of contexts.filter((x) => x.alive)) {
    try {
      await settle(c.native.sync(), `${c.name}.sync() [final]`);
    } catch (err) {
      record(err, `${c.name}.sync() [final]`);
    }
    const a = c.native.fromArray(new Float64Array([1, 2, 3, 4]), [2, 2]);
    const out = c.native.empty([2, 2], 'float64');
    c.native.gemm(a, a, out, false, false, 1, 0);
    const r = (await settle(c.native.read(out), `${c.name}.read() [final]`)) as Float64Array;
    if (r && r[0] === 7 && r[1] === 10 && r[2] === 15 && r[3] === 22) usable++;
    else uncoded.push(`${c.name}: the final product read back ${r ? Array.from(r).join(',') : r}`);
    c.native.dispose();
  }
  if (typeof global.gc === 'function') global.gc();
  if (traceFd >= 0) closeSync(traceFd);
  const summary = {
    seed,
    calls,
    histogram,
    uncoded: uncodedCount,
    uncodedExamples: uncoded,
    neverSettled: pendingNeverSettled,
    contextsUsable: usable,
    contextsAlive: contexts.filter((x) => x.alive).length,
    ms: Date.now() - started,
  };
  process.stdout.write(JSON.stringify(summary) + '\n');
}

process.on('unhandledRejection', (err) => {
  process.stderr.write(`unhandled rejection after ${lastCall}: ${String((err as Error)?.stack ?? err)}\n`);
  process.exitCode = 3;
});

run().catch((err) => {
  process.stderr.write(`driver failed after ${lastCall}: ${String((err as Error)?.stack ?? err)}\n`);
  process.exitCode = 2;
});
