#!/usr/bin/env bash
# A whole session for the CUDA backend on a lent GPU machine, in one call of under 10 minutes
# (docs/gpu.md, "A session on a lent GPU"). There, from the repository root, with .gpu-carry
# (made here by scripts/gpu-carry.sh) carried:
#
#   bash scripts/gpu-session.sh
#
# unpacks Node, node_modules and Debian's OpenBLAS/LAPACKE/libxsmm, builds with CMake against
# the machine's CUDA (sm_90), runs the suites of `npm run test:gpu` (ORTHORNN_REQUIRE_GPU=1) and
# then benchmarks/gpu.ts with its PyTorch peer, its K-models table and Cayley timings under five
# environments (the libuv thread pool and the GPU's work queues at their defaults and raised, and
# the loss-and-gradients call as one graph by default),
# then two training rows on the GPU: the Quick start's copy task (`npm start` with --device cuda)
# and a group of 8 copy runs (`orthornn group`, a stream each), then compute-sanitizer (memcheck,
# racecheck) on the newest kernels where the toolkit has it, as long as the session is under 7
# minutes. Each step has its own time
# limit, so that a hang in one still returns the others' logs; logs, the GPU's description and
# the benchmark's JSON go to $OUT (what comes back). The exit status is the tests'.
#
# ORTHORNN_SESSION_TESTS_ONLY=1 stops after the tests (a rerun of them, in about a minute).
#
# ORTHORNN_SESSION_DRY=1 runs the same steps here without a GPU (a CPU build into build-dry, the
# GPU suites with suite 90 skipped, the benchmark on the CPU without its peer): a check of the
# script itself before device time is spent on it.
set -uo pipefail
out=${OUT:-/tmp/orthornn-gpu-session}
dry=${ORTHORNN_SESSION_DRY:-0}
carry=.gpu-carry
mkdir -p "$out"
started=$SECONDS
step() { echo "== [$((SECONDS - started)) s] $*" | tee -a "$out/session.log"; }
[ -f "$carry/node.xz" ] || { echo "gpu-session: no $carry/node.xz: run scripts/gpu-carry.sh here first and carry .gpu-carry" >&2; exit 2; }

