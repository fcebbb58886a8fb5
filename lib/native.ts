/**
 * The one place that loads the compiled addon, and the typed declaration of its whole
 * surface. Everything else imports these types.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ERROR_CLASSES, NativeLoadError, OrthornnError } from './errors';
import type { NativeOps } from './native-ops.gen';

export type DType = 'float32' | 'float64' | 'int32';
export type FloatDType = 'float32' | 'float64';
export type Activation = 'tanh' | 'relu' | 'identity';

export interface BackendInfo {
  /** 'cpu' or 'cuda'. */
  name: string;
  /** Whether this build of the addon contains the backend. */
  compiled: boolean;
  /** Whether it can run here (a CUDA build on a machine without a GPU: compiled, not available). */
  available: boolean;
  /** The CPU model and BLAS, or the GPU's name; '' when unavailable. */
  device: string;
  deviceCount: number;
  /** Why the backend is unavailable. */
  reason?: string;
}

export interface MemoryRecord {
  device: string;
  /** Live tensor storages (a disposed tensor still counts while queued work holds it). */
  tensors: number;
  bytes: number;
}

export interface NativeTensor {
  readonly shape: number[];
  readonly dtype: DType;
  readonly device: string;
  readonly disposed: boolean;
  readonly bytes: number;
  dispose(): void;
}

type T = NativeTensor;

/**
 * Work a context's backend has submitted to its device since it was created (all zero on the
 * CPU). Launches per training step = kernels + libraryCalls + graphs, differenced around a step.
 */
export interface LaunchCounters {
  /** Kernels and copies launched one by one. */
  kernels: number;
  /** cuBLAS and cuSOLVER calls (each may run several kernels). */
  libraryCalls: number;
  /** CUDA graph launches (the Elman recurrence), and the nodes they ran. */
  graphs: number;
  graphNodes: number;
  /** Graphs captured and instantiated (new shapes, or an in-place update the driver refused). */
  graphsBuilt: number;
  /** Instantiated graphs updated in place: the same shapes on other buffers, captured again but not instantiated. */
  graphsUpdated: number;
}

/** The fused operations with more than one implementation (native/core/backend.h, `Fused`). */
export const FUSED_OPS = ['elmanRecurrence', 'lstmRecurrence', 'cayleyFrameSolve', 'cayleyFactor', 'elmanStep', 'sequence'] as const;
export type FusedOp = (typeof FUSED_OPS)[number];

/** One fused op's implementations on a context's backend. */
export interface VariantReport {
  /** Its variants, the reference composite first (CPU: 'reference', 'libxsmm', 'tiled' or 'unpivoted'; CUDA: 'reference', 'graph', 'persistent'). */
  available: string[];
  /** The one the context's options force (null: chosen per call by each variant's own rule). */
  forced: string | null;
  /** The one that ran last (null before the first run). */
  last: string | null;
}

/**
 * A context of the addon: its own methods, and the op methods of native/ops.json (NativeOps,
 * generated into lib/native-ops.gen.ts), each checking its arguments against the op's slots.
 */
export interface NativeContext extends NativeOps {
  readonly backend: string;
  readonly device: string;
  readonly disposed: boolean;
  /** Whether the backend runs an op of native/ops.json (NATIVE_OPS) on dtype. */
  supports(op: string, dtype: DType): boolean;
  launchCounters(): LaunchCounters;
  forceVariant(op: string, variant: string): void;
  limitThreads(threads: number): void;
  /** The worker thread runs only when a core is otherwise idle (Linux SCHED_IDLE); false where there is no such priority. */
  runInBackground(): boolean;
  variants(): Record<FusedOp, VariantReport>;
  fromArray(data: Float32Array | Float64Array | Int32Array, shape: number[]): T;
  empty(shape: number[], dtype: DType): T;
  read(t: T): Promise<Float32Array | Float64Array | Int32Array>;
  sync(): Promise<void>;
  dispose(): void;
  /** Scratch memory a model keeps across steps, usable with this context only. */
  createWorkspace(): NativeWorkspace;
  /** From now on the ops given are recorded, not queued (Context.sequence); sequences do not nest. */
  beginSequence(): void;
  /** Queues the ops recorded since beginSequence() as one task. */
  endSequence(): void;
  /** Frees a workspace's buffers once the work queued before is done. */
  releaseWorkspace(ws: NativeWorkspace): void;
}

