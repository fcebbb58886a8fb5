/**
 * The PyTorch peer (benchmarks/peers/torch_step.py) as a long-lived subprocess: the bench sends
 * it one JSON request per line ("set up case X", "run k steps") between its own repetitions, so
 * both are timed alternately under the same machine load.
 */
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import path from 'node:path';
import { createInterface, type Interface } from 'node:readline';

const SCRIPT = path.join(__dirname, 'peers', 'torch_step.py');

/**
 * The environment as it was before orthornn loaded (it sets OPENBLAS_THREAD_TIMEOUT for its
 * own process when unset): PyTorch uses the system OpenBLAS too, and is faster with its
 * default busy-waiting, so the peer gets the user's setting, not ours.
 */
const ORIGINAL_OPENBLAS_THREAD_TIMEOUT = process.env.OPENBLAS_THREAD_TIMEOUT;

/** Interpreters tried in order: ORTHORNN_BENCH_PYTHON, Debian's (python3-torch), then PATH's. */
function candidates(): string[] {
  const list = [process.env.ORTHORNN_BENCH_PYTHON, '/usr/bin/python3', 'python3'].filter((p): p is string => !!p);
  return [...new Set(list)];
}

export interface PeerCase {
  n: number;
  B: number;
  T: number;
  d: number;
  k: number;
  score: 'all' | 'last';
}

export interface PeerInfo {
  python: string;
  torch: string;
  threads: number;
  /** Where the peer's tensors live: 'cpu' or 'cuda'. */
  device: string;
  /** Whether PyTorch may use TF32 for float32 on the GPU (its own default for cuDNN; ours never does). */
  tf32: boolean;
}

type Reply = { ok: true; [key: string]: unknown } | { ok: false; error: string; trace?: string };

export class TorchPeer {
  private readonly lines: Interface;
  private readonly waiting: ((line: string | null) => void)[] = [];
  private stderr = '';
  private closed = false;

  private constructor(private readonly child: ChildProcessWithoutNullStreams, readonly info: PeerInfo) {
    this.lines = createInterface({ input: child.stdout });
    this.lines.on('line', (line) => this.waiting.shift()?.(line));
    child.stderr.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-4000);
    });
    child.on('exit', () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) w(null);
    });
  }

  /**
   * Starts the peer with `threads` threads and OMP_WAIT_POLICY=PASSIVE (its best setting on a
   * shared machine), its tensors on `device` ('cpu' or 'cuda'); a string says why there is no
   * peer (no PyTorch, it failed to start, or the device is unusable to it).
   */
  static async start(threads: number, device: 'cpu' | 'cuda' = 'cpu', tf32 = false): Promise<TorchPeer | string> {
    const tried: string[] = [];
    for (const python of candidates()) {
      // An empty or partial torch folder imports as a namespace package: ask for a real function.
      const probe = spawnSync(python, ['-c', 'import torch; torch.zeros(1)'], { stdio: 'ignore' });
      tried.push(python);
      if (probe.status !== 0) continue;
      const env: NodeJS.ProcessEnv = { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', OMP_NUM_THREADS: String(threads) };
      if (ORIGINAL_OPENBLAS_THREAD_TIMEOUT === undefined) delete env.OPENBLAS_THREAD_TIMEOUT;
      else env.OPENBLAS_THREAD_TIMEOUT = ORIGINAL_OPENBLAS_THREAD_TIMEOUT;
      const child = spawn(python, [SCRIPT], { env, stdio: ['pipe', 'pipe', 'pipe'] });
      const peer = new TorchPeer(child, { python, torch: '', threads: 0, device, tf32 });
      try {
        const hello = await peer.request({ op: 'hello', threads, device, tf32 });
        Object.assign(peer.info, { torch: String(hello.torch), threads: Number(hello.threads), device: String(hello.device) });
        return peer;
      } catch (err) {
        peer.close();
        // One line: the error's last line (a Python traceback ends with the exception).
        const lines = (err as Error).message.split('\n').map((l) => l.trim()).filter(Boolean);
        return `the PyTorch peer failed to start with ${python}: ${lines[lines.length - 1] ?? 'no reason given'}`;
      }
    }
    return `PyTorch not found (tried ${tried.join(', ')}; set ORTHORNN_BENCH_PYTHON, or install it with: npm run setup -- --bench)`;
  }

  /** One request and its reply; a failed request throws with the peer's error. */
  async request(msg: Record<string, unknown>): Promise<Record<string, unknown>> {
    if (this.closed) throw new Error(`the PyTorch peer has exited${this.stderr ? `: ${this.stderr.trim()}` : ''}`);
    const line = new Promise<string | null>((resolve) => this.waiting.push(resolve));
    this.child.stdin.write(JSON.stringify(msg) + '\n');
    const text = await line;
    if (text === null) throw new Error(`the PyTorch peer exited during '${String(msg.op)}'${this.stderr ? `: ${this.stderr.trim()}` : ''}`);
    const reply = JSON.parse(text) as Reply;
    if (!reply.ok) throw new Error(`PyTorch peer '${String(msg.op)}': ${reply.error}`);
    return reply;
  }

  setup(c: PeerCase, margin: number, lr: number, seed = 1): Promise<Record<string, unknown>> {
    return this.request({ op: 'setup', case: c, margin, lr, seed });
  }

  /**
   * Seconds per training step, for `steps` consecutive steps after `warmup` untimed ones and
   * as many more as take `warmupSeconds`, and the peer's peak RSS.
   */
  async run(steps: number, warmup = 0, warmupSeconds = 0): Promise<{ times: number[]; peakRssBytes: number }> {
    const r = await this.request({ op: 'run', steps, warmup, warmupSeconds });
    return { times: r.times as number[], peakRssBytes: Number(r.peakRssBytes) };
  }

  /** Seconds per Cayley step on one n × n matrix. */
  async cayley(n: number, reps: number, lr: number): Promise<number[]> {
    const r = await this.request({ op: 'cayley', n, reps, lr });
    return r.times as number[];
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.child.stdin.end(JSON.stringify({ op: 'quit' }) + '\n');
    this.lines.close();
  }
}
