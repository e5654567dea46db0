#!/usr/bin/env bash
# Installs every Debian 12 package mummi and its tests need, then configures and builds the
# release preset (build/release). Idempotent: installed packages are left alone and the build
# is incremental. Run as root (or with sudo available).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config git
  # libraries
  libcaf-dev libzmq3-dev cppzmq-dev capnproto libcapnp-dev libhdf5-dev hdf5-tools
  libtorch-dev libopenblas0-pthread gromacs libgromacs-dev libyaml-cpp-dev libcli11-dev
  libspdlog-dev libsqlite3-dev nlohmann-json3-dev libcpp-httplib-dev libfaiss-dev
  libnanoflann-dev librabbitmq-dev libblas-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev clang-14 libfuzzer-14-dev libclang-rt-14-dev
  slurm-wlm munge rabbitmq-server iproute2 chromium tini shellcheck procps
  python3-mdanalysis python3-torch python3-faiss python3-pika python3-zmq sqlite3
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
fi

cmake --preset release
cmake --build --preset release
