/**
 * native/ops.json is the one declaration of the native ops: the generated header and
 * TypeScript interface are current, every bound op is a NativeContext method whose arguments
 * are checked against its slots, and supports() answers from the table.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { native, type DType, type NativeContext } from '../lib/native';
import { BOUND_OPS, NATIVE_OPS } from '../lib/native-ops.gen';
import { availableBackends } from './helpers';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const gen = require('../scripts/gen-ops.js') as {
  generate(file?: string): Record<string, string>;
  validate(table: unknown): void;
  TABLE: string;
};

interface Slot {
  name: string;
  kind: string;
  dtype?: string;
  like?: string;
  square?: boolean;
  min?: number;
  max?: number;
}
interface OpEntry {
  name: string;
  args?: Slot[];
  dtypes?: Record<string, DType[]>;
}
const table = JSON.parse(readFileSync(gen.TABLE, 'utf8')) as { dtypes: Record<string, DType[]>; ops: OpEntry[] };

/** NativeContext's own methods, which are not ops. */
const UTILITIES = [
  'constructor', 'supports', 'launchCounters', 'forceVariant', 'limitThreads', 'runInBackground', 'variants', 'fromArray', 'empty', 'read',
  'sync', 'dispose', 'createWorkspace', 'releaseWorkspace', 'beginSequence', 'endSequence', 'backend', 'device', 'disposed',
];

