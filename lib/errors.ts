/**
 * Errors raised by orthornn. Wrong types are `TypeError`s and bad shapes or values are
 * `RangeError`s (both with a `code`); everything else is an {@link OrthornnError} subclass.
 * The native addon raises these very classes (they are handed to it at load time).
 */

export type ErrorCode =
  | 'ERR_ORTHORNN_TYPE'
  | 'ERR_ORTHORNN_RANGE'
  | 'ERR_ORTHORNN_DISPOSED'
  | 'ERR_ORTHORNN_NUMERIC'
  | 'ERR_ORTHORNN_UNSUPPORTED'
  | 'ERR_ORTHORNN_DEVICE'
  | 'ERR_ORTHORNN_OUT_OF_MEMORY'
  | 'ERR_ORTHORNN_INTERNAL'
  | 'ERR_ORTHORNN_NATIVE_LOAD'
  | 'ERR_ORTHORNN_DATA'
  | 'ERR_ORTHORNN_MISSING_PACKAGE';

export class OrthornnError extends Error {
  readonly code: ErrorCode;
  constructor(message: string, code: ErrorCode = 'ERR_ORTHORNN_INTERNAL') {
    super(message);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A tensor or context was used after `dispose()`. */
export class DisposedError extends OrthornnError {
  constructor(message: string) {
    super(message, 'ERR_ORTHORNN_DISPOSED');
  }
}

/** A singular matrix, a factorisation that did not converge, NaN/Inf where forbidden. */
export class NumericError extends OrthornnError {
  constructor(message: string) {
    super(message, 'ERR_ORTHORNN_NUMERIC');
  }
}

/** The backend does not implement this op for this dtype (see `Context.supports`). */
export class UnsupportedError extends OrthornnError {
  constructor(message: string) {
    super(message, 'ERR_ORTHORNN_UNSUPPORTED');
  }
}

/** A device is unavailable, or a device or library call failed. */
export class DeviceError extends OrthornnError {
  constructor(message: string) {
    super(message, 'ERR_ORTHORNN_DEVICE');
  }
}

export class OutOfMemoryError extends OrthornnError {
  constructor(message: string) {
    super(message, 'ERR_ORTHORNN_OUT_OF_MEMORY');
  }
}

/** A broken invariant inside orthornn: please report it. */
export class InternalError extends OrthornnError {
  constructor(message: string) {
    super(message, 'ERR_ORTHORNN_INTERNAL');
  }
}

/** The native addon could not be loaded; the message lists the fixes. */
export class NativeLoadError extends OrthornnError {
  constructor(message: string) {
    super(message, 'ERR_ORTHORNN_NATIVE_LOAD');
  }
}

/** A data file is missing, unreadable or malformed. */
export class DataError extends OrthornnError {
  constructor(message: string) {
    super(message, 'ERR_ORTHORNN_DATA');
  }
}

/** The error classes of the codes that have one (the addon raises these; a worker's errors are revived by them). */
export const ERROR_CLASSES: Partial<Record<ErrorCode, new (message: string) => OrthornnError>> = {
  ERR_ORTHORNN_DISPOSED: DisposedError,
  ERR_ORTHORNN_NUMERIC: NumericError,
  ERR_ORTHORNN_UNSUPPORTED: UnsupportedError,
  ERR_ORTHORNN_DEVICE: DeviceError,
  ERR_ORTHORNN_OUT_OF_MEMORY: OutOfMemoryError,
  ERR_ORTHORNN_INTERNAL: InternalError,
  ERR_ORTHORNN_DATA: DataError,
};

function withCode<E extends Error>(err: E, code: ErrorCode): E {
  Object.defineProperty(err, 'code', { value: code, enumerable: true });
  return err;
}

/** `TypeError` with the one message template: argument, expectation, what was given. */
export function typeError(fn: string, arg: string, expected: string, got: unknown): TypeError {
  return typeErrorText(fn, arg, expected, describe(got));
}

/** The same, with what was given already put in words. */
export function typeErrorText(fn: string, arg: string, expected: string, got: string): TypeError {
  return withCode(new TypeError(`${fn}: argument '${arg}' must be ${expected}, got ${got}`), 'ERR_ORTHORNN_TYPE');
}

/** `RangeError` with the one message template. */
export function rangeError(fn: string, arg: string, expected: string, got: string): RangeError {
  return withCode(new RangeError(`${fn}: argument '${arg}' must be ${expected}, got ${got}`), 'ERR_ORTHORNN_RANGE');
}

// %TypedArray%.prototype[@@toStringTag] reads the internal slot: no Proxy trap or prototype trick reaches it.
const typedArrayTag = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Int8Array.prototype), Symbol.toStringTag)!.get!;

/** 'Float32Array', 'Uint8Array', …, for a genuine typed array; undefined for anything else. */
export function typedArrayKind(v: unknown): string | undefined {
  return typedArrayTag.call(v) as string | undefined;
}

/** What was given, in words, for a TypeError: its type and, for a primitive, its value. */
export function describe(v: unknown): string {
  try {
    if (v === null) return 'null';
    if (v === undefined) return 'undefined';
    if (typeof v === 'function') return 'a function';
    if (typeof v === 'symbol') return 'a symbol';
    if (typeof v === 'string') return `'${v.length > 40 ? `${v.slice(0, 40)}…` : v}'`;
    if (typeof v !== 'object') return `${typeof v} ${String(v)}`;
    if (Array.isArray(v)) return `an array of length ${v.length}`;
    const kind = typedArrayKind(v);
    if (kind !== undefined) return kind;
    return (v as object).constructor?.name ?? 'an object';
  } catch {
    // A revoked Proxy, or a Proxy or getter that throws.
    return 'an object whose properties cannot be read';
  }
}

/** A given value for a RangeError: numbers as they are, anything else as describe() puts it. */
export function show(v: unknown): string {
  if (typeof v === 'number') return String(v);
  if (typeof v === 'bigint') return `${v}n`;
  return describe(v);
}

/** A feature needs an optional package that is not installed (`packages`: what to install). */
export class MissingPackageError extends OrthornnError {
  readonly packages: string[];
  constructor(message: string, packages: string[]) {
    super(message, 'ERR_ORTHORNN_MISSING_PACKAGE');
    this.packages = packages;
  }
}
