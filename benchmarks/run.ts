/**
 * Benchmarks: `npm run bench [-- --quick] [-- --json FILE] [-- --check]`.
 *
 * Every available backend runs the GEMM ceiling, the Cayley step alone and the standard
 * training-step cases (float32); the PyTorch peer (benchmarks/peers/torch_step.py), when PyTorch
 * is installed, runs the same Cayley steps and training steps alternately with ours in the same
 * run, so the ratios hold under whatever else the machine is doing. One table per suite on
 * stdout; every record, with a header describing the machine, in a JSON file. This file is the
 * entry point (arguments, the header, the peer check, the JSON); the timing, tables and record
 * basics are benchmarks/harness.ts, each suite is benchmarks/suites/<name>.ts.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { backends, memory, type BackendInfo } from '../lib/index';
import { checkCase, GRAD_RTOL, LOSS_RTOL, type CheckRecord } from './check';
import { casesFor, gitCommit, LR, machine, MARGIN, Table, type Machine, type Provenance, type Suite } from './harness';
import { TorchPeer } from './peer';
import { serveBenchmark } from './serve';
import { cayleySuite, type CayleyRecord } from './suites/cayley';
import { gemmSuite, type GemmRecord } from './suites/gemm';
import { lstmStepSuite, type LstmStepRecord } from './suites/lstm';
import { trainStepSuite, type TrainStepRecord } from './suites/train';

const USAGE = `Usage: npm run bench -- [options]   (or: npx tsx benchmarks/run.ts [options])

Options:
  --quick        seconds-long smoke run (T divided by 10, few steps), for CI
  --json FILE    where to write the JSON results (default: bench-results/bench.json)
  --check        first check that the PyTorch peer's loss and gradients agree with ours on the
                 same parameters and batch (exit status 1 when they do not)
  --no-peer      do not run the PyTorch peer
  --only TEXT    only the training cases whose name contains TEXT
  --suite serve  instead: the serving benchmark (benchmarks/serve.ts: HTTP predictions while
                 training; JSON default bench-results/serve.json)
  --suite lstm   only the LSTM step against the Elman step at the sequential-MNIST shape
  -h, --help     show this help

The peer needs PyTorch (Debian: python3-torch; npm run setup -- --bench); the interpreter is
ORTHORNN_BENCH_PYTHON, else /usr/bin/python3, else python3 on the PATH.`;

// ---------------------------------------------------------------------------------------------
// Records (each suite's in its file: benchmarks/suites/*.ts; the harness in benchmarks/harness.ts)

interface Header {
  date: string;
  node: string;
  gitCommit: string | null;
  hostname: string;
  machine: Machine;
  quick: boolean;
  env: { OPENBLAS_CORETYPE: string | null; OPENBLAS_NUM_THREADS: string | null; OPENBLAS_THREAD_TIMEOUT: string | null };
  backends: BackendInfo[];
  /** The PyTorch peer, or why it did not run. */
  peer: { python: string; torch: string; threads: number } | { skipped: string };
}

interface SkippedRecord extends Provenance {
  suite: 'skipped';
  backend: string;
  reason: string;
}

/** Union of every suite's record type. */
type BenchRecord = GemmRecord | CayleyRecord | TrainStepRecord | LstmStepRecord | CheckRecord | SkippedRecord;

const suites = [gemmSuite, cayleySuite, trainStepSuite, lstmStepSuite] as readonly Suite<BenchRecord>[];

/** The peer agreement check on every case (T/10 with --quick); the records say whether all passed. */
async function runCheck(peer: TorchPeer, quick: boolean, only: string | null, provenance: Provenance): Promise<(CheckRecord & Provenance)[]> {
  const table = new Table<CheckRecord>([
    { header: 'case', width: 31, value: (r) => r.case, align: 'left' },
    { header: 'loss', width: 10, value: (r) => r.loss.toPrecision(7) },
    { header: 'torch loss', width: 10, value: (r) => r.peerLoss.toPrecision(7) },
    { header: 'rel err', width: 7, value: (r) => r.lossRelError.toExponential(1) },
    { header: 'grad rel err', width: 12, value: (r) => `${r.gradRelError.toExponential(1)} ${r.gradWorst}` },
    { header: 'after step rel err', width: 18, value: (r) => r.lossAfterStepRelError.toExponential(1) },
    { header: 'fused/loop', width: 10, value: (r) => r.fusedLossRelError.toExponential(1) },
    { header: 'ok', width: 4, value: (r) => (r.pass ? 'yes' : 'NO'), align: 'left' },
  ]);
  console.log(
    `\nPeer check (float32, cpu): loss and gradients at the same parameters and batch, and the loss after one RMSprop + Cayley step` +
      `\n(tolerances: loss ${LOSS_RTOL} relative, gradients ${GRAD_RTOL} of each gradient's max |entry|)`,
  );
  table.printHeader();
  const records: (CheckRecord & Provenance)[] = [];
  for (const c of casesFor(quick, only)) {
    const { name, ...shape } = c;
    const record = { ...(await checkCase(peer, name, shape, MARGIN, LR)), ...provenance };
    records.push(record);
    table.printRow(record);
  }
  return records;
}

// ---------------------------------------------------------------------------------------------
// Output

