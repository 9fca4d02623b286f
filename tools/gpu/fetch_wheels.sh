#!/usr/bin/env bash
# Download what tools/gpu/setup_env.sh installs on a GPU machine that reaches no package index:
# the wheels of tools/gpu/wheels.txt for that machine's Python and mmcv's source (built there
# for its GPU). Run it where pip reaches PyPI:
#
#   tools/gpu/fetch_wheels.sh WHEEL_DIR       # FXMM_GPU_PYTHON_VERSION=3.12 (default)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
DIR="${1:?usage: tools/gpu/fetch_wheels.sh WHEEL_DIR}"
VERSION="${FXMM_GPU_PYTHON_VERSION:-3.12}"
PIP="${PIP:-python3 -m pip}"
MMCV_VERSION=$(sed -n 's/^mmcv==//p' "$ROOT/requirements/tested.txt")

mkdir -p "$DIR"
$PIP download -q --no-deps --only-binary=:all: --implementation cp --python-version "$VERSION" \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d "$DIR" -r "$ROOT/tools/gpu/wheels.txt"
$PIP download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$DIR"
du -sh "$DIR"