describe('41 the op table (native/ops.json)', () => {
  it('the generated header and TypeScript interface are those the table gives (npm run gen:ops)', () => {
    for (const [file, text] of Object.entries(gen.generate())) {
      assert.equal(readFileSync(file, 'utf8'), text, `${path.relative(process.cwd(), file)} is stale: run \`npm run gen:ops\``);
    }
    assert.deepEqual([...NATIVE_OPS], table.ops.map((o) => o.name));
    assert.deepEqual([...BOUND_OPS], table.ops.filter((o) => o.args).map((o) => o.name));
  });

  it('the generator refuses a table with a dangling reference, an unknown kind or a duplicate op', () => {
    const bad = (mutate: (t: { dtypes: unknown; ops: OpEntry[] }) => void, message: RegExp) => {
      const t = JSON.parse(JSON.stringify(table)) as { dtypes: unknown; ops: OpEntry[] };
      mutate(t);
      assert.throws(() => gen.validate(t), message);
    };
    bad((t) => { t.ops.find((o) => o.name === 'mul')!.args![1].like = 'nope'; }, /'nope' is not an earlier tensor argument/);
    bad((t) => { t.ops.find((o) => o.name === 'mul')!.args![0].kind = 'tensr'; }, /unknown kind 'tensr'/);
    bad((t) => { t.ops.push({ ...t.ops[0] }); }, /declared twice/);
    bad((t) => { t.ops.find((o) => o.name === 'reduce')!.args![1].max = undefined; }, /integer slots/);
  });

  it('NativeContext has a method for every bound op and no op method the table lacks', () => {
    const proto = native().NativeContext.prototype as unknown as Record<string, unknown>;
    const own = Object.getOwnPropertyNames(proto);
    for (const op of BOUND_OPS) assert.equal(typeof proto[op], 'function', `NativeContext.${op}`);
    const extra = own.filter((k) => !UTILITIES.includes(k) && !(BOUND_OPS as readonly string[]).includes(k));
    assert.deepEqual(extra, [], 'NativeContext methods that are neither utilities nor ops of the table');
    // Model ops are context methods too: the addon exports no op functions of its own.
    const fns = Object.entries(native()).filter(([, v]) => typeof v === 'function').map(([k]) => k);
    assert.deepEqual(fns.filter((k) => (NATIVE_OPS as readonly string[]).includes(k)), []);
  });

  for (const device of availableBackends()) {
    it(`supports(op, dtype) on ${device} answers every op from the table's ${device} column; an unknown op is a RangeError`, () => {
      const ctx = new (native().NativeContext)(device, 0);
      try {
        for (const op of table.ops) {
          const dtypes = op.dtypes?.[device] ?? table.dtypes[device];
          assert.ok(dtypes, `native/ops.json has no dtypes for the ${device} backend`);
          for (const d of ['float32', 'float64', 'int32'] as DType[]) assert.equal(ctx.supports(op.name, d), dtypes.includes(d), `${device} ${op.name} ${d}`);
        }
        assert.throws(() => ctx.supports('antisymmetrize', 'float32'), { code: 'ERR_ORTHORNN_RANGE', message: /op of native\/ops\.json/ });
      } finally {
        ctx.dispose();
      }
    });
  }

  describe('every bound op checks each argument against its slot, in C++, naming the op and the argument', () => {
    let ctx: NativeContext;
    before(() => {
      ctx = new (native().NativeContext)('cpu', 0);
    });
    after(() => ctx.dispose());

    /** A value that passes slot `s` given the earlier values (by name). */
    function valid(s: Slot, earlier: Map<string, unknown>, dtype: DType = 'float64'): unknown {
      switch (s.kind) {
        case 'tensor':
        case 'tensor?': {
          const ref = s.like ?? (['any', 'float', 'int32'].includes(s.dtype!) ? undefined : s.dtype);
          const refTensor = ref ? (earlier.get(ref) as { dtype: DType; shape: number[] }) : undefined;
          const dt: DType = s.dtype === 'int32' ? 'int32' : refTensor?.dtype ?? dtype;
          const shape = s.like ? refTensor!.shape : s.square ? [2, 2] : refTensor?.shape ?? [2, 2];
          return ctx.empty(shape, dt);
        }
        case 'number': return 1;
        case 'integer': return s.min;
        case 'seed': return 1;
        case 'boolean': return false;
        case 'activation': return 'tanh';
        case 'workspace': return ctx.createWorkspace();
        case 'object': return {};
        default: throw new Error(`unknown slot kind ${s.kind}`);
      }
    }

    for (const op of table.ops.filter((o) => o.args)) {
      it(op.name, () => {
        const call = (args: unknown[]) => (ctx as unknown as Record<string, (...a: unknown[]) => void>)[op.name](...args);
        const earlier = new Map<string, unknown>();
        const args: unknown[] = [];
        op.args!.forEach((s) => {
          const prefix = [...args];
          // A string where the slot wants something else: a coded TypeError naming the op and the slot.
          assert.throws(() => call([...prefix, 'junk']), (e: Error & { code?: string }) => {
            assert.equal(e.code, s.kind === 'activation' ? 'ERR_ORTHORNN_RANGE' : 'ERR_ORTHORNN_TYPE', e.message);
            assert.match(e.message, new RegExp(`^${op.name}: argument '${s.name}' must be `));
            return true;
          });
          if ((s.kind === 'tensor' || s.kind === 'tensor?') && s.dtype !== 'any' && (s.dtype !== undefined || s.like !== undefined)) {
            // The wrong dtype: int32 where a float is wanted, float32 where int32 or another slot's float64 is.
            const wrong = ctx.empty(s.square || s.like === undefined ? [2, 2] : (valid(s, earlier) as { shape: number[] }).shape, s.dtype === 'float' ? 'int32' : 'float32');
            assert.throws(() => call([...prefix, wrong]), {
              code: 'ERR_ORTHORNN_TYPE',
              message: new RegExp(`^${op.name}: argument '${s.name}' must be (float32 or float64|int32|float64 like '\\w+'), got (int32|float32)$`),
            });
          }
          if (s.like !== undefined) {
            const ref = earlier.get(s.like) as { dtype: DType; shape: number[] };
            const other = ctx.empty([ref.shape.reduce((a, b) => a * b, 1) + 1], ref.dtype);
            assert.throws(() => call([...prefix, other]), { code: 'ERR_ORTHORNN_RANGE', message: new RegExp(`^${op.name}: argument '${s.name}' must have \\d+ elements like '${s.like}'`) });
          }
          if (s.square) {
            const ref = s.like ? (earlier.get(s.like) as { dtype: DType }) : undefined;
            const rect = ctx.empty([2, 3], ref?.dtype ?? 'float64');
            assert.throws(() => call([...prefix, rect]), { message: new RegExp(`^${op.name}: argument '${s.name}' must (be a square matrix|have 4 elements)`) });
          }
          if (s.kind === 'integer') {
            assert.throws(() => call([...prefix, s.max! * 2 + 1]), { code: 'ERR_ORTHORNN_RANGE', message: new RegExp(`^${op.name}: argument '${s.name}' must be an integer from`) });
          }
          const v = valid(s, earlier);
          earlier.set(s.name, v);
          args.push(v);
        });
      });
    }
  });
});
