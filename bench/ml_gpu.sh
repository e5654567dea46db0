#!/usr/bin/env bash
# Autoencoder speed on a GPU machine that has PyTorch (with its LibTorch) and a compiler but
# none of mummi's other dependencies and no network: configures the ML-only build
# (MUMMI_ML_ONLY) against the PyTorch wheel's LibTorch, builds bench/ml_bench, then runs
# bench/ml_bench.py on the GPU and on the CPU cores (mummi against PyTorch, side by side).
#
#   OUT=/tmp/out bench/ml_gpu.sh            (from anywhere; OUT defaults to /tmp/out)
#
# Needs: python3 with torch (and numpy), cmake, ninja, a C++20 compiler, nvidia-smi, and the
# nlohmann/json headers: a CMake package of them, or a folder holding nlohmann/json.hpp in
# $NLOHMANN_INCLUDE (default: .devcarry/include in the repository, else the wheel's include
# folder if it has them). Writes to $OUT: ml_gpu.log (everything printed), ml_cuda.json and
# ml_cpu.json (bench/ml_bench.py --json). Finishes within about 6 minutes: every step has a
# time limit taken from what is left of the whole; the CPU comparison is skipped when too
# little is left. Each size's rows are printed (and the JSON rewritten) as soon as both sides
# have run it. Exit status: 0 when every step ran, 1 otherwise.
#
# Settings (environment): PYTHON (python3), BUILD (build/ml-gpu), JOBS (16), TOTAL_S (340,
# the whole run), SECONDS_PER (2, per measurement), BENCH_ARGS (more bench/ml_bench.py
# options, e.g. "--frames 1024").

set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${OUT:-/tmp/out}"
PYTHON="${PYTHON:-python3}"
BUILD="${BUILD:-$REPO/build/ml-gpu}"
JOBS="${JOBS:-16}"
TOTAL_S="${TOTAL_S:-340}"
SECONDS_PER="${SECONDS_PER:-2}"
read -r -a BENCH_ARGS <<<"${BENCH_ARGS:-}"
mkdir -p "$OUT"
exec > >(tee "$OUT/ml_gpu.log") 2>&1

start=$(date +%s)
status=0
left() { echo $((TOTAL_S - ($(date +%s) - start))); }
step() { echo; echo "=== [$(($(date +%s) - start)) s] $*"; }
# limit MAX: the smaller of MAX and the time left (at least 1 s).
limit() {
  local l
  l=$(left)
  ((l < 1)) && l=1
  ((l < $1)) && echo "$l" || echo "$1"
}

step "machine"
uname -a
nproc
nvidia-smi -L || { echo "nvidia-smi failed"; status=1; }
"$PYTHON" -c 'import sys, torch, numpy
print("python", sys.version.split()[0], sys.executable)
print("torch", torch.__version__, "cuda", torch.version.cuda, "available",
      torch.cuda.is_available(), "numpy", numpy.__version__)' || status=1
cmake --version | head -1
ninja --version
"${CXX:-c++}" --version | head -1

step "configure (ML-only build against the wheel's LibTorch)"
prefix="$("$PYTHON" -c 'import torch; print(torch.utils.cmake_prefix_path)')" || {
  echo "$PYTHON cannot import torch"
  exit 1
}
include="${NLOHMANN_INCLUDE:-$REPO/.devcarry/include}"
if [[ ! -f "$include/nlohmann/json.hpp" ]]; then
  wheel_include="$(dirname "$prefix")/../include" # torch/share/cmake -> torch/include
  if [[ -f "$wheel_include/nlohmann/json.hpp" ]]; then
    include="$wheel_include"
  else
    echo "no nlohmann/json.hpp in $include or $wheel_include (configure tries find_package)"
  fi
fi
echo "CMAKE_PREFIX_PATH=$prefix"
echo "MUMMI_NLOHMANN_INCLUDE=$include"
timeout "$(limit 120)" cmake -S "$REPO" -B "$BUILD" -G Ninja -DMUMMI_ML_ONLY=ON \
  -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DMUMMI_NLOHMANN_INCLUDE="$include" || {
  echo "configure failed"
  tail -n 60 "$BUILD/CMakeFiles/CMakeConfigureLog.yaml" "$BUILD/CMakeFiles/CMakeError.log" \
    2>/dev/null || true
  exit 1
}

step "build ml_bench (ninja -j$JOBS)"
timeout "$(limit 240)" ninja -C "$BUILD" -j"$JOBS" ml_bench || {
  echo "build failed"
  exit 1
}
ldd "$BUILD/bench/ml_bench" | grep -E "libtorch|libc10|libcudart|libcuda\." || true

step "mummi vs PyTorch on the GPU"
if ! timeout "$(limit 170)" "$PYTHON" "$REPO/bench/ml_bench.py" --build-dir "$BUILD" \
  --device cuda --python "$PYTHON" --seconds "$SECONDS_PER" --json "$OUT/ml_cuda.json" \
  "${BENCH_ARGS[@]}"; then
  echo "GPU comparison failed"
  status=1
fi

step "mummi vs PyTorch on the CPU ($(nproc) threads)"
if (($(left) < 60)); then
  echo "skipped: only $(left) s left of $TOTAL_S"
  status=1
elif ! timeout "$(limit 150)" "$PYTHON" "$REPO/bench/ml_bench.py" --build-dir "$BUILD" \
  --device cpu --python "$PYTHON" --threads "$(nproc)" --seconds "$SECONDS_PER" \
  --json "$OUT/ml_cpu.json" "${BENCH_ARGS[@]}"; then
  echo "CPU comparison failed"
  status=1
fi

step "done, exit status $status; outputs in $OUT"
ls -l "$OUT"
exit "$status"
