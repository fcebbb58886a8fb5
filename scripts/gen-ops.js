#!/usr/bin/env node
// Turns native/ops.json, the one declaration of the native ops, into
//   native/core/ops.gen.h   the Op enum, each op's argument slots and the dtypes each backend supports
//   lib/native-ops.gen.ts   NativeOps, the TypeScript signatures of NativeContext's op methods
// `node scripts/gen-ops.js` (npm run gen:ops) rewrites both; `--check` exits 1 when either is
// stale. Test 41 runs the same comparison.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const TABLE = path.join(ROOT, 'native', 'ops.json');
const HEADER = path.join(ROOT, 'native', 'core', 'ops.gen.h');
const TS = path.join(ROOT, 'lib', 'native-ops.gen.ts');

const DTYPES = ['float32', 'float64', 'int32']; // DType's order (native/core/dtype.h)
const BACKENDS = ['cpu', 'cuda'];
const KINDS = {
  tensor: 'Tensor',
  'tensor?': 'OptionalTensor',
  number: 'Number',
  integer: 'Integer',
  seed: 'Seed',
  boolean: 'Boolean',
  activation: 'Activation',
  workspace: 'Workspace',
  object: 'Object',
};
const TS_TYPES = {
  tensor: 'T',
  'tensor?': 'T | null',
  number: 'number',
  integer: 'number',
  seed: 'number',
  boolean: 'boolean',
  activation: 'Activation',
  workspace: 'NativeWorkspace',
};
const ARG_KEYS = new Set(['name', 'kind', 'dtype', 'like', 'square', 'min', 'max', 'ts']);
const OP_KEYS = new Set(['name', 'doc', 'args', 'dtypes']);

/** Checks the table and throws an Error naming the first problem. */
function validate(table) {
  const fail = (msg) => {
    throw new Error(`native/ops.json: ${msg}`);
  };
  for (const b of BACKENDS) if (!Array.isArray(table.dtypes?.[b])) fail(`dtypes.${b} must list the dtypes ops support by default`);
  const names = new Set();
  for (const op of table.ops) {
    if (!/^[a-z][A-Za-z0-9]*$/.test(op.name ?? '')) fail(`bad op name ${JSON.stringify(op.name)}`);
    if (names.has(op.name)) fail(`op '${op.name}' is declared twice`);
    names.add(op.name);
    for (const k of Object.keys(op)) if (!OP_KEYS.has(k)) fail(`op '${op.name}': unknown key '${k}'`);
    if (typeof op.doc !== 'string' || !op.doc) fail(`op '${op.name}' needs a doc line`);
    for (const b of Object.keys(op.dtypes ?? {})) {
      if (!BACKENDS.includes(b)) fail(`op '${op.name}': unknown backend '${b}'`);
      for (const d of op.dtypes[b]) if (!DTYPES.includes(d)) fail(`op '${op.name}': unknown dtype '${d}'`);
    }
    const seen = [];
    for (const a of op.args ?? []) {
      const where = `op '${op.name}', argument '${a.name}'`;
      for (const k of Object.keys(a)) if (!ARG_KEYS.has(k)) fail(`${where}: unknown key '${k}'`);
      if (!KINDS[a.kind]) fail(`${where}: unknown kind '${a.kind}'`);
      const isTensor = a.kind === 'tensor' || a.kind === 'tensor?';
      if (isTensor !== (a.dtype !== undefined || a.like !== undefined)) fail(`${where}: a tensor slot has 'dtype' or 'like', other slots neither`);
      if (a.dtype !== undefined && a.like !== undefined) fail(`${where}: 'dtype' and 'like' exclude each other`);
      const ref = a.like ?? (['any', 'float', 'int32'].includes(a.dtype) ? undefined : a.dtype);
      if (ref !== undefined && !seen.includes(ref)) fail(`${where}: '${ref}' is not an earlier tensor argument`);
      if (ref !== undefined && op.args.find((b) => b.name === ref).kind !== 'tensor') fail(`${where}: '${ref}' must be a required tensor`);
      if ((a.kind === 'integer') !== (a.min !== undefined && a.max !== undefined)) fail(`${where}: integer slots (only) have min and max`);
      if ((a.kind === 'object') !== (a.ts !== undefined)) fail(`${where}: object slots (only) name their TypeScript type in 'ts'`);
      if (a.square !== undefined && !isTensor) fail(`${where}: only tensors can be square`);
      if (isTensor) seen.push(a.name);
    }
  }
}

const pascal = (s) => s[0].toUpperCase() + s.slice(1);
const cstr = (s) => JSON.stringify(s);
const mask = (list) => list.reduce((m, d) => m | (1 << DTYPES.indexOf(d)), 0);

