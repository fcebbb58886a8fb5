/** Named parameter tensors: the state()/loadState() contract shared by every model. */
import type { Context } from '../context';
import { rangeError } from '../errors';
import type { FloatDType } from '../native';
import * as ops from '../ops';
import type { Tensor } from '../tensor';
import { checkFinite, checkTypedArray, readObject } from '../validate';

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
  load(fn: string, input: StateDict): void {
    const state = readObject(fn, 'state', input, 'an object of typed arrays by parameter name');
    const names = this.names();
    for (const key of Object.keys(state)) {
      if (!names.includes(key)) throw rangeError(fn, 'state', `made of ${names.map((n) => `'${n}'`).join(', ')}`, `unknown parameter '${key}'`);
    }
    const staged: [Float32Array | Float64Array, Tensor<D>][] = [];
    for (const name of names) {
      if (state[name] === undefined) throw rangeError(fn, 'state', `a value for every parameter`, `no '${name}'`);
      const v = checkTypedArray(fn, `state.${name}`, state[name], ['Float32Array', 'Float64Array']);
      const t = this.tensors[name];
      if (v.length !== t.size) throw rangeError(fn, `state.${name}`, `${t.size} values (shape [${t.shape.join(', ')}])`, `${v.length}`);
      const data = this.dtype === 'float32' ? Float32Array.from(v) : Float64Array.from(v);
      checkFinite(fn, `state.${name}`, data);
      staged.push([data, t]);
    }
    // Only once everything validated: a bad state leaves the model untouched.
    for (const [data, dst] of staged) {
      const src = this.context.tensor(data, dst.shape) as Tensor<D>;
      ops.copy(src, { out: dst });
      src.dispose();
    }
  }

  dispose(): void {
    for (const t of Object.values(this.tensors)) t.dispose();
  }
}
