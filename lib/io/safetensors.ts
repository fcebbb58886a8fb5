/**
 * The safetensors file format (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length, a JSON header `{ name: { dtype, shape, data_offsets }, … ,
 * __metadata__: { string: string } }`, then the tensors' bytes. npm has no maintained
 * implementation for Node, and the format is a page long, so it lives here.
 * Reading trusts nothing in the file: the header length is bounded, names are unique and
 * unambiguous, every tensor's byte range matches its dtype and shape, and the ranges tile the
 * data exactly (no gaps, no overlaps, nothing after the last), all before anything is
 * allocated. Writes are atomic (lib/io/files.ts).
 */
import { DataError, typeError } from '../errors';
import { readBytes, writeFileAtomic } from './files';

export { writeFileAtomic };

export type SafetensorsArray = Float32Array | Float64Array | Int32Array;

export interface SafetensorsEntry {
  data: SafetensorsArray;
  shape: number[];
}

export interface SafetensorsFile {
  tensors: Record<string, SafetensorsEntry>;
  metadata: Record<string, string>;
}

const DTYPES = { F32: Float32Array, F64: Float64Array, I32: Int32Array } as const;
type DtypeName = keyof typeof DTYPES;

function dtypeOf(a: SafetensorsArray): DtypeName {
  if (a instanceof Float32Array) return 'F32';
  if (a instanceof Float64Array) return 'F64';
  return 'I32';
}

/** The file's bytes: header (padded with spaces to 8 bytes) and data, tensors in the given order. */
export function encodeSafetensors(file: SafetensorsFile): Buffer {
  const header: Record<string, unknown> = {};
  if (Object.keys(file.metadata).length > 0) header.__metadata__ = file.metadata;
  let offset = 0;
  for (const [name, { data, shape }] of Object.entries(file.tensors)) {
    if (name === '__metadata__') throw new DataError("safetensors: a tensor may not be named '__metadata__'");
    const count = shape.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new DataError(`safetensors: tensor '${name}' has ${data.length} values for shape [${shape.join(', ')}]`);
    header[name] = { dtype: dtypeOf(data), shape, data_offsets: [offset, offset + data.byteLength] };
    offset += data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const { data } of Object.values(file.tensors)) {
    Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, at);
    at += data.byteLength;
  }
  return out;
}


/** The reference implementation's limit on the header (100 MB). */
export const MAX_HEADER_BYTES = 100_000_000;
/** More dimensions than any tensor of a model has. */
const MAX_RANK = 16;
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** The first key that occurs twice in one object of a valid JSON text (JSON.parse keeps the last silently). */
function duplicateKey(json: string): string | undefined {
  const objects: (Set<string> | null)[] = [];
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '{') objects.push(new Set());
    else if (c === '[') objects.push(null);
    else if (c === '}' || c === ']') objects.pop();
    else if (c === '"') {
      let j = i + 1;
      while (json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      const keys = objects[objects.length - 1];
      if (keys) {
        let k = j + 1;
        while (json[k] === ' ' || json[k] === '\t' || json[k] === '\n' || json[k] === '\r') k++;
        if (json[k] === ':') {
          const key = JSON.parse(json.slice(i, j + 1)) as string;
          if (keys.has(key)) return key;
          keys.add(key);
        }
      }
      i = j;
    }
  }
  return undefined;
}

/** A name as a reader would see it: compatibility-normalised, invisible characters dropped. */
function lookOf(name: string): string {
  return name.normalize('NFKC').replace(/\p{Cf}/gu, '').trim();
}

/** Sets an own property, also for names such as '__proto__' that assignment would treat specially. */
export function setOwn<T>(target: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}

