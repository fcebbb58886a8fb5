#!/usr/bin/env bash
# Installs what building orthornn needs on Debian/Ubuntu, then installs and builds the package.
#   npm run setup                 OpenBLAS, LAPACKE, CMake, a C++ toolchain, and Redis for the tests
#   npm run setup -- --cuda       also the CUDA toolkit with cuBLAS/cuSOLVER (Debian: non-free)
#   npm run setup -- --bench      also PyTorch for the CPU (python3-torch), the benchmark's peer, and wrk
#   npm run setup -- --system-only   system packages only, no npm install/build
# As root (or with passwordless sudo) it installs them; otherwise it prints the commands.
set -euo pipefail

cuda=0
bench=0
system_only=0
for arg in "$@"; do
  case "$arg" in
    --cuda) cuda=1 ;;
    --bench) bench=1 ;;
    --system-only) system_only=1 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "setup: unknown option '$arg' (expected --cuda, --bench, --system-only)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/.."

# redis-server: test 96 starts its own on a loopback port (the job queue of `sweep --queue`).
packages=(libopenblas-dev liblapacke-dev libxsmm-dev cmake g++ make python3 pkg-config redis-server)
[ "$cuda" = 1 ] && packages+=(nvidia-cuda-toolkit)
# The PyTorch peer of `npm run bench` (benchmarks/peers/torch_step.py): Debian's build, CPU only;
# wrk, the load generator of `npm run bench -- --suite serve` (without it, one on undici).
[ "$bench" = 1 ] && packages+=(python3-torch wrk)

os_id=""; codename=""
if [ -r /etc/os-release ]; then
  # shellcheck disable=SC1091
  . /etc/os-release
  os_id="${ID:-}"; codename="${VERSION_CODENAME:-}"
fi

if [ "$(id -u)" = 0 ]; then
  sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo="sudo"
else
  sudo="none"
fi

# Debian ships the CUDA toolkit in non-free, Ubuntu in multiverse.
cuda_source_cmd=""
if [ "$cuda" = 1 ]; then
  if [ "$os_id" = debian ]; then
    src=/etc/apt/sources.list.d/orthornn-non-free.sources
    cuda_source_cmd="printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: ${codename} ${codename}-updates\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > $src"
  elif [ "$os_id" = ubuntu ]; then
    cuda_source_cmd="add-apt-repository -y multiverse"
  fi
fi

# True when apt has a version of the package to install ("Candidate: (none)" otherwise).
has_candidate() {
  local candidate
  candidate=$(LC_ALL=C apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p')
  [ -n "$candidate" ] && [ "$candidate" != "(none)" ]
}

if ! command -v apt-get >/dev/null 2>&1; then
  echo "setup: no apt-get here. Install OpenBLAS (with cblas), LAPACKE, CMake, a C++17 compiler and redis-server (for the tests) with your package manager${cuda:+, and a CUDA toolkit with cuBLAS/cuSOLVER for --cuda}, then run: npm install"
  [ "$system_only" = 1 ] && exit 1
elif [ "$sudo" = none ]; then
  echo "setup: not root and no passwordless sudo; run these as root, then npm install:"
  [ -n "$cuda_source_cmd" ] && echo "  sh -c \"$cuda_source_cmd\""
  echo "  apt-get update && apt-get install -y --no-install-recommends ${packages[*]}"
  [ "$system_only" = 1 ] && exit 1
else
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -q
  if [ -n "$cuda_source_cmd" ] && ! has_candidate nvidia-cuda-toolkit; then
    # `apt-cache show` succeeds for a package that is merely referred to by another one, so the
    # decision is taken from the candidate version that `apt-cache policy` reports.
    echo "setup: nvidia-cuda-toolkit has no installation candidate; adding the component that carries it"
    $sudo sh -c "$cuda_source_cmd"
    $sudo apt-get update -q
    if ! has_candidate nvidia-cuda-toolkit; then
      echo "setup: nvidia-cuda-toolkit still has no installation candidate after adding the component" >&2
      exit 1
    fi
  fi
  $sudo apt-get install -y -q --no-install-recommends "${packages[@]}"
fi

[ "$system_only" = 1 ] && exit 0

# npm install builds the addon (scripts/build.js) and the TypeScript (prepare). onnxruntime-node
# (a devDependency, for the ONNX export tests) ships its CPU binaries; its install script would
# also fetch CUDA ones from nuget.org.
ONNXRUNTIME_NODE_INSTALL="${ONNXRUNTIME_NODE_INSTALL:-skip}" npm install
