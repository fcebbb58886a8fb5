/**
 * Many runs of one shape trained together: `TrainerGroup` / `trainGroup(configs)`.
 *
 * The members share everything that decides the data and the model's shapes (the task and its
 * options, the seed, the model kind, sizes and dtype, the batch size, the budget and the
 * evaluation settings) and may differ in the rest: the margin, the initialisation, the
 * optimiser and its rates, clipping, the schedule, targets, where each writes (MEMBER_KEYS).
 * Each step draws one batch from one data source for all of them; each member takes its own
 * step on it (its own model, optimiser state, Cayley steps, validations, best weights), writes
 * its own run folder, and stops on its own target. A member's folder is an ordinary run folder:
 * its records and checkpoints are those of the same configuration trained alone, bit for bit
 * (test 83), and `Trainer.resume` continues it alone.
 *
 * This is the semantics of training K models per launch on a GPU (docs/gpu.md): one batch, K
 * parameter sets. On the CPU the members' steps are queued one after another on one context.
 * On a GPU, without a context given, the members are dealt over up to streamsPerGroup()
 * contexts of that device, each with a CUDA stream of its own, so that their steps run side by
 * side on the GPU (as many as the GPU's work queues: more streams would share queues and wait
 * on each other; docs/gpu.md has the figures).
 */
import path from 'node:path';
import { Context } from '../context';
import { rangeError, typeError } from '../errors';
import { checkArray, checkBoolean, checkOptions } from '../validate';
import type { TrainConfig } from './config';
import type { RunRecord } from './records';
import { createSource, type TaskSource } from './sources';
import { checkSource, resolveRunConfig, Trainer, trainingContext, type Progress, type TrainHooks, type TrainResult } from './trainer';

/** The configuration keys a group's members may differ in; every other key they share. */
export const MEMBER_KEYS: readonly (keyof TrainConfig)[] = [
  'margin', 'penalty', 'spectrumPrior', 'init', 'lstmInit', 'optimizer', 'rmsprop', 'lr', 'momentum', 'weightDecay', 'cayleyLr', 'spectrumLr',
  'clipNorm', 'clipPreactivation', 'schedule', 'decayEvery', 'decayRate', 'reorthTolerance', 'targetAccuracy', 'targetLoss', 'out',
];

/** The most members one group takes. */
export const MAX_MEMBERS = 256;

/**
 * On a GPU, the most contexts (CUDA streams) a group's members are dealt over: the device's
 * hardware work queues, 8 unless CUDA_DEVICE_MAX_CONNECTIONS (read by CUDA when the process
 * first uses the GPU) raises them, up to 32.
 */
export function streamsPerGroup(env: NodeJS.ProcessEnv = process.env): number {
  const connections = Number.parseInt(env.CUDA_DEVICE_MAX_CONNECTIONS ?? '', 10);
  return Number.isFinite(connections) ? Math.min(32, Math.max(1, connections)) : 8;
}

/**
 * The contexts of a group of `count` members, member i on `contexts[i % contexts.length]`:
 * the one given; else a private CPU context; else up to streamsPerGroup() new contexts of the device.
 */
function groupContexts(config: TrainConfig, count: number, given?: Context): { contexts: Context[]; owns: boolean } {
  if (given || config.device === 'cpu') {
    const { context, owns } = trainingContext(config, given);
    return { contexts: [context], owns };
  }
  const contexts: Context[] = [];
  try {
    for (let i = 0, streams = Math.min(count, streamsPerGroup()); i < streams; i++) contexts.push(new Context({ device: config.device }));
  } catch (err) {
    for (const c of contexts) c.dispose();
    throw err;
  }
  return { contexts, owns: true };
}

export interface GroupHooks {
  /** After every step of the group: the step and each member's loss (NaN for a member that has finished). */
  onStep?(progress: Omit<Progress, 'loss' | 'valid'> & { losses: number[] }): void;
  /** Every record of every member, as written. */
  onRecord?(member: number, record: RunRecord): void;
  /** Stops every member after the step in progress, with its checkpoint (see TrainHooks.signal). */
  signal?: AbortSignal;
}

export interface GroupExtras {
  /** The context all members train on (default: a private CPU context, or on a GPU up to streamsPerGroup() contexts of their own). */
  context?: Context;
  /** Your own data (see TrainerExtras.source): the members' task is then 'custom'. */
  source?: TaskSource;
  /** false: no run folders (see TrainerExtras.runFolder). Default true. */
  runFolder?: boolean;
}