step "unpack Node, node_modules and Debian's OpenBLAS, LAPACKE, libxsmm and libgfortran"
mkdir -p /tmp/orthornn-node/bin
xz -dc "$carry/node.xz" > /tmp/orthornn-node/bin/node && chmod +x /tmp/orthornn-node/bin/node
export PATH=/tmp/orthornn-node/bin:$PATH
[ -d node_modules/mocha ] || tar -xJf "$carry/node_modules.tar.xz"
sys=/tmp/orthornn-sysroot
mkdir -p "$sys"
for deb in "$carry"/debs/*.deb; do dpkg -x "$deb" "$sys"; done
lib=$sys/usr/lib/x86_64-linux-gnu
export CMAKE_INCLUDE_PATH=$sys/usr/include/x86_64-linux-gnu/openblas-pthread:$sys/usr/include
export CMAKE_LIBRARY_PATH=$lib/openblas-pthread:$lib:$sys/usr/lib   # libxsmm-dev puts libxsmm.a in /usr/lib
export LD_LIBRARY_PATH=$lib/openblas-pthread:$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
node --version | tee -a "$out/session.log"
(nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; nproc; g++ --version | head -1; cmake --version | head -1) > "$out/machine.txt" 2>&1

if [ "$dry" = 1 ]; then
  build_env=(ORTHORNN_BUILD=cmake ORTHORNN_CUDA=OFF ORTHORNN_BUILD_DIR=build-dry)
  export ORTHORNN_ADDON=$PWD/build-dry/Release/orthornn.node
  test_env=()
  bench_args=(--device cpu --quick --no-peer)
  train_args=(--device cpu --steps 40)
  group_device=cpu group_steps=40
else
  build_env=(ORTHORNN_BUILD=cmake ORTHORNN_CUDA=ON ORTHORNN_CUDA_ARCHITECTURES=90)
  test_env=(ORTHORNN_REQUIRE_GPU=1)
  bench_args=()
  train_args=(--device cuda)
  group_device=cuda group_steps=1500
fi

step "build: ${build_env[*]}"
if ! env "${build_env[@]}" timeout 240 node scripts/build.js > "$out/build.log" 2>&1; then
  tail -40 "$out/build.log"
  step "the build failed (build.log)"
  exit 1
fi
grep -E "orthornn:|CUDA|Built target" "$out/build.log" | tail -8
node -e "const a = require(process.env.ORTHORNN_ADDON || './build/Release/orthornn.node'); console.log(JSON.stringify(a.backends()))" | tee -a "$out/session.log"

step "the suites of npm run test:gpu (.mocharc.gpu.json) ${test_env[*]}"
env "${test_env[@]}" timeout 240 node node_modules/mocha/bin/mocha.js --config .mocharc.gpu.json --reporter dot > "$out/test-gpu.log" 2>&1
tests=$?
grep -E "passing|failing|pending" "$out/test-gpu.log"
[ "$tests" = 0 ] || grep -A25 -E "^  [0-9]+\) " "$out/test-gpu.log" | head -80

if [ "${ORTHORNN_SESSION_TESTS_ONLY:-0}" = 1 ]; then
  step "done: tests only (ORTHORNN_SESSION_TESTS_ONLY=1; exit status $tests)"
  exit "$tests"
fi

step "benchmarks/gpu.ts ${bench_args[*]}"
env "${test_env[@]}" timeout 180 node --import tsx benchmarks/gpu.ts "${bench_args[@]}" --json "$out/gpu-bench.json" > "$out/gpu-bench.log" 2>&1
echo "benchmark exit status $?"
tail -45 "$out/gpu-bench.log"

step "the K-models table and the Cayley step's time under five environments (benchmarks/gpu.ts --group-only)"
: > "$out/gpu-group.log"
for e in "" "UV_THREADPOOL_SIZE=16" "CUDA_DEVICE_MAX_CONNECTIONS=32" "UV_THREADPOOL_SIZE=16 CUDA_DEVICE_MAX_CONNECTIONS=32" \
  "ORTHORNN_CUDA_STEP_GRAPHS=1 CUDA_DEVICE_MAX_CONNECTIONS=32"; do
  echo "-- environment: ${e:-as it is}" >> "$out/gpu-group.log"
  # shellcheck disable=SC2086  # $e is a list of assignments
  env "${test_env[@]}" $e timeout 60 node --import tsx benchmarks/gpu.ts "${bench_args[@]}" --group-only --json "/tmp/orthornn-group.json" >> "$out/gpu-group.log" 2>&1
  echo "exit status $?" >> "$out/gpu-group.log"
done
grep -E "^-- |^copy|^ *[0-9]+ +cuda|^exit" "$out/gpu-group.log"

step "training rows: the Quick start's copy task (npm start) ${train_args[*]}, then a group of 8 (orthornn group)"
cli=(node --import tsx lib/cli/main.ts)
rm -rf /tmp/orthornn-runs  # the run folders of an earlier session here
timeout 75 "${cli[@]}" train --task copy --delay 100 --hidden 128 --model svd --margin 0.01 --target-accuracy 1 "${train_args[@]}" \
  --out /tmp/orthornn-runs/copy --plot-format none > "$out/train.log" 2>&1
echo "train exit status $?"
tail -4 "$out/train.log"
node -e '
  const [device, steps] = [process.argv[1], Number(process.argv[2])];
  const members = [0.001, 0.01, 0.03, 0.1, 0.3, 1, 0.05, 0.5].map((margin, i) => ({
    task: "copy", delay: 100, hidden: 128, model: "svd", margin, device, steps, out: `/tmp/orthornn-runs/group-${i}`,
  }));
  require("fs").writeFileSync("/tmp/orthornn-members.json", JSON.stringify(members));
' "$group_device" "$group_steps"
timeout 75 "${cli[@]}" group /tmp/orthornn-members.json --plot-format none >> "$out/train.log" 2>&1
echo "group exit status $?"
tail -12 "$out/train.log"

step "compute-sanitizer: memcheck on test 62's cuda runs and suite 90's whole-call graphs, racecheck on the fused Cayley kernels"
sanitizer=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
mocha=(node --import tsx --expose-gc node_modules/mocha/bin/mocha.js --no-config --extension ts --timeout 600000 --reporter dot)
if [ "$dry" = 1 ] || [ ! -x "$sanitizer" ]; then
  echo "skipped: $([ "$dry" = 1 ] && echo 'a dry run' || echo "no compute-sanitizer at $sanitizer")" | tee "$out/sanitizer.log"
else
  : > "$out/sanitizer.log"
  for run in "memcheck 100 test/62-variants.test.ts on cuda" "memcheck 80 test/90-cuda.test.ts whole elmanLossAndGradients" \
    "racecheck 60 test/62-variants.test.ts on cuda.*cayleyFrameSolve"; do
    read -r tool limit spec grep <<< "$run"
    # The session stays within 7 minutes, so that a rerun of the tests still fits the device time.
    left=$((420 - (SECONDS - started)))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 20 ]; then
      echo "-- $tool: $spec -g '$grep': skipped, the session is at $((SECONDS - started)) s" >> "$out/sanitizer.log"
      continue
    fi
    echo "-- $tool: $spec -g '$grep' (at most $limit s)" >> "$out/sanitizer.log"
    env "${test_env[@]}" timeout "$limit" "$sanitizer" --tool "$tool" --target-processes all --error-exitcode 9 \
      "${mocha[@]}" "$spec" -g "$grep" >> "$out/sanitizer.log" 2>&1
    echo "exit status $? (9: the tool found errors; 124: out of time)" >> "$out/sanitizer.log"
  done
  grep -E "^-- |passing|failing|ERROR SUMMARY|RACECHECK SUMMARY|^exit" "$out/sanitizer.log"
fi

step "done (tests exit status $tests)"
exit "$tests"
