/**
 * Checkpoints cannot be lost, and files from elsewhere cannot hurt: a full disk fails a run
 * with one coded line while every checkpoint it leaves loads; hostile safetensors files and
 * configs are refused with coded errors before anything large is allocated; `orthornn eval`
 * of a hostile 7 KB checkpoint stays under 200 MB; corrupt run folders are clean errors.
 *
 * The full disk is a real one: a tmpfs of a few hundred KB (mounting needs root, as in CI).
 * Where mounting is refused, the test says why and fills files against a file-size limit
 * (`ulimit -f`) instead, where writes fail with EFBIG (Node ignores SIGXFSZ).
 * ORTHORNN_TEST_NO_MOUNT=1 forces that path; ORTHORNN_FUZZ_FILES sets the number of mutated
 * files (default 3000).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { evalCheckpoint } from '../lib/cli/eval';
import { Context } from '../lib/context';
import { DataError, NumericError } from '../lib/errors';
import { readBytes, removeStaleTemporaries, writeFileAtomic } from '../lib/io/files';
import { decodeSafetensors, encodeSafetensors, MAX_HEADER_BYTES } from '../lib/io/safetensors';
import {
  checkCheckpointShapes,
  checkOrthogonalFactors,
  decodeCheckpoint,
  expectedParameterShapes,
  ORTHOGONALITY_LIMIT,
  readCheckpoint,
  writeCheckpoint,
} from '../lib/train/checkpoint';
import { resolveConfig, type TrainConfig } from '../lib/train/config';
import { CopyTask } from '../lib/tasks/copy';
import { createSource } from '../lib/train/sources';
import { createModel, evaluate } from '../lib/train/trainer';
import { announceSeed, rng, TEST_SEED } from './helpers';

const ROOT = path.join(__dirname, '..');
const TINY = ['--task', 'copy', '--delay', '5', '--hidden', '16', '--batch-size', '8', '--valid-every', '5', '--valid-size', '40', '--checkpoint-every', '5', '--plot-format', 'none'];

/** Whether an error carries one of orthornn's codes. */
function coded(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_ORTHORNN_');
}

/** Runs `orthornn …` from its sources, optionally under a file-size limit in KiB. */
function cli(args: string[], options: { fileLimitKiB?: number } = {}) {
  const node = [process.execPath, '--import', 'tsx', path.join(ROOT, 'lib/cli/main.ts'), ...args];
  const quoted = node.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const r = options.fileLimitKiB === undefined
    ? spawnSync(node[0], node.slice(1), { cwd: ROOT, encoding: 'utf8', timeout: 120_000 })
    : spawnSync('bash', ['-c', `ulimit -f ${options.fileLimitKiB} && exec ${quoted}`], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Mounts a tmpfs of `size` at `dir`; the reason when that is refused. */
function mountTmpfs(dir: string, size: string): string | undefined {
  if (process.env.ORTHORNN_TEST_NO_MOUNT) return 'ORTHORNN_TEST_NO_MOUNT is set';
  if (process.platform !== 'linux') return `tmpfs needs Linux, this is ${process.platform}`;
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.error) return `mount could not run (${r.error.message})`;
  if (r.status !== 0) return `mount was refused (${(r.stderr || r.stdout).trim() || `exit code ${r.status}`})`;
  return undefined;
}

/** Every file a run left must be whole: checkpoints load, config.json parses, no temporaries. */
function checkRunFolder(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const names = readdirSync(dir);
  assert.deepEqual(names.filter((n) => n.endsWith('.tmp')), [], `temporaries left in ${dir}`);
  for (const name of names) {
    const file = path.join(dir, name);
    if (name.endsWith('.safetensors')) {
      const ckpt = readCheckpoint(file);
      assert.ok(ckpt.step > 0, `${file}: step ${ckpt.step}`);
      assert.deepEqual(Object.keys(ckpt.parameters).sort(), ['U', 'V', 'W_in', 'W_out', 'b', 'c', 'p']);
    }
    if (name === 'config.json') assert.equal(JSON.parse(readFileSync(file, 'utf8')).hidden, 16, file);
  }
  return names;
}

/** The file a disk-full message names (which write failed). */
function failedWrite(message: string): string {
  return /cannot (?:write|create the run folder) '([^']+)'/.exec(message)?.[1]?.split('/').pop() ?? 'elsewhere';
}

/** A safetensors file from a raw header (an object, or text as is) and data bytes. */
function rawSafetensors(header: unknown, data: Uint8Array = new Uint8Array(0), declared?: bigint): Buffer {
  let text = typeof header === 'string' ? header : JSON.stringify(header);
  text += ' '.repeat((8 - (Buffer.byteLength(text) % 8)) % 8);
  const head = Buffer.from(text, 'utf8');
  const out = Buffer.alloc(8 + head.length + data.length);
  out.writeBigUInt64LE(declared ?? BigInt(head.length), 0);
  head.copy(out, 8);
  out.set(data, 8 + head.length);
  return out;
}

