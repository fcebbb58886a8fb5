/**
 * The safetensors file format (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length, a JSON header `{ name: { dtype, shape, data_offsets }, … ,
 * __metadata__: { string: string } }`, then the tensors' bytes. npm has no maintained
 * implementation for Node, and the format is a page long, so it lives here.
 * Writes are atomic: a temporary file in the same folder, fsync, then rename.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { DataError } from '../errors';
import { readBytes } from './files';

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

/** Parses safetensors bytes; `source` names the file in errors. */
export function decodeSafetensors(bytes: Buffer, source = 'safetensors data'): SafetensorsFile {
  const bad = (what: string) => new DataError(`'${source}' is not a valid safetensors file: ${what}`);
  if (bytes.length < 8) throw bad(`${bytes.length} bytes, shorter than the 8-byte header length`);
  const headerLength = bytes.readBigUInt64LE(0);
  if (headerLength > BigInt(bytes.length - 8)) throw bad(`the header length ${headerLength} exceeds the file`);
  const dataStart = 8 + Number(headerLength);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(bytes.subarray(8, dataStart).toString('utf8'));
  } catch (err) {
    throw bad(`the header is not JSON (${(err as Error).message})`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw bad('the header is not a JSON object');
  const metadata: Record<string, string> = {};
  const tensors: Record<string, SafetensorsEntry> = {};
  const dataLength = bytes.length - dataStart;
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object') throw bad('__metadata__ is not an object');
      for (const [k, v] of Object.entries(value)) {
        if (typeof v !== 'string') throw bad(`metadata '${k}' is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const info = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof info.dtype !== 'string' || !(info.dtype in DTYPES)) throw bad(`tensor '${name}' has dtype ${JSON.stringify(info.dtype)} (supported: F32, F64, I32)`);
    const shape = info.shape, offsets = info.data_offsets;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`tensor '${name}' has shape ${JSON.stringify(shape)}`);
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((d) => Number.isSafeInteger(d) && d >= 0)) throw bad(`tensor '${name}' has data_offsets ${JSON.stringify(offsets)}`);
    const Ctor = DTYPES[info.dtype as DtypeName];
    const [begin, end] = offsets as number[];
    const count = (shape as number[]).reduce((a, b) => a * b, 1);
    if (end < begin || end > dataLength || end - begin !== count * Ctor.BYTES_PER_ELEMENT) {
      throw bad(`tensor '${name}' (${info.dtype} [${shape.join(', ')}]) has data_offsets [${begin}, ${end}] in ${dataLength} bytes of data`);
    }
    // Copy into an aligned array of its own.
    const data = new Ctor(count);
    Buffer.from(data.buffer).set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors[name] = { data, shape: shape as number[] };
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

export function writeFileAtomic(file: string, bytes: Buffer | string): void {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(temp, 'w');
    writeSync(fd, typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(temp, file);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(temp);
    } catch {
      // already gone
    }
    throw new DataError(`cannot write '${file}': ${(err as Error).message}`);
  }
}
