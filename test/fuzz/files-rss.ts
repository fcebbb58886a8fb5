/**
 * Runs the `orthornn` command (its arguments are this script's) and, as the process exits,
 * prints its peak resident memory as a last stderr line `maxrss <KiB>`; test/92 runs hostile
 * evaluations through it.
 */
import { main } from '../../lib/cli/main';

process.on('exit', () => {
  process.stderr.write(`maxrss ${process.resourceUsage().maxRSS}\n`);
});
void main([process.argv[0], 'orthornn', ...process.argv.slice(2)]);