/** Scratch memory a model keeps across steps (opaque). */
export type NativeWorkspace = { readonly __workspace: unique symbol };

export interface ElmanNativeConfig {
  inputSize: number;
  hiddenSize: number;
  outputSize: number;
  activation: Activation;
  recurrent: 'svd' | 'plain' | 'penalty';
  margin: number;
  penalty: number;
  spectrumPrior: number;
  /** > 0: clip ∂L/∂a_t element-wise to [−c, c] in BPTT (default 0: none). */
  clipPreactivation?: number;
  loss: 'crossEntropy' | 'mse';
  lastStepOnly: boolean;
}

export type NativeTensors = Partial<Record<string, T>>;

/** The native LSTM baseline (PyTorch nn.LSTM names, gate order i, f, g, o; one layer). */
export interface LstmNativeConfig {
  inputSize: number;
  hiddenSize: number;
  outputSize: number;
  loss: 'crossEntropy' | 'mse';
  lastStepOnly: boolean;
}

export interface NativeAddon {
  NativeContext: new (backend: string, deviceIndex: number) => NativeContext;
  NativeTensor: new (guard: never) => NativeTensor;
  setErrorClasses(classes: Record<string, new (message: string) => Error>): void;
  backends(): BackendInfo[];
  memory(): MemoryRecord[];
  cudaCompiled: boolean;
}

/**
 * OpenBLAS's threads busy-wait about 2^28 cycles (~0.1 s) after every call before they sleep.
 * Ours follow each input projection with a recurrence whose own threads meet at a barrier every
 * step, and spinning BLAS threads beside them made the copy case's step take 19 ms instead of
 * 11 on a 2-core machine about half the time. 2^16 cycles keeps them awake between back-to-back
 * products and out of the way of the recurrence. OpenBLAS reads the variable when it loads,
 * with the addon, so it is set just before; a value the user set is kept.
 */
const OPENBLAS_THREAD_TIMEOUT = '16';

/** Where the loaded addon came from (see nativeBuild()). */
export interface NativeBuildInfo {
  /** The .node file. */
  file: string;
  /** 'ORTHORNN_ADDON', 'source' (this package's own build/), or the platform package's name. */
  source: string;
}

interface Candidate {
  file: string;
  source: string;
}

/** The prebuilt platform packages for this machine, best first: the CUDA variant when installed. */
export function platformPackages(platform: string = process.platform, arch: string = process.arch): string[] {
  const base = `@orthornn/${platform}-${arch}`;
  return [`${base}-cuda`, base];
}

function packageRoot(): string {
  // lib/ when run from source (tests), dist/ when compiled: the package root is one up.
  return path.resolve(__dirname, '..');
}

/**
 * Where the addon may be, in order: ORTHORNN_ADDON alone when set; then this package's own
 * build (it exists only when the install compiled: no prebuilt loaded, or a source build was
 * asked for, or a checkout); then the platform packages npm installed.
 */
function candidates(): { list: Candidate[]; looked: string[] } {
  const override = process.env.ORTHORNN_ADDON;
  if (override) return { list: [{ file: path.resolve(override), source: 'ORTHORNN_ADDON' }], looked: [] };
  const list: Candidate[] = [];
  const looked: string[] = [];
  for (const dir of ['Release', 'Debug']) {
    const file = path.join(packageRoot(), 'build', dir, 'orthornn.node');
    if (existsSync(file)) list.push({ file, source: 'source' });
    else looked.push(file);
  }
  for (const name of platformPackages()) {
    try {
      list.push({ file: require.resolve(`${name}/orthornn.node`, { paths: [packageRoot()] }), source: name });
    } catch {
      looked.push(name);
    }
  }
  return { list, looked };
}

