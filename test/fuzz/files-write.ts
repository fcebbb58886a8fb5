/**
 * Writes one file with writeFileAtomic and prints the outcome as one JSON line: `{ ok: true }`
 * or the error's code, message and cause's code. test/92 runs it under a file-size limit
 * (`ulimit -f`), where writes fail with EFBIG, when it may not mount a small file system.
 * Arguments: the target file and the size in bytes of what to write.
 */
import { writeFileAtomic } from '../../lib/io/files';

const [file, size] = process.argv.slice(2);
try {
  writeFileAtomic(file, Buffer.alloc(Number(size), 0x5a));
  process.stdout.write(`${JSON.stringify({ ok: true })}\n`);
} catch (err) {
  const e = err as Error & { code?: string; cause?: { code?: string } };
  process.stdout.write(`${JSON.stringify({ ok: false, code: e.code, message: e.message, cause: e.cause?.code })}\n`);
}