/**
 * What a configuration shares with the members of its group: its resolved keys but MEMBER_KEYS,
 * as a string. Two resolved configurations can train in one group when these are equal.
 */
export function sharedKeyOf(config: TrainConfig): string {
  const member = new Set<string>(MEMBER_KEYS);
  return JSON.stringify(Object.keys(config).sort().filter((k) => !member.has(k)).map((k) => [k, config[k as keyof TrainConfig]]));
}

/** Refuses members that differ in a shared key, naming the first such key. */
function checkShared(fn: string, configs: readonly TrainConfig[], arg: string): void {
  const member = new Set<string>(MEMBER_KEYS);
  const first = configs[0];
  for (const [i, c] of configs.entries()) {
    for (const key of Object.keys(first) as (keyof TrainConfig)[]) {
      if (member.has(key) || c[key] === first[key]) continue;
      throw rangeError(fn, `${arg}[${i}].${key}`, `${JSON.stringify(first[key])}, as ${arg}[0]'s (members share every key but ${MEMBER_KEYS.join(', ')})`, JSON.stringify(c[key]));
    }
  }
}

export class TrainerGroup {
  private constructor(
    /** The members, in the order of their configurations. */
    readonly members: readonly Trainer[],
    /** The data source they share. */
    readonly source: TaskSource,
    /** The contexts the members train on (member i on contexts[i % contexts.length]). */
    readonly contexts: readonly Context[],
    private readonly ownsContexts: boolean,
  ) {}

  /** K fresh runs (see the top of this file): resolves and checks the configurations, builds every member. */
  static async create(configs: readonly Partial<TrainConfig>[], extra: GroupExtras = {}): Promise<TrainerGroup> {
    const fn = 'TrainerGroup.create';
    const list = checkArray(fn, 'configs', configs, 'an array of configurations') as Partial<TrainConfig>[];
    if (list.length === 0 || list.length > MAX_MEMBERS) throw rangeError(fn, 'configs', `1 to ${MAX_MEMBERS} configurations`, `${list.length}`);
    const more = checkOptions(fn, extra, ['context', 'source', 'runFolder']);
    const given = more.source === undefined ? undefined : checkSource(fn, more.source);
    const persistent = checkBoolean(fn, 'extra.runFolder', more.runFolder ?? true);
    const resolved = list.map((options, i) => {
      if (options === null || typeof options !== 'object') throw typeError(fn, `configs[${i}]`, 'a configuration object', options);
      return resolveRunConfig(fn, `configs[${i}]`, options, given, persistent);
    });
    checkShared(fn, resolved, 'configs');
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const base = path.join('runs', `${given?.name ?? resolved[0].task}-group-${stamp}`);
    const dirs = resolved.map((c, i) => (persistent ? c.out || path.join(base, `member-${i}`) : ''));
    dirs.forEach((dir, i) => {
      const j = dirs.findIndex((d) => d !== '' && path.resolve(d) === path.resolve(dir));
      if (dir !== '' && j !== i) throw rangeError(fn, `configs[${i}].out`, `a run folder of its own`, `'${dir}', configs[${j}]'s too`);
    });
    const { contexts, owns } = groupContexts(resolved[0], resolved.length, more.context);
    const source = given ?? createSource(resolved[0]);
    const members: Trainer[] = [];
    try {
      for (const [i, config] of resolved.entries()) members.push(await Trainer.open(config, source, dirs[i], contexts[i % contexts.length]));
    } catch (err) {
      for (const m of members) m.dispose();
      if (owns) for (const c of contexts) c.dispose();
      throw err;
    }
    return new TrainerGroup(members, source, contexts, owns);
  }