function firstLine(err: unknown): string {
  return err instanceof Error ? err.message.split('\n')[0] : String(err);
}

/** Shared libraries a failed dlopen names ("libcublas.so.11: cannot open shared object file"). */
function missingLibraries(reason: string): string[] {
  return [...reason.matchAll(/([\w.+-]+\.so(?:\.\d+)*): cannot open shared object file/g)].map((m) => m[1]);
}

let loadedFrom: NativeBuildInfo | undefined;

function load(): NativeAddon {
  let addon: NativeAddon | undefined;
  if (process.env.OPENBLAS_THREAD_TIMEOUT === undefined) process.env.OPENBLAS_THREAD_TIMEOUT = OPENBLAS_THREAD_TIMEOUT;
  const { list, looked } = candidates();
  const failures: string[] = [];
  for (const c of list) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      addon = require(c.file) as NativeAddon;
      loadedFrom = { file: c.file, source: c.source };
      break;
    } catch (err) {
      const reason = firstLine(err);
      failures.push(`${c.source === 'source' ? 'the local build' : c.source} (${c.file}): ${reason}`);
      const missing = missingLibraries(reason);
      if (c.source.endsWith('-cuda') && list.some((o) => o.source !== c.source)) {
        // The CUDA package links cuBLAS/cuSOLVER from the system: without them, say so once and go on with the CPU.
        process.emitWarning(
          `orthornn: ${c.source} cannot load (${missing.length ? `${missing.join(', ')} not found` : reason}); using the CPU backend. ` +
            'It needs libcublas.so.11, libcublasLt.so.11 and libcusolver.so.11 (CUDA 11.x): install them (Debian/Ubuntu: libcublas11 libcusolver11) ' +
            'or put their folder on LD_LIBRARY_PATH to use the GPU.',
          { code: 'ORTHORNN_CUDA_PACKAGE_UNAVAILABLE' },
        );
      }
    }
  }
  if (!addon) {
    const override = process.env.ORTHORNN_ADDON;
    throw new NativeLoadError(
      'the orthornn native addon could not be loaded' +
        (failures.length ? `:\n${failures.map((f) => `  - ${f}`).join('\n')}\n` : ` (no build found; looked for ${looked.join(', ')})\n`) +
        'Fixes:\n' +
        `  - reinstall so that npm installs the prebuilt binary for ${process.platform}-${process.arch} (optional dependency ${platformPackages()[1]}; ` +
        'not skipped with --omit=optional or --no-optional), or build from source: `npm rebuild orthornn --build-from-source`\n' +
        '  - a source build needs cmake (or node-gyp), a C++17 compiler and OpenBLAS + LAPACKE (Debian/Ubuntu: ' +
        '`sudo apt-get install cmake g++ libopenblas-dev liblapacke-dev`; in a checkout `npm run setup`)\n' +
        '  - a source build links the system OpenBLAS/LAPACKE: install them where it runs\n' +
        '  - a CUDA build needs the cuBLAS/cuSOLVER it was built against on the library path\n' +
        (override ? `  - ORTHORNN_ADDON points at '${override}': check that file\n` : ''),
    );
  }
  addon.setErrorClasses(ERROR_CLASSES);
  return addon;
}

let cached: NativeAddon | undefined;

/** The loaded addon (loaded on first use, so importing orthornn never throws). */
export function native(): NativeAddon {
  if (!cached) cached = load();
  return cached;
}

/** Which .node file the addon was loaded from (loading it first if needed). */
export function nativeBuild(): NativeBuildInfo {
  native();
  return { ...loadedFrom! };
}

export { OrthornnError };
