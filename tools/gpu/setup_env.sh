#!/usr/bin/env bash
# Make (or reuse) an fxmm environment on a GPU machine that reaches no package index, from the
# machine's own PyTorch and a folder of wheels (tools/gpu/fetch_wheels.sh):
#
#   tools/gpu/setup_env.sh VENV WHEEL_DIR
#
# - VENV is a venv over the machine's Python that also sees that Python's site-packages (a .pth
#   file: the machine's python3 may itself be a venv, whose packages --system-site-packages
#   would not show), so it uses the machine's torch build; the wheels go in with --no-index
#   --no-deps and come first.
# - mmcv (requirements/tested.txt's version) is built once from WHEEL_DIR/mmcv-*.tar.gz with its
#   CUDA ops for the GPU it finds (FORCE_CUDA=1 MMCV_WITH_OPS=1, TORCH_CUDA_ARCH_LIST from the
#   device, -std=c++17 patched to c++20 as tools/setup.sh does). The wheel is kept in
#   $FXMM_WHEEL_CACHE (default ~/.cache/fxmm/wheels) under the torch and CUDA versions; a wheel
#   found there or in WHEEL_DIR is installed instead of building.
# - transformers >= 5 makes mmpretrain 1.2.0 fail at import (its BLIP code); an image that has
#   it is hidden from mmpretrain by a version-0 entry of its metadata in VENV, which makes
#   mmpretrain skip its multi-modal models (fxmm uses none).
# Idempotent: a second run checks and returns. fxmm itself runs from the checkout (PYTHONPATH).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${1:?usage: tools/gpu/setup_env.sh VENV WHEEL_DIR}"
WHEELS="$(cd "${2:?usage: tools/gpu/setup_env.sh VENV WHEEL_DIR}" && pwd)"
PYTHON="${PYTHON:-python3}"
MMCV_VERSION=$(sed -n 's/^mmcv==//p' "$ROOT/requirements/tested.txt")
log() { printf '[fxmm gpu setup %s] %s\n' "$(date +%T)" "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating $VENV over $($PYTHON -c 'import sys; print(sys.executable)')"
  "$PYTHON" -m venv --system-site-packages "$VENV"
  # an `import` line of a .pth runs: addsitedir also reads the .pth files of those folders
  "$PYTHON" -c 'import site; print("import site; " + "; ".join(
      f"site.addsitedir({p!r})" for p in site.getsitepackages()))' \
    > "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/machine_site.pth"
fi
PY="$VENV/bin/python"
PIP="$PY -m pip --disable-pip-version-check -q"
SITE=$($PY -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# the machine's tools (ninja for a parallel build) beside its Python
PATH="$VENV/bin:$(dirname "$($PYTHON -c 'import sys; print(sys.executable)')"):$PATH"
$PY -c 'import torch' || { log "$PYTHON has no torch: give PYTHON=<the machine's python>"; exit 1; }

if ! $PY -c 'import mmdet, mmseg, mmpretrain, pydicom, openjpeg' 2>/dev/null; then
  log "installing the wheels of $WHEELS"
  # shellcheck disable=SC2046
  $PIP install --no-index --no-deps $(ls "$WHEELS"/*.whl | grep -v '/mmcv-')
fi

if $PY -c 'import transformers, sys; sys.exit(int(transformers.__version__.split(".")[0]) < 5)' \
    2>/dev/null; then
  log "hiding transformers $($PY -c 'import transformers; print(transformers.__version__)') from mmpretrain"
  mkdir -p "$SITE/transformers-0.0.0.dist-info"
  printf 'Metadata-Version: 2.1\nName: transformers\nVersion: 0.0.0\n' \
    > "$SITE/transformers-0.0.0.dist-info/METADATA"
fi

# mmcv with its ops; on a GPU, its compiled deformable attention must run on CUDA tensors
mmcv_check() {
  $PY - "$MMCV_VERSION" <<'EOF'
import sys
import mmcv
import torch
from mmcv.ops import MultiScaleDeformableAttention  # noqa: F401 (loads the compiled ops)
assert mmcv.__version__ == sys.argv[1], mmcv.__version__
if torch.cuda.is_available():
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction
    value = torch.rand(1, 4, 1, 2, device='cuda')
    shapes = torch.tensor([[2, 2]], device='cuda')
    start = torch.tensor([0], device='cuda')
    loc = torch.rand(1, 1, 1, 1, 1, 2, device='cuda')
    weight = torch.ones(1, 1, 1, 1, 1, device='cuda')
    MultiScaleDeformableAttnFunction.apply(value, shapes, start, loc, weight, 64)
EOF
}

if ! mmcv_check 2>/dev/null; then
  KEY=$($PY -c 'import torch; print(f"torch{torch.__version__.split(\"+\")[0]}-cuda{torch.version.cuda or \"none\"}")')
  CACHE="${FXMM_WHEEL_CACHE:-$HOME/.cache/fxmm/wheels}/$KEY"
  WHEEL=$(ls "$CACHE"/mmcv-"$MMCV_VERSION"-*.whl "$WHEELS"/mmcv-"$MMCV_VERSION"-*.whl 2>/dev/null \
    | head -n 1 || true)
  if [ -z "$WHEEL" ]; then
    ARCH=$($PY -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability() if torch.cuda.is_available() else "")')
    if [ -n "$ARCH" ]; then
      export FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-$ARCH}"
    fi
    log "building mmcv $MMCV_VERSION with ops (CUDA arch: ${TORCH_CUDA_ARCH_LIST:-none}, $(nproc) jobs)"
    BUILD=$(mktemp -d)
    trap 'rm -rf "$BUILD"' EXIT
    tar -xzf "$WHEELS/mmcv-$MMCV_VERSION.tar.gz" -C "$BUILD"
    sed -i 's/-std=c++17/-std=c++20/g; s/c++17/c++20/g' "$BUILD/mmcv-$MMCV_VERSION/setup.py"
    (cd "$BUILD/mmcv-$MMCV_VERSION" && MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
      $PIP wheel --no-index --no-deps --no-build-isolation . -w "$BUILD/dist")
    built=$(ls "$BUILD"/dist/mmcv-*.whl | head -n 1)
    mkdir -p "$CACHE"
    cp "$built" "$CACHE/.tmp.whl"
    mv "$CACHE/.tmp.whl" "$CACHE/$(basename "$built")"  # atomic: a killed build leaves none
    WHEEL="$CACHE/$(basename "$built")"
    log "built $WHEEL ($(du -h "$WHEEL" | cut -f1))"
  fi
  log "installing $WHEEL"
  $PIP install --no-index --no-deps --force-reinstall "$WHEEL"
  mmcv_check || { log "mmcv $MMCV_VERSION does not run its ops (on CUDA tensors)"; exit 1; }
fi

PYTHONPATH="$ROOT" $PY -c 'from fxmm.utils import register_all_modules; register_all_modules()'
log "ready: $VENV ($($PY -c 'import torch, mmcv; print(f"torch {torch.__version__}, mmcv {mmcv.__version__}, CUDA device: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}")'))"
