/**
 * `orthornn worker --queue URL --store DIR`: trains runs from the job queue (lib/cluster/worker.ts),
 * `--concurrency` at a time, each as its own `orthornn train` process with `--threads` cores.
 * SIGTERM or SIGINT stops it gracefully: the runs in progress save their checkpoints and go
 * back to the queue, and the worker exits 0; a second signal exits at once (the runs' jobs
 * then stall, and another worker resumes them from their last checkpoints).
 */
import { Command, InvalidArgumentError } from 'commander';
import { openStore } from '../cluster/store';
import { RunWorker } from '../cluster/worker';

function positive(flag: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} must be a positive integer`);
    return n;
  };
}

/** Adds the `worker` command to the program. */
export function addWorkerCommand(root: Command): Command {
  return root
    .command('worker')
    .description('train runs from a job queue (sweep --queue), each as its own process; SIGTERM stops gracefully')
    .requiredOption('--queue <url>', 'the queue: redis://HOST:PORT/DB')
    .requiredOption('--store <dir>', 'the folder shared with the submitter, holding the run folders')
    .option('--device <device>', "'cpu' or 'cuda:N'", 'cpu')
    .option('--concurrency <n>', 'runs at once', positive('--concurrency'), 1)
    .option('--threads <n>', 'cores per run (ORTHORNN_NUM_THREADS; default: cores / concurrency); a resumed run keeps its first count', positive('--threads'))
    .action(async (opts: Record<string, unknown>) => workerCommand(opts));
}

export async function workerCommand(opts: Record<string, unknown>): Promise<void> {
  const log = (line: string) => process.stdout.write(`${new Date().toISOString()} ${line}\n`);
  const worker = new RunWorker({
    queue: opts.queue as string,
    store: openStore(opts.store as string),
    device: opts.device as string,
    concurrency: opts.concurrency as number,
    threads: opts.threads as number | undefined,
    log,
  });
  await worker.start();
  log(`worker ${worker.id}: queue ${opts.queue as string}, store ${opts.store as string}, ${opts.device as string}, ${worker.concurrency} run(s) at a time with ${worker.threads} thread(s) each`);
  await new Promise<void>((resolve, reject) => {
    let signalled = false;
    const onSignal = (signal: NodeJS.Signals) => {
      if (signalled) {
        log(`${signal} again: exiting at once; the runs' jobs stall and go to another worker`);
        worker.kill();
        process.exit(signal === 'SIGINT' ? 130 : 143);
      }
      signalled = true;
      log(`${signal}: stopping; ${worker.running} run(s) saving their checkpoints and going back to the queue (send it again to exit at once)`);
      worker.stop().then(resolve, reject);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  log('stopped');
}
