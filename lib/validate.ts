/**
 * Argument checks with one message template (see errors.ts). Objects and arrays from the
 * caller are read once, into copies, by the functions here: a Proxy or getter that throws,
 * or that answers differently on a second read, meets a coded TypeError instead of
 * reaching the code behind the checks.
 */
import { isContext, type Context } from './context';
import { rangeError, show, typedArrayKind, typeError, typeErrorText } from './errors';
import type { Activation, DType, FloatDType } from './native';
import { isTensor, Tensor } from './tensor';

/**
 * The bound on non-negative coefficients (rates, margins, penalties, clips, tolerances): far
 * above any that trains, and low enough that the arithmetic they enter stays finite.
 */
export const COEFFICIENT_MAX = 1e9;

const FLOAT32_MAX = 3.4028234663852886e38;

/**
 * The own enumerable properties of an object argument, read once into a plain copy. A value
 * that is not an object (arrays included), or whose properties cannot be read, is a TypeError.
 */
export function readObject(fn: string, arg: string, v: unknown, expected = 'an object'): Record<string, unknown> {
  if (v === null || typeof v !== 'object') throw typeError(fn, arg, expected, v);
  const copy: Record<string, unknown> = Object.create(null);
  try {
    if (Array.isArray(v)) throw typeError(fn, arg, expected, v);
    for (const key of Object.keys(v)) copy[key] = (v as Record<string, unknown>)[key];
  } catch (e) {
    throw (e as { code?: string })?.code === 'ERR_ORTHORNN_TYPE' ? e : typeError(fn, arg, `${expected} whose properties can be read`, v);
  }
  return copy;
}

/**
 * An option object read once (`undefined` is no options); unknown keys are RangeErrors naming
 * the option. Values come back unchecked, under their declared types.
 */
export function checkOptions<O extends object>(fn: string, options: O | undefined, allowed: readonly string[], arg = 'options'): Partial<O> {
  if (options === undefined) return {};
  const copy = readObject(fn, arg, options);
  for (const key of Object.keys(copy)) {
    if (!allowed.includes(key)) {
      throw rangeError(fn, arg, `made of ${allowed.map((k) => `'${k}'`).join(', ')}`, `unknown option '${key}'`);
    }
  }
  return copy as Partial<O>;
}

/** An array argument, copied once (a Proxy cannot change it afterwards). */
export function checkArray(fn: string, arg: string, v: unknown, expected = 'an array'): unknown[] {
  let copy: unknown[] | undefined;
  try {
    if (Array.isArray(v)) copy = Array.from(v as unknown[]);
  } catch {
    copy = undefined;
  }
  if (!copy) throw typeError(fn, arg, expected, v);
  return copy;
}

/** A shape: an array of non-negative safe integers, copied. */
export function checkShape(fn: string, arg: string, shape: unknown): number[] {
  const expected = 'an array of non-negative integers';
  const dims = checkArray(fn, arg, shape, expected);
  for (const d of dims) {
    if (typeof d !== 'number') throw typeError(fn, arg, expected, shape);
    if (!Number.isSafeInteger(d) || d < 0) throw rangeError(fn, arg, expected, `[${dims.map((x) => show(x)).join(', ')}]`);
  }
  return dims as number[];
}

/** One of a fixed set of strings: a TypeError for a non-string, a RangeError for another string. */
export function checkOneOf<S extends string>(fn: string, arg: string, v: unknown, values: readonly S[]): S {
  const list = values.map((s) => `'${s}'`);
  const expected = list.length > 1 ? `${list.slice(0, -1).join(', ')} or ${list[list.length - 1]}` : list[0];
  if (typeof v !== 'string') throw typeError(fn, arg, expected, v);
  if (!values.includes(v as S)) throw rangeError(fn, arg, expected, show(v));
  return v as S;
}

export function checkDType(fn: string, arg: string, dtype: unknown): DType {
  return checkOneOf(fn, arg, dtype, ['float32', 'float64', 'int32'] as const);
}

export function checkFloatDType(fn: string, arg: string, dtype: unknown): FloatDType {
  return checkOneOf(fn, arg, dtype, ['float32', 'float64'] as const);
}

export function checkActivation(fn: string, arg: string, v: unknown): Activation {
  return checkOneOf(fn, arg, v, ['tanh', 'relu', 'identity'] as const);
}

export function checkBoolean(fn: string, arg: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw typeError(fn, arg, 'a boolean', v);
  return v;
}

/** A finite number. */
export function checkNumber(fn: string, arg: string, v: unknown): number {
  if (typeof v !== 'number') throw typeError(fn, arg, 'a number', v);
  if (!Number.isFinite(v)) throw rangeError(fn, arg, 'a finite number', show(v));
  return v;
}

