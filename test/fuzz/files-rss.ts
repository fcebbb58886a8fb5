/**
 * Runs the `orthornn` command (its arguments are this script's) and, as the process exits,
 * prints two last stderr lines: `baseline <KiB>`, the resident memory once the addon is loaded
 * (with a CUDA build, cuBLAS and cuSOLVER alone take about 140 MB), and `maxrss <KiB>`, the
 * peak; test/92 runs hostile evaluations through it. The peak is this process's own (Linux's
 * VmHWM): getrusage's maxrss also counts the pages the process had at its fork, those of the
 * test runner that spawned it, which grow as the suite runs.
 */
import { readFileSync } from 'node:fs';
import { main } from '../../lib/cli/main';
import { backends } from '../../lib/index';

function peakKiB(): number {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (hwm) return Number(hwm[1]);
  } catch {
    // no /proc: getrusage's figure, an upper bound
  }
  return process.resourceUsage().maxRSS;
}

const cuda = backends().some((b) => b.name === 'cuda' && b.compiled);
const baseline = Math.round(process.memoryUsage().rss / 1024);
process.on('exit', () => {
  process.stderr.write(`baseline ${baseline} ${cuda ? 'cuda' : 'cpu'}\nmaxrss ${peakKiB()}\n`);
});
void main([process.argv[0], 'orthornn', ...process.argv.slice(2)]);
