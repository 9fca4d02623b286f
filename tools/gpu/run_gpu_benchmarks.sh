#!/usr/bin/env bash
# Issue #21's measurements in one command on a GPU machine: set up (or reuse) the fxmm
# environment with mmcv built for the GPU, then run the benchmark parts, each time-boxed so
# that the whole run stays within FXMM_GPU_BUDGET_S, every report written under OUT_DIR.
#
#   tools/gpu/run_gpu_benchmarks.sh OUT_DIR [PART ...]
#
# Parts, in this order (default: all):
#   limit      FX's step beside bare Swin-B / mmdet DINO / mmseg UperNet steps, bf16, paper
#              config, batch 24, cls batch sweep, torch.profiler trace of every step
#   cp-check   with_cp + loc: a few loc steps, fp32 / fp32 with_cp / bf16 with_cp
#   step-bf16  tools/benchmark.py step, paper config, batch 24, bf16 (--amp)
#   step-fp32  the same in fp32
#   step-cp    the same with gradient checkpointing (fp32)
#   all-demo   tools/benchmark.py all on the demo config (real-size data part left out)
# OUT_DIR gets setup.log, <part>.log, the reports (<part>/<name>.md, .json, traces) and
# summary.md: per part its status (ok, failed, timed out, skipped), seconds and box, and the
# command that reruns what did not run.
#
# Environment (defaults in brackets):
#   FXMM_GPU_WHEELS    wheels + mmcv sdist from tools/gpu/fetch_wheels.sh [./.whl]
#   FXMM_GPU_VENV      the environment tools/gpu/setup_env.sh makes or reuses [/tmp/fxmm-gpu-venv]
#   FXMM_GPU_PYTHON    an interpreter with fxmm's stack: used as it is, no setup
#   FXMM_GPU_DEVICE    cuda or cpu [cuda]
#   FXMM_GPU_BUDGET_S  seconds for the whole run, setup included [560]
#   FXMM_GPU_MIN_PART_S  a part that would get fewer seconds is skipped [30]
#   FXMM_GPU_ARCHIVE   if set, OUT_DIR is packed into this .tar.gz after every part
#   FXMM_GPU_TINY=1    tiny sizes on the demo config (64 px, batch 2, one round): the CPU test
#   FXMM_WHEEL_CACHE   where the built mmcv wheel is kept [~/.cache/fxmm/wheels]
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${1:?usage: tools/gpu/run_gpu_benchmarks.sh OUT_DIR [PART ...]}"
shift
PARTS=(limit cp-check step-bf16 step-fp32 step-cp all-demo)
[ $# -gt 0 ] && PARTS=("$@")
DEVICE="${FXMM_GPU_DEVICE:-cuda}"
BUDGET="${FXMM_GPU_BUDGET_S:-560}"
MIN_PART="${FXMM_GPU_MIN_PART_S:-30}"  # a part given less is skipped
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
SUMMARY="$OUT/summary.md"
START=$SECONDS
left() { echo $((BUDGET - (SECONDS - START))); }

# seconds each part may take at most at the GPU sizes (setup: mmcv's CUDA build took 293 s on
# the 16 cores of an H100 machine; with the wheel cached, seconds)
declare -A BOX=([setup]=330 [limit]=130 [cp-check]=45 [step-bf16]=75 [step-fp32]=65
                [step-cp]=65 [all-demo]=110)
PAPER="$ROOT/configs/foundation_x.py"
DEMO="$ROOT/configs/foundation_x_demo.py"
if [ "${FXMM_GPU_TINY:-0}" = 1 ]; then
  PAPER="$DEMO"
  SIZE=(--size 64 --batch-size 2 --threads 1)
  LIMIT=(--repeats 1 --warmup 0 --sweep-batch-sizes 2 3 --tasks cls loc --trace fx)
  STEP=(--repeats 1 --warmup 0 --tasks cls --no-profile)
  CP=(--cp-steps 1)
  ALL=(--quick --size 64 --batch-size 2 --repeats 1 --warmup 0 --threads 1 --no-profile
       --infer-batch-sizes 1 --scaling-sizes 64 --scaling-datasets 1 2 --dicom-files 2
       --dicom-size 64 --data-iters 1 --real-files 0)
else
  SIZE=(--batch-size 24)
  LIMIT=(--repeats 5 --warmup 2 --sweep-batch-sizes 8 16 24 32 --trace)
  STEP=(--repeats 3 --warmup 1)
  CP=(--cp-steps 3)
  ALL=(--quick --real-files 0)
fi

{
  echo "# GPU benchmark run"
  echo
  echo "\`tools/gpu/run_gpu_benchmarks.sh $OUT ${PARTS[*]}\` on $(hostname), $(date -u '+%Y-%m-%d %H:%M UTC'), device $DEVICE, budget $BUDGET s; commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)."
  echo
  echo "| part | status | seconds | box s |"
  echo "|---|---|---|---|"
} > "$SUMMARY"

pack() {
  if [ -n "${FXMM_GPU_ARCHIVE:-}" ]; then
    tar -czf "$FXMM_GPU_ARCHIVE.tmp" -C "$OUT" . && mv "$FXMM_GPU_ARCHIVE.tmp" "$FXMM_GPU_ARCHIVE"
  fi
}

NOT_RUN=()
# run NAME CMD...: the command time-boxed to min(its box, what is left), logged to NAME.log
run() {
  local name=$1 box=${BOX[$1]} status t0=$SECONDS rc
  shift
  local limit
  limit=$(left)
  [ "$box" -lt "$limit" ] && limit=$box
  if [ "$limit" -lt "$MIN_PART" ]; then
    echo "| $name | skipped: $(left) s left of the budget | 0 | $box |" >> "$SUMMARY"
    NOT_RUN+=("$name")
    return 1
  fi
  echo "[fxmm gpu] $name (at most $limit s)"
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  case $rc in
    0) status=ok ;;
    124|137) status="timed out after $limit s"; NOT_RUN+=("$name") ;;
    *) status="failed (exit $rc): $(tail -n 1 "$OUT/$name.log" | tr '|' '/' | cut -c1-200)"
       NOT_RUN+=("$name") ;;
  esac
  echo "| $name | $status | $((SECONDS - t0)) | $box |" >> "$SUMMARY"
  echo "[fxmm gpu] $name: $status"
  pack
  return $rc
}

