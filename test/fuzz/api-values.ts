/** Malformed argument values for the public-API fuzz driver, and a safe one-line description of any value. */
import { Tensor } from '../../lib/index';

export type Rng = () => number;

export function pick<T>(r: Rng, list: readonly T[]): T {
  return list[Math.floor(r() * list.length)];
}

/** The error a hostile getter or trap throws: uncoded on purpose, so a leak of it is counted. */
export class HostileError extends Error {}

/** Objects whose every access throws (a Proxy with throwing traps, a getter that throws, a revoked Proxy). */
export function hostileObjects(): unknown[] {
  const fail = () => {
    throw new HostileError('hostile trap');
  };
  const handler: ProxyHandler<object> = { get: fail, has: fail, ownKeys: fail, getOwnPropertyDescriptor: fail, getPrototypeOf: fail };
  const revocable = Proxy.revocable({}, {});
  revocable.revoke();
  const getter = {};
  for (const key of ['out', 'x', 'targets', 'lr', 'dtype', 'device', 'seed', 'inputSize', 'U', 'lu', 'pivots', 'every']) {
    Object.defineProperty(getter, key, { enumerable: true, get: fail });
  }
  return [new Proxy({}, handler), new Proxy([], handler), revocable.proxy, getter, new Proxy(new Float32Array(4), handler)];
}

/** A Proxy around a live tensor: it looks like one, but every property read throws. */
export function proxiedTensor(t: Tensor): unknown {
  return new Proxy(t, {
    get() {
      throw new HostileError('hostile tensor');
    },
  });
}

/**
 * Plain malformed values: wrong types, non-finite, negative, fractional and huge numbers. As a
 * size, every huge number here asks for more than a 64-bit process can map (2^47 bytes), so an
 * allocation fails at once even where the kernel overcommits memory without limit.
 */
export const JUNK: readonly unknown[] = [
  null,
  undefined,
  NaN,
  Infinity,
  -Infinity,
  -1,
  -0,
  0,
  1.5,
  -2.5,
  1e308,
  1e14,
  2 ** 53,
  Number.MAX_SAFE_INTEGER,
  'x',
  '3',
  '',
  'float16',
  true,
  false,
  10n,
  Symbol('junk'),
  () => 1,
  {},
  { a: 1 },
  Object.create(null),
  [],
  [1, 2],
  [[1]],
  [NaN],
  [-1, 2],
  new Uint8Array(4),
  new Int16Array(4),
  new Float32Array([1, NaN, 2, Infinity]),
  new Float64Array(3),
  new Int32Array(3),
  new ArrayBuffer(8),
  new Date(0),
  new Map(),
  /re/,
];

/** A short description of a value, for the trace of calls; never runs a trap or getter's error past it. */
export function show(v: unknown, depth = 0): string {
  try {
    if (v === null) return 'null';
    if (v === undefined) return 'undefined';
    switch (typeof v) {
      case 'number':
        return Object.is(v, -0) ? '-0' : String(v);
      case 'bigint':
        return `${v}n`;
      case 'string':
        return JSON.stringify(v.slice(0, 20));
      case 'symbol':
        return 'Symbol()';
      case 'function':
        return 'function';
      case 'boolean':
        return String(v);
    }
    if (v instanceof Tensor) return `Tensor(${v.dtype} [${v.shape.join(',')}]${v.disposed ? ' disposed' : ''}${v.context.disposed ? ' ctx-disposed' : ''})`;
    if (ArrayBuffer.isView(v)) return `${Object.prototype.toString.call(v).slice(8, -1)}(${(v as unknown as { length?: number }).length ?? '?'})`;
    if (Array.isArray(v)) return depth > 1 ? '[…]' : `[${v.slice(0, 6).map((x) => show(x, depth + 1)).join(', ')}${v.length > 6 ? ', …' : ''}]`;
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return proto?.constructor?.name ?? 'object';
    if (depth > 1) return '{…}';
    const keys = Object.keys(v as object);
    return `{${keys.slice(0, 16).map((k) => `${k}: ${show((v as Record<string, unknown>)[k], depth + 1)}`).join(', ')}}`;
  } catch {
    return 'Proxy/hostile';
  }
}
