/**
 * Rounding drift of U and V (docs/math.md (M25)–(M26)): Cayley steps keep them orthogonal only up to
 * rounding, so ‖MᵀM − I‖ creeps up over many float32 steps. A policy re-orthonormalises
 * (QR with the sign fix) every k steps, or whenever the error exceeds a tolerance.
 */
import { rangeError, typeError } from '../errors';
import type { FloatDType } from '../native';
import * as ops from '../ops';
import type { Tensor } from '../tensor';
import { checkArray, checkCoefficient, checkInteger, checkOptions, checkTensor } from '../validate';

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
    if (options === undefined) throw typeError(fn, 'options', 'an object', options);
    const opts = checkOptions(fn, options, ['every', 'tolerance', 'checkEvery']);
    if (opts.every === undefined && opts.tolerance === undefined) throw rangeError(fn, 'options', "'every', 'tolerance' or both", 'neither');
    this.every = opts.every === undefined ? undefined : checkInteger(fn, 'every', opts.every, 1);
    this.tolerance = opts.tolerance === undefined ? undefined : checkCoefficient(fn, 'tolerance', opts.tolerance, { exclusive: 'min' });
    this.checkEvery = checkInteger(fn, 'checkEvery', opts.checkEvery ?? 1, 1);
  }

  /** Call after the Cayley steps of training step `step` (counted from 1); returns which matrices were re-orthonormalised. */
  async apply<D extends FloatDType>(step: number, matrices: Tensor<D>[]): Promise<boolean[]> {
    const fn = 'apply';
    checkInteger(fn, 'step', step, 1);
    const list = checkArray(fn, 'matrices', matrices, 'an array of tensors');
    const checked = list.map((M, i) => checkTensor(fn, `matrices[${i}]`, M) as Tensor<D>);
    const done: boolean[] = [];
    for (const M of checked) {
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
