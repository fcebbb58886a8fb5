/** Reading data files: one error for an unreadable file, and gzip (by its magic bytes) undone. */
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { DataError } from '../errors';

export function readDataFile(file: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (err) {
    throw new DataError(`cannot read '${file}': ${(err as Error).message}`);
  }
  if (raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b) {
    try {
      raw = gunzipSync(raw);
    } catch (err) {
      throw new DataError(`'${file}' is not valid gzip: ${(err as Error).message}`);
    }
  }
  return raw;
}