  /**
   * Continues a group from its members' run folders (each from its last.safetensors). They must
   * share every key but MEMBER_KEYS and stand at the same step; a member that stopped on its
   * own target is continued alone (Trainer.resume), not in a group.
   */
  static async resume(runDirs: readonly string[], extra: Omit<GroupExtras, 'runFolder'> = {}): Promise<TrainerGroup> {
    const fn = 'TrainerGroup.resume';
    const dirs = checkArray(fn, 'runDirs', runDirs, 'an array of run folders') as string[];
    if (dirs.length === 0 || dirs.length > MAX_MEMBERS) throw rangeError(fn, 'runDirs', `1 to ${MAX_MEMBERS} run folders`, `${dirs.length}`);
    dirs.forEach((d, i) => {
      if (typeof d !== 'string' || d === '') throw typeError(fn, `runDirs[${i}]`, 'a run folder', d);
    });
    const more = checkOptions(fn, extra, ['context', 'source']);
    const given = more.source === undefined ? undefined : checkSource(fn, more.source);
    let source: TaskSource | undefined;
    let contexts: Context[] | undefined;
    let owns = false;
    const members: Trainer[] = [];
    const configs: TrainConfig[] = [];
    const shared = {
      context: (config: TrainConfig) => {
        if (!contexts) ({ contexts, owns } = groupContexts(config, dirs.length, more.context));
        return contexts[members.length % contexts.length];
      },
      source: (config: TrainConfig) => {
        // Checked before the shared source is restored from this member's checkpoint.
        checkShared(fn, [...configs, config], 'runDirs');
        return (source ??= createSource(config));
      },
    };
    try {
      for (const dir of dirs) {
        const member = await Trainer.reopen(dir, given ? { source: given } : {}, shared);
        members.push(member);
        configs.push(member.config);
      }
      checkShared(fn, configs, 'runDirs');
      const steps = members.map((m) => m.step);
      const at = steps.findIndex((s) => s !== steps[0]);
      if (at > 0) throw rangeError(fn, `runDirs[${at}]`, `a run at step ${steps[0]}, as runDirs[0]'s (resume a member that stopped on its own with Trainer.resume)`, `step ${steps[at]}`);
    } catch (err) {
      for (const m of members) m.dispose();
      if (owns) for (const c of contexts ?? []) c.dispose();
      throw err;
    }
    return new TrainerGroup(members, given ?? source!, contexts!, owns);
  }

  /** The step all members still training have taken. */
  get step(): number {
    return Math.max(...this.members.map((m) => m.step));
  }

  /**
   * Trains every member to its budget or target, a batch at a time for all, then tests each
   * on its best weights; returns the members' results in order. A member that reaches its
   * target finishes there (its checkpoint and test then) while the others go on.
   */
  async run(hooks: GroupHooks = {}): Promise<TrainResult[]> {
    const results: (TrainResult | undefined)[] = this.members.map(() => undefined);
    const memberHooks: TrainHooks[] = this.members.map((_, i) => ({
      ...(hooks.onRecord && { onRecord: (r: RunRecord) => hooks.onRecord!(i, r) }),
      ...(hooks.signal && { signal: hooks.signal }),
    }));
    for (const m of this.members) m.start();
    const { batchSize } = this.members[0].config;
    let active = this.members.map((_, i) => i).filter((i) => !this.members[i].done);
    while (active.length > 0 && hooks.signal?.aborted !== true) {
      const batch = this.source.trainBatch(batchSize);
      // Every member's step is queued before the first is awaited.
      const losses = this.members.map(() => NaN);
      const taken = await Promise.all(active.map((i) => this.members[i].stepOn(batch, memberHooks[i])));
      active.forEach((i, j) => (losses[i] = taken[j]));
      for (const i of active) await this.members[i].afterStep(memberHooks[i]);
      // A member that is done finishes now, while the source stands where its run ends.
      for (const i of active) if (this.members[i].done) results[i] = await this.members[i].finish(memberHooks[i]);
      active = active.filter((i) => results[i] === undefined);
      const first = this.members[0];
      hooks.onStep?.({ step: this.step, totalSteps: first.plannedSteps, epoch: this.source.epoch, losses });
    }
    for (const i of active) results[i] = await this.members[i].finish(memberHooks[i]);
    return results as TrainResult[];
  }

  dispose(): void {
    for (const m of this.members) m.dispose();
    if (this.ownsContexts) for (const c of this.contexts) c.dispose();
  }
}

/** Trains a group end to end (see TrainerGroup). */
export async function trainGroup(configs: readonly Partial<TrainConfig>[], hooks: GroupHooks = {}, extra: GroupExtras = {}): Promise<TrainResult[]> {
  const group = await TrainerGroup.create(configs, extra);
  try {
    return await group.run(hooks);
  } finally {
    group.dispose();
  }
}