/** Parses safetensors bytes (a Buffer or any Uint8Array); `source` names the file in errors. */
export function decodeSafetensors(bytes: Uint8Array, source = 'safetensors data'): SafetensorsFile {
  const fn = 'decodeSafetensors';
  if (!(bytes instanceof Uint8Array)) throw typeError(fn, 'bytes', 'a Buffer or Uint8Array', bytes);
  if (typeof source !== 'string') throw typeError(fn, 'source', 'a string', source);
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (what: string) => new DataError(`'${source}' is not a valid safetensors file: ${what}`);
  if (buf.length < 8) throw bad(`${buf.length} bytes, shorter than the 8-byte header length`);
  const declared = buf.readBigUInt64LE(0);
  if (declared > BigInt(MAX_HEADER_BYTES)) throw bad(`the header length ${declared} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (declared > BigInt(buf.length - 8)) throw bad(`the header length ${declared} exceeds the file (${buf.length} bytes)`);
  const headerLength = Number(declared);
  if (headerLength < 2) throw bad(`the header length ${headerLength} is too short for a JSON object`);
  const dataStart = 8 + headerLength;
  let text: string;
  try {
    text = UTF8.decode(buf.subarray(8, dataStart));
  } catch {
    throw bad('the header is not UTF-8');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    throw bad(`the header is not JSON (${(err as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw bad('the header is not a JSON object');
  const twice = duplicateKey(text);
  if (twice !== undefined) throw bad(`the header names ${JSON.stringify(twice)} twice`);
  const entries = header as Record<string, unknown>;

  const metadata: Record<string, string> = {};
  const dataLength = buf.length - dataStart;
  const planned: { name: string; Ctor: (typeof DTYPES)[DtypeName]; shape: number[]; count: number; begin: number; end: number }[] = [];
  const looks = new Map<string, string>();
  for (const name of Object.keys(entries)) {
    const value = entries[name];
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad('__metadata__ is not an object');
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw bad(`metadata ${JSON.stringify(k)} is not a string`);
        setOwn(metadata, k, v);
      }
      continue;
    }
    const label = `tensor ${JSON.stringify(name)}`;
    if (name.length === 0 || /[\p{Cc}\p{Cf}]/u.test(name)) throw bad(`${label}: names may not be empty or hold control or invisible characters`);
    const look = lookOf(name);
    const twin = looks.get(look);
    if (twin !== undefined) throw bad(`${label} looks the same as tensor ${JSON.stringify(twin)}`);
    looks.set(look, name);
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad(`${label} is ${value === null ? 'null' : Array.isArray(value) ? 'an array' : `a ${typeof value}`}, not an object`);
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof info.dtype !== 'string' || !Object.hasOwn(DTYPES, info.dtype)) throw bad(`${label} has dtype ${JSON.stringify(info.dtype) ?? 'undefined'} (supported: F32, F64, I32)`);
    const Ctor = DTYPES[info.dtype as DtypeName];
    const shape = info.shape, offsets = info.data_offsets;
    if (!Array.isArray(shape) || shape.length > MAX_RANK || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`${label} has shape ${JSON.stringify(shape) ?? 'undefined'}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`${label} has data_offsets ${JSON.stringify(offsets) ?? 'undefined'}`);
    const [begin, end] = offsets as number[];
    const where = `${label} (${info.dtype} [${shape.join(', ')}]) has data_offsets [${begin}, ${end}] in ${dataLength} bytes of data`;
    // The product is bounded by the data it must fit in before it can overflow.
    const limit = dataLength / Ctor.BYTES_PER_ELEMENT;
    let count = shape.includes(0) ? 0 : 1;
    for (const d of shape as number[]) {
      if (count === 0) break;
      count *= d;
      if (count > limit) throw bad(`${where}, fewer than its shape needs`);
    }
    if (end < begin || end > dataLength || end - begin !== count * Ctor.BYTES_PER_ELEMENT) throw bad(where);
    planned.push({ name, Ctor, shape: [...(shape as number[])], count, begin, end });
  }
  // The byte ranges, in order, must cover the data exactly once.
  const order = [...planned].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (const t of order) {
    if (t.begin < covered) throw bad(`tensor ${JSON.stringify(t.name)}'s bytes [${t.begin}, ${t.end}) overlap the previous tensor's (which end at ${covered})`);
    if (t.begin > covered) throw bad(`a gap of bytes [${covered}, ${t.begin}) before tensor ${JSON.stringify(t.name)}`);
    covered = t.end;
  }
  if (covered !== dataLength) throw bad(`${dataLength - covered} bytes after the last tensor`);

  const tensors: Record<string, SafetensorsEntry> = {};
  for (const { name, Ctor, shape, count, begin, end } of planned) {
    // Copied into an aligned array of its own.
    const data = new Ctor(count);
    Buffer.from(data.buffer).set(buf.subarray(dataStart + begin, dataStart + end));
    setOwn(tensors, name, { data, shape });
  }
  return { tensors, metadata };
}

export function readSafetensors(file: string): SafetensorsFile {
  return decodeSafetensors(readBytes(file), file);
}

/** Writes atomically: a reader sees the old file or the whole new one, never a torn one. */
export function writeSafetensors(file: string, contents: SafetensorsFile): void {
  writeFileAtomic(file, encodeSafetensors(contents));
}