/** A checkpoint's header and data, for editing. */
function split(bytes: Buffer): { header: Record<string, { dtype: string; shape: number[]; data_offsets: number[] } | Record<string, string>>; data: Buffer } {
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')), data: Buffer.from(bytes.subarray(8 + n)) };
}

type Entry = { dtype: string; shape: number[]; data_offsets: number[] };

describe('92 checkpoint safety: full disks, hostile files, bounded evaluation', function () {
  this.timeout(600_000);
  let tmp: string;
  let ctx: Context;
  /** A valid checkpoint of the tiny copy model, with RMSprop state. */
  let good: Buffer;
  let config: TrainConfig;
  before(async () => {
    announceSeed();
    tmp = mkdtempSync(path.join(os.tmpdir(), 'orthornn-92-'));
    ctx = new Context();
    config = resolveConfig({ task: 'copy', delay: 5, hidden: 16, batchSize: 8, validSize: 40, seed: 3 });
    const source = createSource(config);
    const model = await createModel(config, source, ctx);
    const parameters = await model.state();
    const shapes = Object.fromEntries(Object.entries(model.parameters).map(([k, t]) => [k, t.shape]));
    const optimizer: Record<string, Float32Array> = {};
    for (const name of ['W_in', 'b', 'W_out', 'c', 'p']) optimizer[`${name}.square_avg`] = new Float32Array(parameters[name].length).fill(1e-3);
    model.dispose();
    const file = path.join(tmp, 'good.safetensors');
    writeCheckpoint(file, { config, step: 10, parameters, optimizer, optimizerSteps: { weights: 10, others: 10, spectrum: 10 }, source: source.state(), shapes });
    good = readFileSync(file);
  });
  after(() => {
    ctx.dispose();
    rmSync(tmp, { recursive: true, force: true });
  });

  /** The good checkpoint with its header edited (and optionally its data). */
  const edited = (edit: (header: Record<string, Entry>, data: Buffer) => Buffer | void) => {
    const { header, data } = split(good);
    const replaced = edit(header as Record<string, Entry>, data);
    return rawSafetensors(header, replaced ?? data);
  };
  const configOf = (changes: Partial<TrainConfig>) =>
    edited((h) => {
      const meta = h.__metadata__ as unknown as Record<string, string>;
      meta.config = JSON.stringify({ ...JSON.parse(meta.config), ...changes });
    });

  describe('writes', () => {
    it('writeFileAtomic writes text and bytes, leaves no temporary, and names the file and errno when it cannot', () => {
      const file = path.join(tmp, 'w', 'config.json');
      mkdirSync(path.dirname(file));
      writeFileAtomic(file, '{"a": "é"}\n');
      assert.equal(readFileSync(file, 'utf8'), '{"a": "é"}\n');
      writeFileAtomic(file, new Uint8Array([1, 2, 3]));
      assert.deepEqual([...readFileSync(file)], [1, 2, 3]);
      assert.deepEqual(readdirSync(path.dirname(file)), ['config.json']);
      const missing = path.join(tmp, 'nowhere', 'x.json');
      assert.throws(() => writeFileAtomic(missing, 'x'), (e: Error & { cause?: { code?: string } }) =>
        e instanceof DataError && e.message.startsWith(`cannot write '${missing}': ENOENT`) && e.cause?.code === 'ENOENT');
    });

    it('removeStaleTemporaries removes what killed saves left (dead, reused or our own pids) and keeps live saves', async () => {
      const dir = path.join(tmp, 'stale');
      mkdirSync(dir);
      const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
      const sleeper = spawn('sleep', ['30']);
      const sibling = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
      try {
        const names = {
          dead: `.last.safetensors.${dead}.tmp`,
          ours: `.best.safetensors.${process.pid}.tmp`,
          reused: `.config.json.${sleeper.pid}.tmp`,
          live: `.last.safetensors.${sibling.pid}.tmp`,
        };
        for (const n of [...Object.values(names), 'last.safetensors', '.hidden', 'x.123.tmp']) writeFileSync(path.join(dir, n), 'x');
        const removed = removeStaleTemporaries(dir).map((f) => path.basename(f)).sort();
        assert.deepEqual(removed, [names.dead, names.ours, names.reused].sort());
        assert.deepEqual(readdirSync(dir).sort(), [names.live, '.hidden', 'last.safetensors', 'x.123.tmp'].sort());
        assert.deepEqual(removeStaleTemporaries(path.join(tmp, 'no-such-folder')), []);
      } finally {
        sleeper.kill();
        sibling.kill();
      }
    });

    describe('a full disk', () => {
      const mnt = path.join(os.tmpdir(), `orthornn-92-disk-${process.pid}`);
      let mounted = false;
      let why: string | undefined;
      const SIZE = 256 * 1024;
      before(() => {
        mkdirSync(mnt, { recursive: true });
        why = mountTmpfs(mnt, `${SIZE / 1024}k`);
        mounted = why === undefined;
        if (!mounted) console.log(`      no tmpfs: ${why}; filling files against a file-size limit (ulimit -f, EFBIG) instead`);
      });
      after(() => {
        if (mounted) spawnSync('umount', [mnt]);
        rmSync(mnt, { recursive: true, force: true });
      });
      const clear = () => {
        for (const n of readdirSync(mnt)) rmSync(path.join(mnt, n), { recursive: true, force: true });
      };
      /** Fills the tmpfs but about `free` bytes (it counts whole pages). */
      const fill = (free: number) => {
        const { bavail, bsize } = statfsSync(mnt);
        const size = Math.max(0, bavail * bsize - free);
        if (size > 0) writeFileSync(path.join(mnt, 'filler'), Buffer.alloc(size, 1));
      };

      it('orthornn train: 20 runs that fill the disk at different points each fail with one ENOSPC line and leave whole checkpoints', () => {
        const r = rng(TEST_SEED + 92);
        const failed: Record<string, number> = {};
        let resumes = 0;
        for (let trial = 0; trial < 20; trial++) {
          let args: string[], limit: number | undefined;
          const out = path.join(mounted ? mnt : tmp, mounted ? 'run' : `limited-${trial}`);
          if (mounted) {
            clear();
            fill(Math.floor(((trial + r()) / 20) * (SIZE - 16 * 1024)));
            args = ['train', ...TINY, '--steps', '1000000', '--out', out];
          } else {
            limit = 2 + Math.floor((trial + r()) * 2);
            args = ['train', ...TINY, '--steps', '1000000', '--out', out];
          }
          const res = cli(args, { fileLimitKiB: limit });
          const message = res.stderr.trim();
          assert.notEqual(res.code, 0, `trial ${trial}: exit code 0\n${res.stdout}`);
          assert.equal(res.signal, null, `trial ${trial}: killed by ${res.signal}`);
          assert.match(message, mounted ? /^orthornn: .*ENOSPC/ : /^orthornn: .*(EFBIG|ENOSPC)/, `trial ${trial}`);
          assert.doesNotMatch(message, /\n|internal error/, `trial ${trial}: one coded line, got ${message}`);
          checkRunFolder(out);
          // What survived also resumes (on a disk with room), and trains on.
          const last = path.join(out, 'last.safetensors');
          if (existsSync(last)) {
            const copy = path.join(tmp, `resumed-${trial}`);
            cpSync(out, copy, { recursive: true });
            const step = readCheckpoint(path.join(copy, 'last.safetensors')).step;
            const resumed = cli(['train', '--resume', copy, '--steps', String(step + 2), '--plot-format', 'none', '--quiet']);
            assert.equal(resumed.code, 0, `trial ${trial}: resuming the surviving checkpoint: ${resumed.stderr}`);
            assert.equal(readCheckpoint(path.join(copy, 'last.safetensors')).step, step + 2);
            resumes++;
          }
          const which = failedWrite(message);
          failed[which] = (failed[which] ?? 0) + 1;
        }
        console.log(`      ${mounted ? 'ENOSPC on a 256 KiB tmpfs' : 'EFBIG under ulimit -f'}: 20/20 runs failed cleanly; the failed write: ${JSON.stringify(failed)}; ${resumes} surviving checkpoints resumed`);
      });

      it('writeFileAtomic and writeCheckpoint on a full disk: the previous file stays whole, no temporary is left, the cause keeps its code', function () {
        const r = rng(TEST_SEED + 93);
        const ckpt = decodeCheckpoint(good, 'good');
        for (let trial = 0; trial < 20; trial++) {
          const size = 4096 + Math.floor(r() * 60_000);
          if (mounted) {
            clear();
            const file = path.join(mnt, trial % 2 ? 'last.safetensors' : 'config.json');
            const old = Buffer.alloc(2048 + Math.floor(r() * 8192), 7);
            writeFileAtomic(file, old);
            fill(Math.floor(r() * 8192));
            const attempt = () => (trial % 4 === 1 ? writeCheckpoint(file, { ...ckpt, parameters: { ...ckpt.parameters, pad: new Float32Array(size) } }) : writeFileAtomic(file, Buffer.alloc(size + SIZE, 9)));
            assert.throws(attempt, (e: Error & { cause?: { code?: string } }) =>
              e instanceof DataError && coded(e) && e.message.startsWith(`cannot write '${file}': ENOSPC`) && e.cause?.code === 'ENOSPC', `trial ${trial}`);
            assert.deepEqual(readFileSync(file), old, `trial ${trial}: the previous file changed`);
            assert.deepEqual(readdirSync(mnt).filter((n) => n.endsWith('.tmp')), [], `trial ${trial}: temporaries left`);
          } else {
            const file = path.join(tmp, `limited-${trial}.bin`);
            writeFileSync(file, 'old');
            const limit = 1 + Math.floor(r() * 16);
            const res = spawnSync('bash', ['-c', `ulimit -f ${limit} && exec '${process.execPath}' --import tsx test/fuzz/files-write.ts '${file}' ${limit * 1024 + size}`], { cwd: ROOT, encoding: 'utf8' });
            assert.equal(res.status, 0, res.stderr);
            const outcome = JSON.parse(res.stdout.trim().split('\n').pop()!);
            assert.equal(outcome.ok, false, `trial ${trial}`);
            assert.equal(outcome.code, 'ERR_ORTHORNN_DATA');
            assert.equal(outcome.cause, 'EFBIG');
            assert.match(outcome.message, new RegExp(`^cannot write '.*limited-${trial}\\.bin': EFBIG`));
            assert.equal(readFileSync(file, 'utf8'), 'old');
            assert.deepEqual(readdirSync(tmp).filter((n) => n.endsWith('.tmp')), []);
          }
        }
      });
    });
  });

  describe('hostile safetensors files', () => {
    const f32 = (...v: number[]) => new Uint8Array(Float32Array.from(v).buffer);

    it('decodeSafetensors takes any Uint8Array; anything else is a coded TypeError', () => {
      const bytes = encodeSafetensors({ tensors: { w: { data: new Float32Array([1, 2]), shape: [2] } }, metadata: {} });
      const plain = new Uint8Array(bytes.length + 3).subarray(3);
      plain.set(bytes);
      assert.deepEqual(decodeSafetensors(plain).tensors.w.data, new Float32Array([1, 2]));
      for (const v of ['abc', null, 42, [1, 2], new ArrayBuffer(16), new Float32Array(4)]) {
        assert.throws(() => decodeSafetensors(v as never), (e: Error & { code?: string }) => e instanceof TypeError && e.code === 'ERR_ORTHORNN_TYPE', String(v));
      }
    });

    it('refuses overlaps, gaps, trailing bytes, bad lengths, bad JSON, null entries, duplicate keys, huge shapes and foreign dtypes', () => {
      const cases: [string, Buffer, RegExp][] = [
        ['overlap', rawSafetensors({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] } }, new Uint8Array(12)), /overlap/],
        ['gap', rawSafetensors({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [12, 20] } }, new Uint8Array(20)), /gap of bytes \[8, 12\)/],
        ['not from 0', rawSafetensors({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8)), /gap/],
        ['trailing', Buffer.concat([good, Buffer.from('garbage!')]), /8 bytes after the last tensor/],
        ['shared bytes', rawSafetensors({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, b: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, new Uint8Array(8)), /overlap/],
        ['huge header length', rawSafetensors({}, new Uint8Array(0), 2n ** 62n), /exceeds the 100000000-byte limit/],
        ['header past the end', rawSafetensors({}, new Uint8Array(0), 4096n), /exceeds the file/],
        ['header length 0', rawSafetensors('', new Uint8Array(8)), /too short/],
        ['not JSON', rawSafetensors('{"a": {"dtype": "F32",'), /not JSON/],
        ['not UTF-8', Buffer.concat([rawSafetensors('{"\xff\xfe": 1}').subarray(0, 8), Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])]), /not UTF-8/],
        ['an array', rawSafetensors([1, 2]), /not a JSON object/],
        ['null entry', rawSafetensors({ a: null }), /tensor "a" is null/],
        ['number entry', rawSafetensors({ a: 5 }), /tensor "a" is a number/],
        ['null metadata', rawSafetensors({ __metadata__: null }), /__metadata__ is not an object/],
        ['metadata number', rawSafetensors({ __metadata__: { format: 1 } }), /metadata "format" is not a string/],
        ['duplicate key', rawSafetensors('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', f32(1)), /names "a" twice/],
        ['duplicate field', rawSafetensors('{"a":{"dtype":"F32","shape":[1],"shape":[1],"data_offsets":[0,4]}}', f32(1)), /names "shape" twice/],
        ['look-alike names', rawSafetensors({ 'W_in': { dtype: 'F32', shape: [1], data_offsets: [0, 4] }, 'Ｗ_in': { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(1, 2)), /looks the same as tensor "W_in"/],
        ['invisible characters', rawSafetensors({ 'W\u200b_in': { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, f32(1)), /invisible/],
        ['huge shape', rawSafetensors({ a: { dtype: 'F32', shape: [2 ** 40, 2 ** 40, 2 ** 40], data_offsets: [0, 4] } }, f32(1)), /data_offsets \[0, 4\] in 4 bytes of data, fewer than its shape needs/],
        ['unsafe dimension', rawSafetensors({ a: { dtype: 'F32', shape: [2 ** 60], data_offsets: [0, 4] } }, f32(1)), /has shape/],
        ['negative offset', rawSafetensors({ a: { dtype: 'F32', shape: [1], data_offsets: [-4, 0] } }, f32(1)), /data_offsets/],
        ['offsets beyond', rawSafetensors({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, f32(1)), /data_offsets \[4, 8\] in 4 bytes/],
        ['F16', rawSafetensors({ a: { dtype: 'F16', shape: [2], data_offsets: [0, 4] } }, f32(1)), /dtype "F16"/],
        ['inherited dtype name', rawSafetensors({ a: { dtype: 'constructor', shape: [1], data_offsets: [0, 4] } }, f32(1)), /dtype "constructor"/],
      ];
      for (const [what, bytes, message] of cases) {
        assert.throws(() => decodeSafetensors(bytes, `${what}.safetensors`), (e: Error) =>
          e instanceof DataError && e.message.startsWith(`'${what}.safetensors' is not a valid safetensors file: `) && message.test(e.message), what);
      }
      assert.ok(MAX_HEADER_BYTES >= 1e6);
    });

    it("'__proto__' is a name like any other: no prototype changes, and a checkpoint holding it is refused", () => {
      const bytes = rawSafetensors('{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"__metadata__":{"__proto__":"x"}}', f32(5));
      const file = decodeSafetensors(bytes);
      assert.ok(Object.hasOwn(file.tensors, '__proto__'));
      assert.equal(Object.getPrototypeOf(file.tensors), Object.prototype);
      assert.equal(file.metadata.__proto__, 'x');
      assert.equal(({} as Record<string, unknown>).dtype, undefined);
      const { header, data } = split(good);
      const evil = `{"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[${data.length},${data.length + 4}]},${JSON.stringify(header).slice(1)}`;
      const ckpt = decodeCheckpoint(rawSafetensors(evil, Buffer.concat([data, f32(1)])), 'evil');
      assert.ok(Object.hasOwn(ckpt.parameters, '__proto__'));
      assert.throws(() => checkCheckpointShapes('evil', ckpt, expectedParameterShapes(config, 10, 10)), /'evil': unknown parameter "__proto__"/);
    });

    it('checkpoints: every tensor exactly the model\'s shape and dtype, finite values, orthogonal U and V, metadata as written', async () => {
      const expected = expectedParameterShapes(config, 10, 10);
      assert.deepEqual(expected, { W_in: [16, 10], b: [16], U: [16, 16], V: [16, 16], p: [16], W_out: [10, 16], c: [10] });
      assert.deepEqual(expectedParameterShapes({ ...config, model: 'plain', learnH0: true }, 3, 2), { W_in: [16, 3], b: [16], W: [16, 16], W_out: [2, 16], c: [2], h0: [16] });
      assert.deepEqual(expectedParameterShapes({ ...config, model: 'lstm' }, 1, 10), { weight_ih_l0: [64, 1], weight_hh_l0: [64, 16], bias_ih_l0: [64], bias_hh_l0: [64], W_out: [10, 16], c: [10] });
      assert.doesNotThrow(() => checkCheckpointShapes('good', decodeCheckpoint(good, 'good'), expected));

      const nanAt = (name: string) => edited((h, d) => {
        const [begin] = h[name].data_offsets;
        d.writeFloatLE(Number.NaN, begin + 4);
      });
      const refusals: [string, Buffer, RegExp][] = [
        ['flat W_in', edited((h) => { h.W_in.shape = [160]; }), /parameter 'W_in' has shape \[160\] \(160 values\), expected \[16, 10\]/],
        ['transposed W_out', edited((h) => { h.W_out.shape = [16, 10]; }), /parameter 'W_out' has shape \[16, 10\].*expected \[10, 16\]/],
        ['missing p', edited((h, d) => {
          const [b0, b1] = h.p.data_offsets;
          delete (h as Record<string, unknown>).p;
          for (const e of Object.values(h)) if ('data_offsets' in e && e.data_offsets[0] >= b1) e.data_offsets = e.data_offsets.map((o) => o - (b1 - b0));
          return Buffer.concat([d.subarray(0, b0), d.subarray(b1)]);
        }), /parameter 'p' \[16\] is missing/],
        ['unknown parameter', edited((h, d) => {
          h.W = { dtype: 'F32', shape: [1], data_offsets: [d.length, d.length + 4] };
          return Buffer.concat([d, f32(0)]);
        }), /unknown parameter "W"/],
        ['optimiser slot of another shape', edited((h) => { h['optimizer.W_in.square_avg'].shape = [10, 16]; }), /'optimizer\.W_in\.square_avg' has shape \[10, 16\].*expected \[16, 10\] like 'W_in'/],
        ['slot of no optimiser', edited((h) => {
          h['optimizer.W_in.momentum'] = h['optimizer.W_in.square_avg'];
          delete h['optimizer.W_in.square_avg'];
        }), /'optimizer\.W_in\.momentum' is not a slot of rmsprop/],
        ['NaN', nanAt('W_out'), /tensor 'W_out' holds NaN at index 1/],
        ['Inf in optimiser state', edited((h, d) => { d.writeFloatLE(Infinity, h['optimizer.c.square_avg'].data_offsets[0]); }), /tensor 'optimizer\.c\.square_avg' holds Infinity/],
        ['I32', edited((h) => { h.b.dtype = 'I32'; }), /tensor 'b' is I32/],
        ['F64 for float32', edited((h, d) => {
          const [b0, b1] = h.c.data_offsets;
          h.c = { dtype: 'F64', shape: [5], data_offsets: [b0, b1] };
          return d;
        }), /parameter 'c'|tensor 'c' is F64/],
        ['not a checkpoint', edited((h) => { (h.__metadata__ as unknown as Record<string, string>).format = 'other'; }), /is not an orthornn checkpoint/],
        ['config not an object', edited((h) => { (h.__metadata__ as unknown as Record<string, string>).config = '[1]'; }), /'config' is not a JSON object/],
        ['step', edited((h) => { (h.__metadata__ as unknown as Record<string, string>).step = '-1'; }), /step "-1" is not a non-negative integer/],
        ['delay 1e5', configOf({ delay: 100_000 }), /'delay' must be ≤ 20000 \(a bound far above the paper's largest delay, 10000/],
        ['margin 1e308', configOf({ margin: 1e308 }), /'margin' must be ≤ 1000/],
        ['hidden 4096', configOf({ hidden: 4096 }), /parameter 'W_in' has shape \[16, 10\] \(160 values\), expected \[4096, 10\]/],
        ['unknown option', configOf({ constructor: 1 } as never), /unknown option 'constructor'/],
        ['non-orthogonal U', edited((h, d) => {
          const [b0, b1] = h.U.data_offsets;
          for (let at = b0; at < b1; at += 4) d.writeFloatLE(d.readFloatLE(at) * 1.1, at);
        }), /the factor U is not orthogonal: ‖UᵀU − I‖_max = 0\.210 > 0\.01/],
      ];
      for (const [what, bytes, message] of refusals) {
        const file = path.join(tmp, `${what.replace(/\W+/g, '-')}.safetensors`);
        writeFileSync(file, bytes);
        await assert.rejects(evalCheckpoint(file), (e: Error) => coded(e) && e.message.includes(file) && message.test(e.message), what);
      }
      await assert.rejects(evalCheckpoint(path.join(tmp, 'non-orthogonal-U.safetensors')), (e: Error) => e instanceof NumericError);
      assert.equal(ORTHOGONALITY_LIMIT, 1e-2);
    });

    it('checkOrthogonalFactors passes trained factors and has nothing to check for other models', async () => {
      const source = createSource(config);
      const model = await createModel(config, source, ctx);
      await checkOrthogonalFactors(model, 'fresh');
      model.dispose();
      const plain = await createModel({ ...config, model: 'plain', init: 'glorot' }, source, ctx);
      await checkOrthogonalFactors(plain, 'plain');
      plain.dispose();
    });

    it(`a corpus of mutated checkpoints (bit flips, truncations, header edits): every refusal is coded`, () => {
      const count = Number(process.env.ORTHORNN_FUZZ_FILES ?? 3000);
      const r = rng(TEST_SEED + 921);
      const int = (n: number) => Math.floor(r() * n);
      const headerLength = Number(good.readBigUInt64LE(0));
      const { header, data } = split(good);
      const names = Object.keys(header).filter((k) => k !== '__metadata__');
      const hostile: unknown[] = [null, true, -1, 0, 1, 2 ** 31, 2 ** 53, 1e308, -0.5, 'x', '', [], [1, 2], {}, { a: 1 }, 'F16', 'I32', 'F64', [2 ** 40, 2 ** 40], [-1, 4]];
      const outcomes: Record<string, number> = {};
      for (let i = 0; i < count; i++) {
        let bytes: Buffer;
        const kind = int(7);
        if (kind === 0) {
          bytes = Buffer.from(good);
          for (let k = 1 + int(8); k > 0; k--) { const at = int(bytes.length); bytes[at] ^= 1 << int(8); }
        } else if (kind === 1) {
          bytes = Buffer.from(good);
          for (let k = 1 + int(4); k > 0; k--) { const at = 8 + int(headerLength); bytes[at] ^= 1 << int(8); }
        } else if (kind === 2) {
          bytes = good.subarray(0, int(good.length));
        } else if (kind === 3) {
          bytes = Buffer.from(good);
          bytes.writeBigUInt64LE(BigInt.asUintN(64, BigInt(Math.max(0, headerLength + int(64) - 32)) * (int(8) === 0 ? 2n ** BigInt(int(60)) : 1n)), 0);
        } else if (kind === 4) {
          // A field of a tensor's entry set to a hostile value.
          const h = structuredClone(header) as Record<string, Record<string, unknown>>;
          const name = names[int(names.length)];
          const field = ['dtype', 'shape', 'data_offsets'][int(3)];
          h[name][field] = int(2) ? hostile[int(hostile.length)] : field === 'data_offsets' ? [int(data.length + 8), int(data.length + 8)] : field === 'shape' ? [int(200), int(20)] : 'F32';
          if (int(4) === 0) h[names[int(names.length)]] = hostile[int(hostile.length)] as never;
          bytes = rawSafetensors(h, data);
        } else if (kind === 5) {
          // Text edits of the header: a digit changed, a span cut out or repeated.
          let text = good.subarray(8, 8 + headerLength).toString('utf8');
          const at = int(text.length), len = 1 + int(24);
          const op = int(3);
          if (op === 0) text = text.replace(/\d/g, (c) => (int(40) === 0 ? String(int(10)) : c));
          else if (op === 1) text = text.slice(0, at) + text.slice(at + len);
          else text = text.slice(0, at) + text.slice(at, at + len) + text.slice(at);
          bytes = rawSafetensors(text, data);
        } else {
          // Metadata values replaced: config options, step, optimizerSteps.
          const h = structuredClone(header) as Record<string, Record<string, string>>;
          const meta = h.__metadata__;
          const key = ['config', 'step', 'optimizerSteps', 'source', 'best', 'format'][int(6)];
          if (key === 'config' && int(2)) {
            const c = JSON.parse(meta.config);
            const option = Object.keys(c)[int(Object.keys(c).length)];
            c[option] = hostile[int(hostile.length)];
            meta.config = JSON.stringify(c);
          } else {
            meta[key] = int(2) ? JSON.stringify(hostile[int(hostile.length)]) : String(hostile[int(hostile.length)]);
          }
          bytes = rawSafetensors(h, data);
        }
        try {
          const ckpt = decodeCheckpoint(bytes, 'mutant');
          const resolved = resolveConfig(ckpt.config, { stored: true });
          checkCheckpointShapes('mutant', ckpt, expectedParameterShapes(resolved, 10, 10));
          outcomes.accepted = (outcomes.accepted ?? 0) + 1;
        } catch (err) {
          if (!coded(err)) assert.fail(`mutant ${i} (kind ${kind}): an uncoded ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
          const code = (err as { code: string }).code;
          outcomes[code] = (outcomes[code] ?? 0) + 1;
        }
      }
      console.log(`      ${count} mutated checkpoints: ${JSON.stringify(outcomes)}`);
    });
  });

  describe('bounded evaluation', () => {
    it('evaluate: the metrics do not depend on the batch size, however small the budget makes it', async () => {
      const source = createSource(config);
      const model = await createModel(config, source, ctx);
      const a = await evaluate(model, source, 'valid', { batchSize: 40 });
      const b = await evaluate(model, source, 'valid', { batchSize: 7 });
      model.dispose();
      assert.equal(a.sequences, 40);
      assert.equal(a.accuracy, b.accuracy);
      // The sums are the same; float32 forward passes of different widths round differently.
      assert.ok(Math.abs(a.loss - b.loss) <= 1e-6 * a.loss, `${a.loss} vs ${b.loss}`);
    });

    it('generated held-out sets are made batch by batch, with the same sequences as the whole set', () => {
      const big = createSource(resolveConfig({ task: 'copy', delay: 2000, validSize: 1000 }, { stored: true }));
      const stream = new CopyTask({ delay: 2000, seed: 1_000_003 }).batch(30);
      const whole = big.evalBatch('valid', 0, 30);
      assert.deepEqual(whole.targets, stream.targets);
      assert.deepEqual(whole.x, stream.x);
      const tail = big.evalBatch('valid', 20, 10);
      const again = big.evalBatch('valid', 25, 3);
      for (let t = 0; t < whole.T; t += 97) {
        for (let b = 0; b < 10; b++) assert.equal(tail.targets[t * 10 + b], whole.targets[t * 30 + 20 + b]);
        for (let b = 0; b < 3; b++) assert.equal(again.targets[t * 3 + b], whole.targets[t * 30 + 25 + b]);
      }
      assert.equal(big.evalSteps('valid'), 2020);
    });

    it('orthornn eval of hostile 7 KB checkpoints: a coded line or a legitimate result, costing under 150 MB above the loaded addon', function () {
      const cases: [string, Buffer][] = [
        ['delay 1e5', configOf({ delay: 100_000 })],
        ['hidden 4096', configOf({ hidden: 4096 })],
        ['evalBatchSize 1e9', configOf({ evalBatchSize: 1e9 })],
        ['delay 20000, batches of 100000', configOf({ delay: 20_000, evalBatchSize: 100_000, validSize: 60 })],
        ['100000 held-out sequences', configOf({ delay: 5, evalBatchSize: 100_000, validSize: 100_000 })],
        ['adding, length 20000', edited(() => undefined)],
        ['huge header length', (() => { const b = Buffer.from(good); b.writeBigUInt64LE(2n ** 62n, 0); return b; })()],
        ['huge shape', edited((h) => { h.W_in.shape = [2 ** 26, 2 ** 26]; })],
        ['margin 1e308', configOf({ margin: 1e308 })],
      ];
      // The adding model has 2 inputs and 1 output: its own small checkpoint.
      cases[5][1] = (() => {
        const { header, data } = split(good);
        const meta = header.__metadata__ as Record<string, string>;
        meta.config = JSON.stringify({ ...JSON.parse(meta.config), task: 'adding', length: 20_000, validSize: 100, evalBatchSize: 100_000, activation: 'relu' });
        const h = header as Record<string, Entry>;
        const keep: Record<string, Entry> = {};
        const chunks: Buffer[] = [];
        let at = 0;
        for (const [name, shape] of Object.entries({ W_in: [16, 2], b: [16], U: [16, 16], V: [16, 16], p: [16], W_out: [1, 16], c: [1] })) {
          const [b0] = h[name].data_offsets;
          const n = shape.reduce((x, y) => x * y, 1) * 4;
          chunks.push(data.subarray(b0, b0 + n));
          keep[name] = { dtype: 'F32', shape, data_offsets: [at, at + n] };
          at += n;
        }
        return rawSafetensors({ __metadata__: meta, ...keep }, Buffer.concat(chunks));
      })();
      const rows: string[] = [];
      for (const [what, bytes] of cases) {
        assert.ok(bytes.length <= 8 * 1024, `${what}: ${bytes.length} bytes`);
        const file = path.join(tmp, `hostile-${what.replace(/\W+/g, '-')}.safetensors`);
        writeFileSync(file, bytes);
        const r = spawnSync(process.execPath, ['--import', 'tsx', 'test/fuzz/files-rss.ts', 'eval', file, '--json'], { cwd: ROOT, encoding: 'utf8', timeout: 300_000 });
        const lines = r.stderr.trim().split('\n');
        const rss = Number(/^maxrss (\d+)$/.exec(lines.pop() ?? '')?.[1]);
        const [, base, build] = /^baseline (\d+) (cpu|cuda)$/.exec(lines.pop() ?? '') ?? [];
        assert.ok(Number.isFinite(rss) && base !== undefined, `${what}: no maxrss and baseline lines in ${r.stderr}`);
        const growth = rss - Number(base);
        if (r.status === 0) {
          const m = JSON.parse(r.stdout);
          assert.ok(m.sequences > 0 && Number.isFinite(m.loss), `${what}: ${r.stdout}`);
        } else {
          assert.equal(lines.length, 1, `${what}: one line, got ${lines.join('\n')}`);
          assert.match(lines[0], /^orthornn: /, what);
          assert.doesNotMatch(lines[0], /internal error/, what);
        }
        rows.push(`${what}: ${r.status === 0 ? 'evaluated' : lines[0].slice(0, 90)}, peak RSS ${(rss / 1024).toFixed(0)} MB (${(growth / 1024).toFixed(0)} MB above the loaded ${build} addon)`);
        // What the file costs beyond loading orthornn. The process's own total depends on the
        // build (a CUDA build maps cuBLAS and cuSOLVER, about 140 MB), so the total is reported,
        // not bounded. (The peak is the child's own, VmHWM: see test/fuzz/files-rss.ts.)
        assert.ok(growth < 150 * 1024, `${what}: ${(growth / 1024).toFixed(0)} MB above the loaded addon (peak RSS ${(rss / 1024).toFixed(0)} MB)`);
      }
      for (const row of rows) console.log(`      ${row}`);
    });
  });

  describe('corrupt run folders', () => {
    it('eval: config.json a folder, no last.safetensors, empty or missing checkpoints, a folder for a checkpoint', async () => {
      const run = (name: string) => {
        const dir = path.join(tmp, 'runs', name);
        mkdirSync(dir, { recursive: true });
        return dir;
      };
      const a = run('config-folder');
      mkdirSync(path.join(a, 'config.json'));
      writeFileSync(path.join(a, 'best.safetensors'), good);
      const result = await evalCheckpoint(a, { split: 'valid' });
      assert.equal(result.sequences, 40);

      const b = run('no-last');
      writeFileSync(path.join(b, 'best.safetensors'), good);
      assert.equal((await evalCheckpoint(b)).checkpoint, path.join(b, 'best.safetensors'));

      const c = run('empty');
      await assert.rejects(evalCheckpoint(c), (e: Error) => e instanceof DataError && /holds no best\.safetensors or last\.safetensors/.test(e.message));
      writeFileSync(path.join(c, 'last.safetensors'), '');
      await assert.rejects(evalCheckpoint(c), (e: Error) => e instanceof DataError && e.message.includes(path.join(c, 'last.safetensors')) && /0 bytes/.test(e.message));
      writeFileSync(path.join(c, 'best.safetensors'), good.subarray(0, good.length - 1));
      await assert.rejects(evalCheckpoint(c), (e: Error) => e instanceof DataError && e.message.includes('best.safetensors'));

      const d = run('folder-checkpoint');
      mkdirSync(path.join(d, 'best.safetensors'));
      await assert.rejects(evalCheckpoint(d), (e: Error) => e instanceof DataError && /not a regular file/.test(e.message));
      await assert.rejects(evalCheckpoint(path.join(tmp, 'runs', 'missing')), (e: Error) => e instanceof DataError && /does not exist/.test(e.message));
      assert.throws(() => readBytes('/dev/zero'), (e: Error) => e instanceof DataError && /not a regular file/.test(e.message));
      assert.ok(statSync(path.join(a, 'config.json')).isDirectory());
    });
  });
});
