/**
 * Runs the `orthornn` command (its arguments are this script's) and, as the process exits,
 * prints two last stderr lines: `baseline <KiB>`, the resident memory once the addon is loaded
 * (with a CUDA build, cuBLAS and cuSOLVER alone take about 140 MB), and `maxrss <KiB>`, the
 * peak; test/92 runs hostile evaluations through it. The peak is this process's own (Linux's
 * VmHWM, benchmarks/harness.ts's peakRssBytes): getrusage's maxrss also counts the pages the
 * process had at its fork, those of the test runner that spawned it, which grow as the suite runs.
 */
import { peakRssBytes } from '../../benchmarks/harness';
import { main } from '../../lib/cli/main';
import { backends } from '../../lib/index';

const cuda = backends().some((b) => b.name === 'cuda' && b.compiled);
const baseline = Math.round(process.memoryUsage().rss / 1024);
process.on('exit', () => {
  process.stderr.write(`baseline ${baseline} ${cuda ? 'cuda' : 'cpu'}\nmaxrss ${Math.round(peakRssBytes() / 1024)}\n`);
});
void main([process.argv[0], 'orthornn', ...process.argv.slice(2)]);
