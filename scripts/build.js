#!/usr/bin/env node
// The install step. When a prebuilt platform package (@orthornn/linux-x64, installed by npm as
// an optional dependency on the platforms it was built for) loads here, nothing is compiled.
// Otherwise, or when a source build is asked for, it builds the native addon: CMake through
// cmake-js when cmake and cmake-js are there (the CUDA backend is added when a complete CUDA
// toolkit is found), node-gyp (CPU only) otherwise.
//   npm install --build-from-source, ORTHORNN_BUILD_FROM_SOURCE=1   compile even when a prebuilt loads
//   ORTHORNN_BUILD=cmake|gyp   force a build system
//   ORTHORNN_CUDA=ON|OFF|AUTO  force the CUDA backend on or off (default AUTO)
//   ORTHORNN_NVCC=/path/nvcc   the nvcc to use (its toolkit must hold cuBLAS and cuSOLVER)
//   ORTHORNN_CUDA_ARCHITECTURES="80;90"  GPU architectures to compile for (default 70;75;80;86;89;90,
//                              or those the toolkit supports); one architecture builds much faster
//   ORTHORNN_LIBXSMM=OFF       build without libxsmm even where it is installed
//   ORTHORNN_STATIC=ON         link OpenBLAS, LAPACKE, libxsmm, libgfortran and libstdc++ statically
//                              (the platform packages; CMake only)
//   ORTHORNN_BUILD_DIR=dir     the CMake build folder (default build; the loader looks in build/)
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function run(cmd, args, env) {
  console.log(`orthornn: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit', env: env || process.env });
  if (r.error) throw r.error;
  if (r.status !== 0) process.exit(r.status || 1);
}

// A toolkit is usable only when the nvcc, its headers and cuBLAS/cuSOLVER come together:
// mixing one toolkit's nvcc with another's libraries is how builds break.
function completeToolkit(nvcc) {
  if (!nvcc || !fs.existsSync(nvcc)) return null;
  const real = fs.realpathSync(nvcc);
  const prefix = path.dirname(path.dirname(real));
  const headerDirs = [path.join(prefix, 'include'), path.join(prefix, 'targets/x86_64-linux/include')];
  const libDirs = [path.join(prefix, 'lib64'), path.join(prefix, 'lib'), path.join(prefix, 'lib/x86_64-linux-gnu'),
    path.join(prefix, 'targets/x86_64-linux/lib')];
  const has = (dirs, f) => dirs.some((d) => fs.existsSync(path.join(d, f)));
  if (!has(headerDirs, 'cublas_v2.h') || !has(headerDirs, 'cusolverDn.h')) return null;
  if (!has(libDirs, 'libcublas.so') || !has(libDirs, 'libcusolver.so')) return null;
  return { nvcc: real, bin: path.dirname(real) };
}

function findCuda() {
  const candidates = [process.env.ORTHORNN_NVCC, process.env.CUDACXX, '/usr/local/cuda/bin/nvcc', '/usr/bin/nvcc',
    which('nvcc')].filter(Boolean);
  for (const c of candidates) {
    const tk = completeToolkit(c);
    if (tk) return { toolkit: tk, seen: candidates };
  }
  return { toolkit: null, seen: candidates };
}

function buildCmake(cmakeJs) {
  const mode = (process.env.ORTHORNN_CUDA || 'AUTO').toUpperCase();
  const out = process.env.ORTHORNN_BUILD_DIR || 'build';
  const args = ['--out', out, '--CDCMAKE_BUILD_TYPE=Release'];
  const env = { ...process.env };
  if ((process.env.ORTHORNN_LIBXSMM || '').toUpperCase() === 'OFF') args.push('--CDORTHORNN_LIBXSMM=OFF');
  args.push(`--CDORTHORNN_STATIC=${(process.env.ORTHORNN_STATIC || '').toUpperCase() === 'ON' ? 'ON' : 'OFF'}`);
  if (mode === 'OFF') {
    args.push('--CDORTHORNN_CUDA=OFF');
  } else {
    const { toolkit, seen } = findCuda();
    if (toolkit) {
      // Put the chosen toolkit's bin first so its ptxas/fatbinary are the ones nvcc runs.
      env.PATH = `${toolkit.bin}${path.delimiter}${env.PATH}`;
      env.CUDACXX = toolkit.nvcc;
      args.push(`--CDCMAKE_CUDA_COMPILER=${toolkit.nvcc}`, `--CDORTHORNN_CUDA=${mode === 'ON' ? 'ON' : 'AUTO'}`);
      const archs = process.env.ORTHORNN_CUDA_ARCHITECTURES;
      if (archs) {
        if (!/^\d+[a-z]?(-real|-virtual)?(;\d+[a-z]?(-real|-virtual)?)*$/.test(archs)) {
          console.error(`orthornn: ORTHORNN_CUDA_ARCHITECTURES must be a ;-separated list like "80;90", got '${archs}'`);
          process.exit(1);
        }
        args.push(`--CDORTHORNN_CUDA_ARCHITECTURES=${archs}`);
      } else {
        args.push('--CDORTHORNN_CUDA_ARCHITECTURES=DEFAULT');
      }
    } else if (mode === 'ON') {
      console.error(`orthornn: ORTHORNN_CUDA=ON but no CUDA toolkit with cuBLAS and cuSOLVER was found (looked at: ${seen.join(', ') || 'none'})`);
      process.exit(1);
    } else {
      console.log(seen.length
        ? `orthornn: CUDA backend OFF: no nvcc found has cuBLAS and cuSOLVER beside it (looked at: ${seen.join(', ')}); building the CPU backend only`
        : 'orthornn: CUDA backend OFF: no CUDA toolkit found; building the CPU backend only');
      args.push('--CDORTHORNN_CUDA=OFF');
    }
  }
  // Configure every time (incrementally), so that changed options (ORTHORNN_CUDA,
  // ORTHORNN_CUDA_ARCHITECTURES, ...) reach an existing build folder; then build.
  run(process.execPath, [cmakeJs, 'configure', ...args], env);
  run(process.execPath, [cmakeJs, 'build', '--out', out], env);
}

// node-gyp has no find step of its own: check the headers it needs, for one clear message
// instead of a compiler error.
function requireBlasHeaders() {
  const dirs = ['/usr/include', '/usr/local/include', '/usr/include/x86_64-linux-gnu', '/usr/include/aarch64-linux-gnu', '/usr/include/openblas'];
  const missing = ['cblas.h', 'lapacke.h'].filter((h) => !dirs.some((d) => fs.existsSync(path.join(d, h))));
  if (missing.length) {
    console.error(`orthornn needs OpenBLAS (cblas) and LAPACKE (${missing.join(', ')} not found): install them with \`npm run setup\`, or on Debian/Ubuntu \`sudo apt-get install libopenblas-dev liblapacke-dev\`.`);
    process.exit(1);
  }
}

