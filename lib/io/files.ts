/**
 * Reading and writing the files of a run: one error for an unreadable file, gzip (by its magic
 * bytes) undone, and writes that never leave a torn file behind. A write goes to a temporary
 * `.<name>.<pid>.tmp` in the target's folder; every byte is written (writeSync may write
 * fewer than asked), the file is flushed to the disk, closed, renamed over the target, and the
 * folder is flushed so that the rename survives a crash. Any failure (a full disk, a read-only
 * folder) removes the temporary and leaves the previous file as it was.
 */
import { open, rename, unlink } from 'node:fs/promises';
import { closeSync, fstatSync, fsyncSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { DataError } from '../errors';

/**
 * A DataError whose message ends with the cause's (which starts with its errno code, e.g.
 * "ENOSPC: no space left on device"), and which keeps the cause as `cause`.
 */
export function fileError(message: string, cause: unknown): DataError {
  const err = new DataError(`${message}: ${cause instanceof Error ? cause.message : String(cause)}`);
  Object.defineProperty(err, 'cause', { value: cause, writable: true, configurable: true, enumerable: false });
  return err;
}

/** The file's bytes; a DataError naming the file when it cannot be read or is not a regular file. */
export function readBytes(file: string): Buffer {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    // A folder, a FIFO or a device (/dev/zero) is never a data file.
    if (!fstatSync(fd).isFile()) throw new DataError(`cannot read '${file}': not a regular file`);
    return readFileSync(fd);
  } catch (err) {
    if (err instanceof DataError) throw err;
    throw fileError(`cannot read '${file}'`, err);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** readBytes, gunzipped when the file starts with gzip's magic bytes. */
export function readDataFile(file: string): Buffer {
  const raw = readBytes(file);
  if (raw.length < 2 || raw[0] !== 0x1f || raw[1] !== 0x8b) return raw;
  try {
    return gunzipSync(raw);
  } catch (err) {
    throw fileError(`'${file}' is not valid gzip`, err);
  }
}

const TEMPORARY = /^\.(.+)\.(\d+)\.tmp$/;

/** The temporary a write of `file` by this process goes through. */
export function temporaryOf(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`);
}

/** Writes `bytes` from `offset` to the end, however many calls that takes. */
function writeAll(fd: number, bytes: Uint8Array): void {
  let offset = 0;
  while (offset < bytes.length) {
    const written = writeSync(fd, bytes, offset, bytes.length - offset);
    if (!(written > 0)) {
      throw Object.assign(new Error(`ENOSPC: the disk took no more bytes after ${offset} of ${bytes.length}`), { code: 'ENOSPC' });
    }
    offset += written;
  }
}

/** Some file systems cannot flush a folder; a rename in them is then as durable as they allow. */
function cannotFlushFolders(err: unknown): boolean {
  return ['EINVAL', 'ENOTSUP', 'EISDIR', 'EPERM', 'EACCES'].includes((err as { code?: string }).code ?? '');
}

/** Flushes a folder's entries (a rename inside it) to the disk. */
function syncFolder(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch (err) {
    if (!cannotFlushFolders(err)) throw err;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Replaces `file` with `bytes` (a string is written as UTF-8) atomically: a reader sees the
 * old file or the whole new one. On failure the old file is untouched, the temporary is gone,
 * and the DataError names the file and the cause ("cannot write 'runs/x/last.safetensors':
 * ENOSPC: no space left on device"), which stays reachable as `err.cause` with its `code`.
 */
export function writeFileAtomic(file: string, bytes: Uint8Array | string): void {
  const data = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  const temp = temporaryOf(file);
  let fd: number | undefined;
  let created = false;
  try {
    // A leftover of an earlier process with this pid goes; 'wx' never follows a planted link.
    try {
      unlinkSync(temp);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
    }
    fd = openSync(temp, 'wx', 0o666);
    created = true;
    writeAll(fd, data);
    fsyncSync(fd);
    const open = fd;
    fd = undefined;
    closeSync(open);
    renameSync(temp, file);
    created = false;
    syncFolder(path.dirname(file));
  } catch (err) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // the write's own error is the one to report
      }
    }
    if (created) {
      try {
        unlinkSync(temp);
      } catch {
        // already gone
      }
    }
    throw fileError(`cannot write '${file}'`, err);
  }
}

/** Files this process is writing with writeFileAtomicAsync: their writes, chained in call order. */
const inFlight = new Map<string, Promise<void>>();

/**
 * writeFileAtomic with the writes and flushes done off the JS thread (libuv's pool), so a
 * checkpoint of many megabytes never stalls the event loop. Writes of the same file by this
 * process run one after the other, in call order. Rejects with the same DataError.
 */
export function writeFileAtomicAsync(file: string, bytes: Uint8Array | string): Promise<void> {
  const data = typeof bytes === 'string' ? Buffer.from(bytes, 'utf8') : bytes;
  const key = path.resolve(file);
  const write = (inFlight.get(key) ?? Promise.resolve()).catch(() => undefined).then(() => writeOnce(file, data));
  inFlight.set(key, write);
  const settled = () => {
    if (inFlight.get(key) === write) inFlight.delete(key);
  };
  write.then(settled, settled);
  return write;
}

async function writeOnce(file: string, data: Uint8Array): Promise<void> {
  const temp = temporaryOf(file);
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  let created = false;
  try {
    await unlink(temp).catch((err: { code?: string }) => {
      if (err.code !== 'ENOENT') throw err;
    });
    handle = await open(temp, 'wx', 0o666);
    created = true;
    let offset = 0;
    while (offset < data.length) {
      const { bytesWritten } = await handle.write(data, offset, data.length - offset);
      if (!(bytesWritten > 0)) {
        throw Object.assign(new Error(`ENOSPC: the disk took no more bytes after ${offset} of ${data.length}`), { code: 'ENOSPC' });
      }
      offset += bytesWritten;
    }
    await handle.sync();
    const h = handle;
    handle = undefined;
    await h.close();
    await rename(temp, file);
    created = false;
    await syncFolderAsync(path.dirname(file));
  } catch (err) {
    await handle?.close().catch(() => undefined);
    if (created) await unlink(temp).catch(() => undefined);
    throw fileError(`cannot write '${file}'`, err);
  }
}

async function syncFolderAsync(dir: string): Promise<void> {
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    if (!cannotFlushFolders(err)) throw err;
  } finally {
    await handle?.close();
  }
}

/** Whether a process with this id is running (one of another user counts as running). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === 'EPERM';
  }
}

/** Whether a running process is a different program than this one (Linux; false when it cannot tell). */
function otherProgram(pid: number): boolean {
  try {
    return readlinkSync(`/proc/${pid}/exe`) !== readlinkSync('/proc/self/exe');
  } catch {
    return false;
  }
}

/**
 * Removes the temporaries (`.<name>.<pid>.tmp`) that saves killed midway left in `dir`: those
 * of processes no longer running, of this very process unless writeFileAtomicAsync is writing
 * that file now (otherwise it is an earlier process's that had the same id), and of
 * processes that now run another program. Returns the paths removed; a folder that cannot be
 * listed has none.
 */
export function removeStaleTemporaries(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const match = TEMPORARY.exec(name);
    if (!match) continue;
    const pid = Number(match[2]);
    const file = path.join(dir, name);
    const ours = pid === process.pid;
    if (ours && inFlight.has(path.resolve(dir, match[1]))) continue; // a write of this process under way
    const stale = !Number.isSafeInteger(pid) || pid <= 0 || ours || !alive(pid) || otherProgram(pid);
    if (!stale) continue;
    try {
      unlinkSync(file);
      removed.push(file);
    } catch {
      // removed by someone else meanwhile, or not ours to remove
    }
  }
  return removed;
}