function header(table) {
  const ops = table.ops;
  const out = [];
  out.push('// Generated from native/ops.json by scripts/gen-ops.js: edit the table, then `npm run gen:ops`.');
  out.push('#pragma once');
  out.push('#include <cstdint>');
  out.push('');
  out.push('namespace orthornn {');
  out.push('');
  out.push('// Every native op: the bound ones (NativeContext methods) and the backend primitives they use.');
  out.push('enum class Op : int {');
  for (const op of ops) out.push(`  ${pascal(op.name)},  // ${op.doc}`);
  out.push('};');
  out.push(`constexpr int kOpCount = ${ops.length};`);
  out.push('');
  out.push('// X(Enum, name) for each op that is a NativeContext method.');
  out.push('#define ORTHORNN_BOUND_OPS(X) \\');
  const bound = ops.filter((o) => o.args);
  bound.forEach((o, i) => out.push(`  X(${pascal(o.name)}, ${o.name})${i + 1 < bound.length ? ' \\' : ''}`));
  out.push('');
  out.push('enum class ArgKind : uint8_t { ' + Object.values(KINDS).join(', ') + ' };');
  out.push('// A tensor slot\'s dtype: any, a float, int32, or the dtype of the slot `ref` names.');
  out.push('enum class DTypeRule : uint8_t { None, Any, Float, Int32, Same };');
  out.push('struct ArgSpec {');
  out.push('  const char* name;');
  out.push('  ArgKind kind;');
  out.push('  DTypeRule dtype;');
  out.push('  int8_t ref;        // DTypeRule::Same: the slot whose dtype this one has (−1: none)');
  out.push('  int8_t like;       // the slot whose dtype and element count this one has (−1: none)');
  out.push('  bool square;       // a square matrix');
  out.push('  double min, max;   // ArgKind::Integer: its range');
  out.push('};');
  out.push('struct OpSpec {');
  out.push('  const char* name;');
  out.push('  const ArgSpec* args;  // null for backend primitives');
  out.push('  int argCount;');
  out.push('  uint8_t dtypes[2];    // per backend (cpu, cuda): bit d set when DType(d) is supported');
  out.push('};');
  out.push('');
  for (const op of bound) {
    const idx = (n) => op.args.findIndex((a) => a.name === n);
    out.push(`inline constexpr ArgSpec k${pascal(op.name)}Args[] = {`);
    for (const a of op.args) {
      const rule = a.dtype === undefined && a.like === undefined ? 'None'
        : a.like !== undefined ? 'Same'
        : { any: 'Any', float: 'Float', int32: 'Int32' }[a.dtype] ?? 'Same';
      const ref = a.like !== undefined ? idx(a.like) : rule === 'Same' ? idx(a.dtype) : -1;
      const like = a.like !== undefined ? idx(a.like) : -1;
      out.push(`    {${cstr(a.name)}, ArgKind::${KINDS[a.kind]}, DTypeRule::${rule}, ${ref}, ${like}, ${a.square ? 'true' : 'false'}, ${a.min ?? 0}, ${a.max ?? 0}},`);
    }
    out.push('};');
  }
  out.push('');
  out.push('inline constexpr OpSpec kOps[kOpCount] = {');
  for (const op of ops) {
    const d = BACKENDS.map((b) => mask(op.dtypes?.[b] ?? table.dtypes[b]));
    const args = op.args ? `k${pascal(op.name)}Args, ${op.args.length}` : 'nullptr, 0';
    out.push(`    {${cstr(op.name)}, ${args}, {${d.join(', ')}}},`);
  }
  out.push('};');
  out.push('');
  out.push('inline const OpSpec& opSpec(Op op) { return kOps[int(op)]; }');
  out.push('');
  out.push('}  // namespace orthornn');
  return out.join('\n') + '\n';
}

function typescript(table) {
  const out = [];
  out.push('// Generated from native/ops.json by scripts/gen-ops.js: edit the table, then `npm run gen:ops`.');
  out.push("import type { Activation, ElmanNativeConfig, LstmNativeConfig, NativeTensor as T, NativeTensors, NativeWorkspace } from './native';");
  out.push('');
  out.push('/** NativeContext\'s op methods: each checks its arguments synchronously and queues the op. */');
  out.push('export interface NativeOps {');
  for (const op of table.ops.filter((o) => o.args)) {
    out.push(`  /** ${op.doc} */`);
    out.push(`  ${op.name}(${op.args.map((a) => `${a.name}: ${a.kind === 'object' ? a.ts : TS_TYPES[a.kind]}`).join(', ')}): void;`);
  }
  out.push('}');
  out.push('');
  out.push('/** Every native op (native/ops.json), the NativeContext methods and the backend primitives; Context.supports() takes these. */');
  out.push(`export const NATIVE_OPS = [${table.ops.map((o) => `'${o.name}'`).join(', ')}] as const;`);
  out.push('export type NativeOp = (typeof NATIVE_OPS)[number];');
  out.push('');
  out.push('/** The ops that are NativeContext methods. */');
  out.push(`export const BOUND_OPS = [${table.ops.filter((o) => o.args).map((o) => `'${o.name}'`).join(', ')}] as const;`);
  return out.join('\n') + '\n';
}

/** The generated files' contents from the table at `file`. */
function generate(file = TABLE) {
  const table = JSON.parse(fs.readFileSync(file, 'utf8'));
  validate(table);
  return { [HEADER]: header(table), [TS]: typescript(table) };
}

if (require.main === module) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const [file, text] of Object.entries(generate())) {
    const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
    if (current === text) continue;
    if (check) {
      console.error(`${path.relative(ROOT, file)} is stale: run \`npm run gen:ops\``);
      stale++;
    } else {
      fs.writeFileSync(file, text);
      console.log(`wrote ${path.relative(ROOT, file)}`);
    }
  }
  process.exitCode = stale ? 1 : 0;
}

module.exports = { generate, validate, TABLE, HEADER, TS };
