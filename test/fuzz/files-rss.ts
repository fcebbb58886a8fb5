/**
 * Runs the `orthornn` command (its arguments are this script's) and, as the process exits,
 * prints two last stderr lines: `baseline <KiB>`, the resident memory once the addon is loaded
 * (with a CUDA build, cuBLAS and cuSOLVER alone take about 140 MB), and `maxrss <KiB>`, the
 * peak; test/92 runs hostile evaluations through it.
 */
import { main } from '../../lib/cli/main';
import { backends } from '../../lib/index';

const cuda = backends().some((b) => b.name === 'cuda' && b.compiled);
const baseline = Math.round(process.memoryUsage().rss / 1024);
process.on('exit', () => {
  process.stderr.write(`baseline ${baseline} ${cuda ? 'cuda' : 'cpu'}\nmaxrss ${process.resourceUsage().maxRSS}\n`);
});
void main([process.argv[0], 'orthornn', ...process.argv.slice(2)]);
