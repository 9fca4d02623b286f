#!/usr/bin/env bash
# Create (or update) the project's virtual environment in ./.venv and install fxmm with the
# whole OpenMMLab stack at the tested versions (requirements/tested.txt). Idempotent: a second
# run only checks what is there. (Into an existing environment: `pip install -e .`, see
# docs/get_started.md.)
#
# mmcv 2.1.0 has no wheel for torch 2.14 on PyPI, so it is built once from its sdist (with
# -std=c++17 patched to c++20, which torch >= 2.14 headers need) and the wheel is cached in
# $FXMM_WHEEL_CACHE (default ~/.cache/fxmm/wheels), keyed by torch and mmcv version.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FXMM_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
TESTED="$ROOT/requirements/tested.txt"
pinned() { sed -n "s/^$1==//p" "$TESTED"; }
TORCH_VERSION=$(pinned torch)
TORCHVISION_VERSION=$(pinned torchvision)
MMCV_VERSION=$(pinned mmcv)
CACHE="${FXMM_WHEEL_CACHE:-$HOME/.cache/fxmm/wheels}/torch${TORCH_VERSION}-mmcv${MMCV_VERSION}"

log() { printf '[fxmm setup] %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP="$PY -m pip --disable-pip-version-check"

if ! $PY -c "import torch, torchvision, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  log "installing torch $TORCH_VERSION + torchvision $TORCHVISION_VERSION"
  $PIP install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"
fi
# mmcv's build needs pkg_resources (setuptools < 81).
$PIP install -q "setuptools<81" wheel ninja

if ! $PY -c "import mmcv, mmcv.ops, sys; sys.exit(mmcv.__version__ != '$MMCV_VERSION')" 2>/dev/null; then
  mkdir -p "$CACHE"
  WHEEL=$(ls "$CACHE"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null | head -n 1 || true)
  if [ -z "$WHEEL" ]; then
    log "building mmcv $MMCV_VERSION with ops from source (once; 6-18 min on 2 cores)"
    BUILD=$(mktemp -d)
    trap 'rm -rf "$BUILD"' EXIT
    $PIP download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD"
    tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
    sed -i 's/-std=c++17/-std=c++20/g; s/c++17/c++20/g' "$BUILD/mmcv-$MMCV_VERSION/setup.py"
    (cd "$BUILD/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      $PIP wheel -q --no-deps --no-build-isolation . -w "$BUILD/dist")
    cp "$BUILD"/dist/mmcv-*.whl "$CACHE/.tmp.whl" 2>/dev/null || true
    built=$(ls "$BUILD"/dist/mmcv-*.whl | head -n 1)
    mv "$CACHE/.tmp.whl" "$CACHE/$(basename "$built")"   # atomic: a killed build leaves no wheel
    WHEEL="$CACHE/$(basename "$built")"
  fi
  log "installing $WHEEL"
  $PIP install -q --no-deps "$WHEEL"
  $PIP install -q addict packaging Pillow pyyaml yapf opencv-python-headless
fi

newer() { for f in "$ROOT/setup.py" "$ROOT"/requirements/*.txt; do
  [ "$f" -nt "$VENV/.fxmm-installed" ] && return 0; done; return 1; }
if ! $PY -c "import fxmm" 2>/dev/null || newer; then
  log "installing fxmm and its dependencies"
  $PIP install -q -c "$TESTED" -e "$ROOT[tests]"
  touch "$VENV/.fxmm-installed"
fi
log "ready: $VENV"