if [ -n "${FXMM_GPU_PYTHON:-}" ]; then
  PY="$FXMM_GPU_PYTHON"
  echo "| setup | not needed: $PY | 0 | 0 |" >> "$SUMMARY"
else
  VENV="${FXMM_GPU_VENV:-/tmp/fxmm-gpu-venv}"
  PY="$VENV/bin/python"
  if ! run setup bash "$ROOT/tools/gpu/setup_env.sh" "$VENV" "${FXMM_GPU_WHEELS:-$ROOT/.whl}"; then
    echo; echo "Setup did not finish: nothing measured (see setup.log)." >> "$SUMMARY"
    cat "$SUMMARY"
    exit 1
  fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

bench() {  # bench PART SUBCOMMAND ARGS...: tools/benchmark.py into OUT/PART/
  local part=$1
  shift
  run "$part" "$PY" "$ROOT/tools/benchmark.py" "$@" --device "$DEVICE" --out-dir "$OUT/$part"
}

for part in "${PARTS[@]}"; do
  case $part in
    limit) bench limit limit --config "$PAPER" --amp "${SIZE[@]}" "${LIMIT[@]}" ;;
    cp-check) bench cp-check cp-check --config "$PAPER" "${SIZE[@]}" "${CP[@]}" ;;
    step-bf16) bench step-bf16 step --config "$PAPER" --amp "${SIZE[@]}" "${STEP[@]}" ;;
    step-fp32) bench step-fp32 step --config "$PAPER" "${SIZE[@]}" "${STEP[@]}" ;;
    step-cp) bench step-cp step --config "$PAPER" --with-cp "${SIZE[@]}" "${STEP[@]}" ;;
    all-demo) bench all-demo all --config "$DEMO" "${ALL[@]}" ;;
    *) echo "| $part | unknown part (known: limit cp-check step-bf16 step-fp32 step-cp all-demo) | 0 | 0 |" >> "$SUMMARY"
       NOT_RUN+=("$part") ;;
  esac
done

{
  echo
  echo "Reports: \`<part>/<name>.md\` beside this file; logs: \`<part>.log\`."
  if [ ${#NOT_RUN[@]} -gt 0 ]; then
    echo
    echo "Not done: rerun with \`tools/gpu/run_gpu_benchmarks.sh OUT_DIR ${NOT_RUN[*]}\`."
  fi
} >> "$SUMMARY"
pack
cat "$SUMMARY"
[ ${#NOT_RUN[@]} -eq 0 ]