function header(quick: boolean, peer: TorchPeer | string | null): Header {
  return {
    date: new Date().toISOString(),
    node: process.version,
    gitCommit: gitCommit(),
    hostname: os.hostname(),
    machine: machine(),
    quick,
    env: {
      OPENBLAS_CORETYPE: process.env.OPENBLAS_CORETYPE ?? null,
      OPENBLAS_NUM_THREADS: process.env.OPENBLAS_NUM_THREADS ?? null,
      OPENBLAS_THREAD_TIMEOUT: process.env.OPENBLAS_THREAD_TIMEOUT ?? null,
    },
    backends: backends(),
    peer: peer instanceof TorchPeer ? { ...peer.info } : { skipped: peer ?? 'not requested (--no-peer)' },
  };
}

// ---------------------------------------------------------------------------------------------
// Main

interface Args {
  quick: boolean;
  json: string;
  check: boolean;
  peer: boolean;
  only: string | null;
  suite: string | null;
  help: boolean;
}

/** The parsed arguments, or the exit code after a usage error. */
function parse(argv: string[]): Args | number {
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: 'boolean', default: false },
        json: { type: 'string' },
        check: { type: 'boolean', default: false },
        'no-peer': { type: 'boolean', default: false },
        only: { type: 'string' },
        suite: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
    const json = values.json ?? (values.suite === 'serve' ? 'bench-results/serve.json' : 'bench-results/bench.json');
    return { quick: values.quick, json, check: values.check, peer: !values['no-peer'], only: values.only ?? null, suite: values.suite ?? null, help: values.help };
  } catch (err) {
    // parseArgs reports unknown options, missing values and positionals as ERR_PARSE_ARGS_*.
    if (err instanceof Error && String((err as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS')) {
      console.error(`error: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    throw err;
  }
}

async function main(): Promise<number> {
  const args = parse(process.argv.slice(2));
  if (typeof args === 'number') return args;
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  if (args.suite !== null) {
    if (args.suite !== 'serve' && args.suite !== 'lstm') {
      console.error(`error: --suite takes 'serve' or 'lstm', got '${args.suite}'\n\n${USAGE}`);
      return 2;
    }
    if (args.suite === 'serve') return serveBenchmark({ quick: args.quick, json: args.json });
  }
  if (args.check && !args.peer) {
    console.error(`error: --check compares with the PyTorch peer; it cannot be combined with --no-peer\n\n${USAGE}`);
    return 2;
  }

  const all = backends();
  const available = all.filter((b) => b.available);
  const skipped = all.filter((b) => !b.available);
  const threads = os.availableParallelism();
  const peerOrReason = args.peer ? await TorchPeer.start(threads) : null;
  const peer = peerOrReason instanceof TorchPeer ? peerOrReason : null;
  const head = header(args.quick, peerOrReason);
  const provenance: Provenance = {
    commit: head.gitCommit,
    machine: `${head.machine.cpuModel ?? 'unknown CPU'}, ${head.machine.cores} cores`,
  };

  console.log(`orthornn benchmarks${args.quick ? ' (quick)' : ''}: node ${head.node}, commit ${head.gitCommit ?? 'unknown'}, host ${head.hostname}`);
  console.log(`machine: ${provenance.machine}${head.machine.simd.length ? ` (${head.machine.simd.join(', ')})` : ''}`);
  for (const b of available) console.log(`backend ${b.name}: ${b.device}`);
  const records: BenchRecord[] = [];
  for (const b of skipped) {
    const reason = b.compiled ? (b.reason ?? 'unavailable') : 'not compiled into this build';
    console.log(`backend ${b.name}: skipped (${reason})`);
    records.push({ suite: 'skipped', ...provenance, backend: b.name, reason });
  }
  console.log(
    `OPENBLAS_CORETYPE=${head.env.OPENBLAS_CORETYPE ?? '(unset)'} OPENBLAS_NUM_THREADS=${head.env.OPENBLAS_NUM_THREADS ?? '(unset)'} OPENBLAS_THREAD_TIMEOUT=${head.env.OPENBLAS_THREAD_TIMEOUT ?? '(unset)'}`,
  );
  if (peer) console.log(`peer: PyTorch ${peer.info.torch} (${peer.info.python}), ${peer.info.threads} threads, OMP_WAIT_POLICY=PASSIVE`);
  else console.log(`peer: none (${args.peer ? (peerOrReason as string) : '--no-peer'})`);

  let failed = false;
  try {
    if (args.check) {
      if (!peer) {
        console.error(`error: --check needs the PyTorch peer: ${peerOrReason as string}`);
        return 1;
      }
      const checks = await runCheck(peer, args.quick, args.only, provenance);
      records.push(...checks);
      failed = checks.some((c) => !c.pass);
      if (failed) console.error('error: the peer disagrees with orthornn (see the table above); its timings are not comparable');
    }
    for (const suite of args.suite === 'lstm' ? [lstmStepSuite] : suites) {
      records.push(...(await suite({ backends: available, quick: args.quick, earlier: records, peer, provenance, only: args.only })));
    }
  } finally {
    peer?.close();
  }

  const leaked = memory().filter((m) => m.tensors > 0);
  if (leaked.length) console.error(`warning: tensors still live after the benchmarks: ${JSON.stringify(leaked)}`);

  mkdirSync(path.dirname(path.resolve(args.json)), { recursive: true });
  writeFileSync(args.json, JSON.stringify({ header: head, records }, null, 2) + '\n');
  console.log(`\nwrote ${records.length} records to ${args.json}`);
  return failed ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof Error ? (err.stack ?? err.message) : err);
    process.exitCode = 1;
  },
);
