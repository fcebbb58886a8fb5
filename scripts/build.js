#!/usr/bin/env node
// Builds the native addon: CMake through cmake-js when cmake is on PATH (the CUDA backend
// is added when a complete CUDA toolkit is found), node-gyp (CPU only) otherwise.
//   ORTHORNN_BUILD=cmake|gyp   force a build system
//   ORTHORNN_CUDA=ON|OFF|AUTO  force the CUDA backend on or off (default AUTO)
//   ORTHORNN_NVCC=/path/nvcc   the nvcc to use (its toolkit must hold cuBLAS and cuSOLVER)
//   ORTHORNN_CUDA_ARCHITECTURES="80;90"  GPU architectures to compile for (default 70;75;80;86;89;90,
//                              or those the toolkit supports); one architecture builds much faster
//   ORTHORNN_LIBXSMM=OFF       build without libxsmm even where it is installed
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

function buildCmake() {
  const mode = (process.env.ORTHORNN_CUDA || 'AUTO').toUpperCase();
  const args = ['--out', 'build', '--CDCMAKE_BUILD_TYPE=Release'];
  const env = { ...process.env };
  if ((process.env.ORTHORNN_LIBXSMM || '').toUpperCase() === 'OFF') args.push('--CDORTHORNN_LIBXSMM=OFF');
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
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js');
  run(process.execPath, [cmakeJs, 'configure', ...args], env);
  run(process.execPath, [cmakeJs, 'build', '--out', 'build'], env);
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

function buildGyp() {
  requireBlasHeaders();
  run(process.execPath, [require.resolve('node-gyp/bin/node-gyp.js'), 'rebuild']);
}

const forced = process.env.ORTHORNN_BUILD;
if (forced === 'gyp' || (!forced && !which('cmake'))) buildGyp();
else if (!forced || forced === 'cmake') buildCmake();
else {
  console.error(`orthornn: ORTHORNN_BUILD must be 'cmake' or 'gyp', got '${forced}'`);
  process.exit(1);
}
