#!/usr/bin/env node
// Builds the prebuilt platform packages and packs them, with the main package, as tarballs:
//   npm run pack:platform                    @orthornn/linux-x64 (CPU) and orthornn
//   npm run pack:platform -- --cuda          also @orthornn/linux-x64-cuda (long: six GPU architectures;
//                                            ORTHORNN_CUDA_ARCHITECTURES=90 builds one)
//   npm run pack:platform -- --only-cuda     the CUDA package alone
//   --out DIR                                where the tarballs go (default packs/)
//   --no-main                                skip the main package
//
// Each platform package is built with ORTHORNN_STATIC=ON in its own folder (build-platform/),
// checked (its shared-library dependencies must be glibc's, plus cuBLAS/cuSOLVER for CUDA; it
// must load and report its backends) and packed with the licences of what it links in. The main
// package is compiled afresh without source maps (dist/ holds only what the tarball ships) and
// packed with optionalDependencies on the CPU platform packages at its own version: they are
// added here rather than in package.json so that `npm ci` in this repository does not look for
// packages that are not published.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] ? args[i + 1] : fallback;
};
const outDir = path.resolve(root, option('--out', 'packs'));
const mainPkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const version = mainPkg.version;

if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.error(`pack-platform: the platform packages are built on linux-x64 (this is ${process.platform}-${process.arch})`);
  process.exit(1);
}

function run(cmd, argv, options = {}) {
  console.log(`pack-platform: ${cmd} ${argv.join(' ')}`);
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit', ...options });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    console.error(`pack-platform: ${cmd} failed (exit ${r.status})`);
    process.exit(r.status || 1);
  }
}

function output(cmd, argv, options = {}) {
  const r = spawnSync(cmd, argv, { cwd: root, encoding: 'utf8', ...options });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

// Shared libraries every glibc system has; anything else must be linked in (or allowed per package).
const SYSTEM_LIBRARIES = /^(linux-vdso\.so|ld-linux-x86-64\.so|libc\.so|libm\.so|libpthread\.so|libdl\.so|librt\.so)/;

const PLATFORMS = {
  cpu: {
    dir: 'linux-x64',
    env: { ORTHORNN_CUDA: 'OFF' },
    allowed: [],
    notices: ['libopenblas0-pthread', 'liblapacke', 'libxsmm-dev', 'libstdc++6'],
  },
  cuda: {
    dir: 'linux-x64-cuda',
    env: {
      ORTHORNN_CUDA: 'ON',
      // Debian's CUDA 11.8 toolkit: its nvcc first, never another toolkit's.
      ORTHORNN_NVCC: process.env.ORTHORNN_NVCC || '/usr/bin/nvcc',
      PATH: `/usr/bin${path.delimiter}${process.env.PATH}`,
    },
    allowed: [/^libcublas\.so/, /^libcublasLt\.so/, /^libcusolver\.so/],
    notices: ['libopenblas0-pthread', 'liblapacke', 'libxsmm-dev', 'libstdc++6', 'libcudart11.0'],
  },
};

/** The shared libraries a file names itself (DT_NEEDED): what the build decides. */
function needed(file) {
  return [...output('readelf', ['-d', file]).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
}

/** `ldd` of a file (with what its libraries need in turn) as [name, resolved path or 'not found'] pairs. */
function ldd(file) {
  return output('ldd', [file])
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => {
      const m = /^(\S+)(?:\s+=>\s+(\S+(?:\s+found)?))?/.exec(l);
      return [path.basename(m[1]), m[2] || m[1]];
    });
}

function buildPlatform(kind) {
  const spec = PLATFORMS[kind];
  const buildDir = path.join('build-platform', kind);
  const env = { ...process.env, ...spec.env, ORTHORNN_STATIC: 'ON', ORTHORNN_BUILD: 'cmake', ORTHORNN_BUILD_DIR: buildDir };
  delete env.ORTHORNN_BUILD_FROM_SOURCE;
  const started = Date.now();
  run(process.execPath, [path.join(root, 'scripts', 'build.js')], { env });
  const built = path.join(root, buildDir, 'Release', 'orthornn.node');
  console.log(`pack-platform: ${kind} addon built in ${((Date.now() - started) / 1000).toFixed(0)} s`);

  const direct = needed(built);
  const deps = ldd(built);
  const foreign = direct.filter((name) => !SYSTEM_LIBRARIES.test(name) && !spec.allowed.some((re) => re.test(name)));
  console.log(`pack-platform: ${path.relative(root, built)} needs ${direct.join(', ')}; with theirs (ldd): ${deps.map(([n]) => n).join(', ')}`);
  if (foreign.length) {
    console.error(`pack-platform: the ${kind} addon depends on ${foreign.join(', ')}; only glibc${spec.allowed.length ? ' and cuBLAS/cuSOLVER' : ''} may remain`);
    process.exit(1);
  }
  // It must load and answer (a CUDA build on a machine without cuBLAS cannot: checked only when present).
  if (!deps.some(([, where]) => where === 'not found')) {
    const probe = output(process.execPath, ['-p', 'JSON.stringify(require(process.argv[1]).backends())', built]);
    console.log(`pack-platform: backends ${probe.trim()}`);
  }

  const stage = path.join(outDir, 'stage', spec.dir);
  fs.rmSync(stage, { recursive: true, force: true });
  fs.mkdirSync(stage, { recursive: true });
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'packages', spec.dir, 'package.json'), 'utf8'));
  pkg.version = version;
  pkg.files = ['orthornn.node', 'THIRD-PARTY-NOTICES.txt'];
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  fs.copyFileSync(path.join(root, 'packages', spec.dir, 'README.md'), path.join(stage, 'README.md'));
  fs.copyFileSync(path.join(root, 'LICENSE'), path.join(stage, 'LICENSE'));
  // Stripped: the symbols of static OpenBLAS/LAPACK are not worth their megabytes.
  run('strip', ['--strip-unneeded', '-o', path.join(stage, 'orthornn.node'), built]);
  fs.writeFileSync(path.join(stage, 'THIRD-PARTY-NOTICES.txt'), notices(spec.notices));
  run('npm', ['pack', '--ignore-scripts', '--pack-destination', outDir], { cwd: stage });
  return `${pkg.name}@${version}`;
}