/** An integer in [min, max] (by default any non-negative safe integer). */
export function checkInteger(fn: string, arg: string, v: unknown, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const expected = max === Number.MAX_SAFE_INTEGER ? (min === 0 ? 'a non-negative integer' : min === 1 ? 'a positive integer' : `an integer ≥ ${min}`) : `an integer in [${min}, ${max}]`;
  if (typeof v !== 'number') throw typeError(fn, arg, expected, v);
  if (!Number.isSafeInteger(v) || v < min || v > max) throw rangeError(fn, arg, expected, show(v));
  return v;
}

export function checkSeed(fn: string, arg: string, seed: unknown): number {
  return checkInteger(fn, arg, seed);
}

/**
 * A coefficient in [min, max] (an open end where `exclusive` says so); by default a
 * non-negative number up to COEFFICIENT_MAX.
 */
export function checkCoefficient(
  fn: string,
  arg: string,
  v: unknown,
  range: { min?: number; max?: number; exclusive?: 'min' | 'max' } = {},
): number {
  const { min = 0, max = COEFFICIENT_MAX, exclusive } = range;
  const x = checkNumber(fn, arg, v);
  if (exclusive === 'min' ? !(x > min) : !(x >= min)) {
    const expected = min === 0 ? (exclusive === 'min' ? 'positive' : 'non-negative') : `${exclusive === 'min' ? 'above' : 'at least'} ${min}`;
    throw rangeError(fn, arg, expected, show(x));
  }
  if (exclusive === 'max' ? !(x < max) : !(x <= max)) {
    throw rangeError(fn, arg, `in ${exclusive === 'min' ? '(' : '['}${min}, ${numberText(max)}${exclusive === 'max' ? ')' : ']'}`, show(x));
  }
  return x;
}

/** 1e9 rather than 1000000000. */
function numberText(n: number): string {
  return Math.abs(n) >= 1e6 ? n.toExponential().replace('e+', 'e') : String(n);
}

/** A scalar that an element of `dtype` can hold: finite, within float32's range, or an int32. */
export function checkScalar(fn: string, arg: string, v: unknown, dtype: DType): number {
  checkNumber(fn, arg, v);
  const value = v as number;
  if (dtype === 'int32' && !(Number.isInteger(value) && value >= -(2 ** 31) && value < 2 ** 31)) {
    throw rangeError(fn, arg, 'an integer that an int32 element can hold', show(value));
  }
  if (dtype === 'float32' && Math.abs(value) > FLOAT32_MAX) throw rangeError(fn, arg, 'a number that a float32 element can hold', show(value));
  return value;
}

type TypedKind = 'Float32Array' | 'Float64Array' | 'Int32Array';
type TypedOf<K extends TypedKind> = K extends 'Float32Array' ? Float32Array : K extends 'Float64Array' ? Float64Array : Int32Array;

/** A genuine typed array of one of the given kinds. */
export function checkTypedArray<K extends TypedKind>(fn: string, arg: string, v: unknown, kinds: readonly K[], context = ''): TypedOf<K> {
  const kind = typedArrayKind(v);
  if (!kinds.includes(kind as K)) {
    const expected = kinds.length > 1 ? `a ${kinds.slice(0, -1).join(', ')} or ${kinds[kinds.length - 1]}` : `a ${kinds[0]}`;
    throw typeError(fn, arg, `${expected}${context}`, v);
  }
  return v as TypedOf<K>;
}

export function checkFinite(fn: string, arg: string, data: Float32Array | Float64Array): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) {
      throw rangeError(fn, arg, 'finite (pass { allowNonFinite: true } to allow NaN/Inf)', `${v} at index ${i}`);
    }
  }
}

/** A live Tensor (a genuine one: a Proxy or look-alike is a TypeError). */
export function checkTensor(fn: string, arg: string, t: unknown): Tensor {
  if (!isTensor(t)) throw typeError(fn, arg, 'a Tensor', t);
  t.assertLive(fn, arg);
  return t;
}

/** A tensor that must live on `ctx`. */
export function checkTensorOn(fn: string, arg: string, t: unknown, ctx: Context): Tensor {
  const tensor = checkTensor(fn, arg, t);
  if (tensor.context !== ctx) throw rangeError(fn, arg, `a tensor of the same context (${ctx.device})`, `a tensor of another context (${tensor.device})`);
  return tensor;
}

/** A live Context (a genuine one). */
export function checkContext(fn: string, arg: string, v: unknown): Context {
  if (!isContext(v)) throw typeError(fn, arg, 'a Context', v);
  v.assertLive(fn);
  return v;
}

/** A tensor's dtype, where a wrong one is a TypeError. */
export function checkTensorDType(fn: string, arg: string, t: Tensor, dtypes: readonly DType[]): void {
  if (!dtypes.includes(t.dtype)) throw typeErrorText(fn, arg, `a ${dtypes.join(' or ')} tensor`, `${t.dtype} tensor`);
}

/** A tensor's exact shape. */
export function checkTensorShape(fn: string, arg: string, t: Tensor, shape: readonly number[]): void {
  if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
    throw rangeError(fn, arg, `of shape ${shapeStr(shape)}`, shapeStr(t.shape));
  }
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
