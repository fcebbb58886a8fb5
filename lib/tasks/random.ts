/** Seeded random numbers for task data (xoroshiro128+ from pure-rand): the same seed gives the same batches everywhere. */
import prand from 'pure-rand';
import { rangeError } from '../errors';

export class TaskRandom {
  private generator: prand.RandomGenerator;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw rangeError('TaskRandom', 'seed', 'a non-negative safe integer', String(seed));
    // pure-rand seeds with 32 bits; fold the high bits in so that large seeds still differ.
    this.generator = prand.xoroshiro128plus((seed ^ Math.floor(seed / 2 ** 32)) | 0);
  }

  /** The generator's position, for checkpoints: `restore(state())` continues the same stream. */
  state(): number[] {
    return [...this.generator.getState!()];
  }

  restore(state: readonly number[]): void {
    if (!Array.isArray(state) || state.length !== 4 || !state.every((v) => Number.isInteger(v))) {
      throw rangeError('TaskRandom.restore', 'state', 'the 4 integers of state()', JSON.stringify(state));
    }
    this.generator = prand.xoroshiro128plus.fromState(state);
  }

  /** An integer in [low, high]. */
  int(low: number, high: number): number {
    return prand.unsafeUniformIntDistribution(low, high, this.generator);
  }

  /** A float in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = prand.unsafeUniformIntDistribution(0, (1 << 26) - 1, this.generator);
    const lo = prand.unsafeUniformIntDistribution(0, (1 << 27) - 1, this.generator);
    return (hi * 2 ** 27 + lo) / 2 ** 53;
  }
}
