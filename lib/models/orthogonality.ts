/**
 * Rounding drift of U and V (DESIGN §2.6): Cayley steps keep them orthogonal only up to
 * rounding, so ‖MᵀM − I‖ creeps up over many float32 steps. A policy re-orthonormalises
 * (QR with the sign fix) every k steps, or whenever the error exceeds a tolerance.
 */
import { rangeError, typeError } from '../errors';
import type { FloatDType } from '../native';
import * as ops from '../ops';
import type { Tensor } from '../tensor';
import { checkOptions, checkTensor } from '../validate';

export interface ReorthonormalizationOptions {
  /** Re-orthonormalise every `every` steps. */
  every?: number;
  /** Re-orthonormalise when ‖MᵀM − I‖_max exceeds this (checked every `checkEvery` steps). */
  tolerance?: number;
  /** How often the tolerance is checked (default 1; each check is one n³ product and a read). */
  checkEvery?: number;
}

export class ReorthonormalizationPolicy {
  readonly every?: number;
  readonly tolerance?: number;
  readonly checkEvery: number;
  /** How many re-orthonormalisations this policy has made. */
  count = 0;

  constructor(options: ReorthonormalizationOptions) {
    const fn = 'ReorthonormalizationPolicy';
    if (options === null || typeof options !== 'object') throw typeError(fn, 'options', 'an object', options);
    checkOptions(fn, options, ['every', 'tolerance', 'checkEvery']);
    if (options.every === undefined && options.tolerance === undefined) throw rangeError(fn, 'options', "'every', 'tolerance' or both", 'neither');
    if (options.every !== undefined && (!Number.isSafeInteger(options.every) || options.every < 1)) throw rangeError(fn, 'every', 'a positive integer', String(options.every));
    if (options.tolerance !== undefined && !(options.tolerance > 0 && Number.isFinite(options.tolerance))) throw rangeError(fn, 'tolerance', 'a positive number', String(options.tolerance));
    const checkEvery = options.checkEvery ?? 1;
    if (!Number.isSafeInteger(checkEvery) || checkEvery < 1) throw rangeError(fn, 'checkEvery', 'a positive integer', String(checkEvery));
    this.every = options.every;
    this.tolerance = options.tolerance;
    this.checkEvery = checkEvery;
  }

  /** Call after the Cayley steps of training step `step` (counted from 1); returns which matrices were re-orthonormalised. */
  async apply<D extends FloatDType>(step: number, matrices: Tensor<D>[]): Promise<boolean[]> {
    if (!Number.isSafeInteger(step) || step < 1) throw rangeError('apply', 'step', 'a positive integer', String(step));
    const done: boolean[] = [];
    for (const [i, M] of matrices.entries()) {
      checkTensor('apply', `matrices[${i}]`, M);
      let fix = this.every !== undefined && step % this.every === 0;
      if (!fix && this.tolerance !== undefined && step % this.checkEvery === 0) {
        const err = ops.orthogonalityError(M);
        fix = (await err.item()) > this.tolerance;
        err.dispose();
      }
      if (fix) {
        ops.reorthonormalize(M);
        this.count++;
      }
      done.push(fix);
    }
    return done;
  }
}
