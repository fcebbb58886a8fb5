/**
 * Where queued runs keep their folders: a store that every worker and the submitter reach.
 * Today a directory (a shared filesystem: NFS, a mounted bucket, or one machine's disk), behind
 * a small interface so that an object store can be added: a worker checks a run's folder out
 * to a local path, trains in it, and checks it in when the run ends or stops; the submitter
 * reads the finished folders for the summary. A directory store trains in place, so checking
 * in is a no-op and a killed worker leaves its last checkpoint where the next worker finds it
 * (an object store would also have to upload each new last.safetensors while the run trains).
 *
 * Layout: `<store>/<sweep id>/sweep.json` (the sweep's record), the summary files, and one
 * folder per run, `<store>/<sweep id>/<run name>/`, which holds what `orthornn train --out`
 * writes plus `train.log` (every attempt's output) and `pin.json` (the backend and thread
 * count the run is pinned to, see docs/cluster.md).
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { rangeError } from '../errors';
import { writeFileAtomic } from '../io/files';

/** Files of a run folder that outlive a fresh start: the attempts' log and the pin. */
export const KEPT_ON_CLEAR = ['train.log', 'pin.json'] as const;

export interface RunStore {
  /** Where the store is, for messages and summaries. */
  readonly location: string;
  /** A local folder for the sweep's own files (record, summaries); created when missing. */
  sweepFolder(sweepId: string): Promise<string>;
  /** A local folder with the run's files as last saved (created empty for a new run); the run trains in it. */
  checkout(sweepId: string, run: string): Promise<string>;
  /** Saves what the run wrote in its local folder back to the store. */
  checkin(sweepId: string, run: string): Promise<void>;
  /** Removes a run's training files (all but KEPT_ON_CLEAR), for a fresh start. */
  clear(sweepId: string, run: string): Promise<void>;
  /** A small JSON document in the sweep's folder (`sweep.json`), or undefined when absent. */
  readJson(sweepId: string, file: string): Promise<unknown>;
  writeJson(sweepId: string, file: string, value: unknown): Promise<void>;
}

/** Sweep ids and run names: one path component of letters, digits and `._=-`. */
export function checkName(what: string, name: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._=-]{0,199}$/.test(name)) {
    throw rangeError('sweep', what, "letters, digits and '._=-', starting with a letter or digit (200 at most)", JSON.stringify(name));
  }
  return name;
}

/** A store in a directory: every machine mounts the same folder (its path may differ per machine). */
export class DirectoryStore implements RunStore {
  readonly location: string;

  constructor(dir: string) {
    if (typeof dir !== 'string' || dir === '') throw rangeError('store', '--store', 'a directory', JSON.stringify(dir));
    this.location = path.resolve(dir);
    mkdirSync(this.location, { recursive: true });
  }

  private dirOf(sweepId: string, run?: string): string {
    const parts = [this.location, checkName('sweep id', sweepId)];
    if (run !== undefined) parts.push(checkName('run name', run));
    return path.join(...parts);
  }

  async sweepFolder(sweepId: string): Promise<string> {
    const dir = this.dirOf(sweepId);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  async checkout(sweepId: string, run: string): Promise<string> {
    const dir = this.dirOf(sweepId, run);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  async checkin(): Promise<void> {
    // Trained in place: nothing to copy.
  }

  async clear(sweepId: string, run: string): Promise<void> {
    const dir = this.dirOf(sweepId, run);
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir)) {
      if (!(KEPT_ON_CLEAR as readonly string[]).includes(entry)) rmSync(path.join(dir, entry), { recursive: true, force: true });
    }
  }

  async readJson(sweepId: string, file: string): Promise<unknown> {
    const where = path.join(this.dirOf(sweepId), file);
    return existsSync(where) ? JSON.parse(readFileSync(where, 'utf8')) : undefined;
  }

  async writeJson(sweepId: string, file: string, value: unknown): Promise<void> {
    writeFileAtomic(path.join(await this.sweepFolder(sweepId), file), `${JSON.stringify(value, null, 2)}\n`);
  }
}

/** The store a `--store` value names (a directory; an object store would be a URL scheme here). */
export function openStore(spec: string): RunStore {
  return new DirectoryStore(spec);
}