// node-gyp: the package's own when installed (a checkout's devDependency), else the one npm
// ships with itself (npm passes its path to install scripts).
function nodeGyp() {
  const own = resolveFrom('node-gyp/bin/node-gyp.js');
  if (own) return own;
  if (process.env.npm_config_node_gyp && fs.existsSync(process.env.npm_config_node_gyp)) return process.env.npm_config_node_gyp;
  console.error('orthornn: no prebuilt binary for this platform and no build tool: install cmake and `npm i cmake-js`, or `npm i node-gyp`, then `npm rebuild orthornn`');
  process.exit(1);
}

function buildGyp() {
  requireBlasHeaders();
  run(process.execPath, [nodeGyp(), 'rebuild']);
}

function resolveFrom(request) {
  try {
    return require.resolve(request, { paths: [root] });
  } catch {
    return null;
  }
}

// --- prebuilt platform packages ------------------------------------------------------------
// The same list, in the same order, as lib/native.ts: the CUDA variant first when installed.
function platformPackages() {
  const base = `@orthornn/${process.platform}-${process.arch}`;
  return [`${base}-cuda`, base];
}

/** The first platform package whose addon loads and answers here (checked in a child process). */
function loadablePrebuilt() {
  for (const name of platformPackages()) {
    const file = resolveFrom(`${name}/orthornn.node`);
    if (!file) continue;
    const probe = spawnSync(process.execPath, ['-e', 'const b = require(process.argv[1]).backends(); if (!b.some((x) => x.name === "cpu" && x.available)) process.exit(3)', file],
      { encoding: 'utf8', env: { ...process.env, OPENBLAS_THREAD_TIMEOUT: process.env.OPENBLAS_THREAD_TIMEOUT || '16' } });
    if (probe.status === 0) return { name, file };
    const why = (probe.stderr || '').split('\n').find((l) => /Error|error/.test(l)) || `exit ${probe.status}`;
    console.log(`orthornn: the prebuilt ${name} does not load here (${why.trim()})`);
  }
  return null;
}

function truthy(v) {
  return v !== undefined && v !== '' && !['0', 'false', 'no', 'off'].includes(String(v).toLowerCase());
}

// `npm install --build-from-source` sets npm_config_build_from_source ('true', or a list of package names).
function fromSourceRequested() {
  if (truthy(process.env.ORTHORNN_BUILD_FROM_SOURCE)) return true;
  const npmFlag = process.env.npm_config_build_from_source;
  if (npmFlag === undefined || npmFlag === '' || npmFlag === 'false') return false;
  return npmFlag === 'true' || npmFlag.split(',').map((s) => s.trim()).includes('orthornn');
}

// A checkout (lib/ holds the TypeScript sources) always compiles: its addon is what is being developed.
const checkout = fs.existsSync(path.join(root, 'lib', 'native.ts'));
const forced = process.env.ORTHORNN_BUILD;
if (!checkout && !forced && !fromSourceRequested()) {
  const prebuilt = loadablePrebuilt();
  if (prebuilt) {
    console.log(`orthornn: using the prebuilt ${prebuilt.name} (${path.relative(root, prebuilt.file) || prebuilt.file}); nothing to compile (npm install --build-from-source compiles)`);
    process.exit(0);
  }
  console.log(`orthornn: no prebuilt package (${platformPackages().join(', ')}) is installed and loads here; building from source`);
}

const cmakeJs = resolveFrom('cmake-js/bin/cmake-js');
if (forced === 'gyp') buildGyp();
else if (forced === 'cmake') {
  if (!cmakeJs) {
    console.error('orthornn: ORTHORNN_BUILD=cmake needs cmake-js: npm i cmake-js');
    process.exit(1);
  }
  buildCmake(cmakeJs);
} else if (forced) {
  console.error(`orthornn: ORTHORNN_BUILD must be 'cmake' or 'gyp', got '${forced}'`);
  process.exit(1);
} else if (which('cmake') && cmakeJs) buildCmake(cmakeJs);
else {
  if (which('cmake')) console.log('orthornn: cmake-js is not installed, so the CMake build (libxsmm kernels, CUDA) is skipped: `npm i cmake-js` enables it; building with node-gyp');
  buildGyp();
}
