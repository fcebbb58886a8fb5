/** Argument checks with one message template (see errors.ts). */
import { rangeError, typeError } from './errors';
import type { DType } from './native';
import { Tensor } from './tensor';

export function checkOptions(fn: string, options: unknown, allowed: readonly string[]): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw typeError(fn, 'options', 'an object', options);
  }
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw rangeError(fn, 'options', `made of ${allowed.map((k) => `'${k}'`).join(', ')}`, `unknown option '${key}'`);
    }
  }
}

export function checkShape(fn: string, arg: string, shape: unknown): asserts shape is readonly number[] {
  if (!Array.isArray(shape)) throw typeError(fn, arg, 'an array of non-negative integers', shape);
  for (const d of shape) {
    if (typeof d !== 'number') throw typeError(fn, arg, 'an array of non-negative integers', shape);
    if (!Number.isSafeInteger(d) || d < 0) throw rangeError(fn, arg, 'an array of non-negative integers', `[${shape.join(', ')}]`);
  }
}

export function checkDType(fn: string, arg: string, dtype: unknown): asserts dtype is DType {
  if (dtype !== 'float32' && dtype !== 'float64' && dtype !== 'int32') {
    throw rangeError(fn, arg, "'float32', 'float64' or 'int32'", String(dtype));
  }
}

export function checkFloatDType(fn: string, arg: string, dtype: unknown): void {
  if (dtype !== 'float32' && dtype !== 'float64') throw rangeError(fn, arg, "'float32' or 'float64'", String(dtype));
}

export function checkSeed(fn: string, arg: string, seed: unknown): void {
  if (typeof seed !== 'number') throw typeError(fn, arg, 'a number', seed);
  if (!Number.isSafeInteger(seed) || seed < 0) throw rangeError(fn, arg, 'a non-negative safe integer', String(seed));
}

export function checkNumber(fn: string, arg: string, v: unknown): asserts v is number {
  if (typeof v !== 'number') throw typeError(fn, arg, 'a number', v);
  if (!Number.isFinite(v)) throw rangeError(fn, arg, 'a finite number', String(v));
}

export function checkFinite(fn: string, arg: string, data: Float32Array | Float64Array): void {
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v - v !== 0) {
      throw rangeError(fn, arg, 'finite (pass { allowNonFinite: true } to allow NaN/Inf)', `${v} at index ${i}`);
    }
  }
}

/** Checks a tensor argument: a live Tensor, optionally of a given context. */
export function checkTensor(fn: string, arg: string, t: unknown): asserts t is Tensor {
  if (!(t instanceof Tensor)) throw typeError(fn, arg, 'a Tensor', t);
  t.assertLive(fn, arg);
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}
