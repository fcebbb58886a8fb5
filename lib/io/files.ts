/** Reading data files: one error for an unreadable file, and gzip (by its magic bytes) undone. */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { DataError } from '../errors';

/** The file's bytes; a DataError naming the file when it cannot be read. */
export function readBytes(file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw new DataError(`cannot read '${file}': ${(err as Error).message}`);
  }
}

/** readBytes, gunzipped when the file starts with gzip's magic bytes. */
export function readDataFile(file: string): Buffer {
  const raw = readBytes(file);
  if (raw.length < 2 || raw[0] !== 0x1f || raw[1] !== 0x8b) return raw;
  try {
    return gunzipSync(raw);
  } catch (err) {
    throw new DataError(`'${file}' is not valid gzip: ${(err as Error).message}`);
  }
}