/** The copyright and licence texts of what the addon links in, from the Debian packages it was built with. */
function notices(debs) {
  const parts = ['orthornn.node links in the following software; their copyright notices and licences follow.\n'];
  for (const deb of debs) {
    const file = `/usr/share/doc/${deb}/copyright`;
    if (!fs.existsSync(file)) {
      console.error(`pack-platform: ${file} is missing: install ${deb}, whose library the addon links in`);
      process.exit(1);
    }
    parts.push(`\n${'='.repeat(78)}\n${deb} (Debian: ${file})\n${'='.repeat(78)}\n\n${fs.readFileSync(file, 'utf8')}`);
  }
  return parts.join('');
}

function packMain(platformPackages) {
  // dist/ afresh, without source maps: the tarball holds no .map pointing at lib/*.ts it does not ship.
  fs.rmSync(path.join(root, 'dist'), { recursive: true, force: true });
  run(path.join(root, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json', '--sourceMap', 'false', '--declarationMap', 'false']);
  const listing = JSON.parse(output('npm', ['pack', '--dry-run', '--json', '--ignore-scripts']))[0];
  const stage = path.join(outDir, 'stage', 'orthornn');
  fs.rmSync(stage, { recursive: true, force: true });
  for (const { path: file } of listing.files) {
    fs.mkdirSync(path.join(stage, path.dirname(file)), { recursive: true });
    fs.copyFileSync(path.join(root, file), path.join(stage, file));
  }
  const pkg = { ...mainPkg };
  pkg.optionalDependencies = Object.fromEntries(platformPackages.map((name) => [name, version]));
  pkg.scripts = { install: mainPkg.scripts.install };
  delete pkg.devDependencies;
  delete pkg.allowScripts;
  fs.writeFileSync(path.join(stage, 'package.json'), `${JSON.stringify(pkg, null, 2)}\n`);
  run('npm', ['pack', '--ignore-scripts', '--pack-destination', outDir], { cwd: stage });
}

fs.mkdirSync(outDir, { recursive: true });
const kinds = flag('--only-cuda') ? ['cuda'] : flag('--cuda') ? ['cpu', 'cuda'] : ['cpu'];
for (const kind of kinds) buildPlatform(kind);
if (!flag('--no-main') && !flag('--only-cuda')) packMain(['@orthornn/linux-x64']);
fs.rmSync(path.join(outDir, 'stage'), { recursive: true, force: true });
console.log(`pack-platform: tarballs in ${path.relative(root, outDir) || '.'}:`);
for (const f of fs.readdirSync(outDir).filter((f) => f.endsWith('.tgz')).sort()) {
  console.log(`  ${f}  ${(fs.statSync(path.join(outDir, f)).size / 1e6).toFixed(1)} MB`);
}
