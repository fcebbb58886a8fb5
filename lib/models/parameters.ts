/** Named parameter tensors: the state()/loadState() contract shared by every model. */
import type { Context } from '../context';
import { rangeError, typeError } from '../errors';
import type { FloatDType } from '../native';
import * as ops from '../ops';
import type { Tensor } from '../tensor';
import { checkFinite } from '../validate';

export type StateDict = Record<string, Float32Array | Float64Array>;

export class ParameterSet<D extends FloatDType> {
  constructor(
    readonly context: Context,
    readonly dtype: D,
    readonly tensors: Record<string, Tensor<D>>,
  ) {}

  names(): string[] {
    return Object.keys(this.tensors);
  }

  /** Every parameter's values by name, as typed arrays of the model's dtype. */
  async state(): Promise<StateDict> {
    const out: StateDict = {};
    for (const [name, t] of Object.entries(this.tensors)) out[name] = (await t.read()) as Float32Array | Float64Array;
    return out;
  }

  /** Overwrites every parameter from `state`; all names must be present and no others. */
  load(fn: string, state: StateDict): void {
    if (state === null || typeof state !== 'object') throw typeError(fn, 'state', 'an object of typed arrays by parameter name', state);
    const names = this.names();
    for (const key of Object.keys(state)) {
      if (!names.includes(key)) throw rangeError(fn, 'state', `made of ${names.map((n) => `'${n}'`).join(', ')}`, `unknown parameter '${key}'`);
    }
    const staged: [Tensor<D>, Tensor<D>][] = [];
    for (const name of names) {
      const v = state[name];
      if (v === undefined) throw rangeError(fn, 'state', `a value for every parameter`, `no '${name}'`);
      if (!(v instanceof Float32Array || v instanceof Float64Array)) throw typeError(fn, `state.${name}`, 'a Float32Array or Float64Array', v);
      const t = this.tensors[name];
      if (v.length !== t.size) throw rangeError(fn, `state.${name}`, `${t.size} values (shape [${t.shape.join(', ')}])`, `${v.length}`);
      checkFinite(fn, `state.${name}`, v);
      const data = this.dtype === 'float32' ? Float32Array.from(v) : Float64Array.from(v);
      staged.push([this.context.tensor(data, t.shape) as Tensor<D>, t]);
    }
    // Only once everything validated: a bad state leaves the model untouched.
    for (const [src, dst] of staged) {
      ops.copy(src, { out: dst });
      src.dispose();
    }
  }

  dispose(): void {
    for (const t of Object.values(this.tensors)) t.dispose();
  }
}
