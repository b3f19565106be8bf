#!/usr/bin/env bash
# One command for a machine with a CUDA GPU and no network: the kernel tests on CUDA, every GPU provider of
# the benchmark suite (peaks, regression_loss, moe_mlp, end-to-end training when aam's dependencies
# import), then the report, all written under one folder.
#
#   bench/gpu_check.sh [OUT_DIR]        (default: out/gpu-check-<date>; out/ is git-ignored)
#
# Needs PyTorch, Triton, NumPy, pytest and pytest-benchmark. Missing Python packages are installed offline
# from wheels placed in bench/wheels/ (pip download them on a connected machine). The kernel benchmarks
# import only torch and aam_kernels; the end-to-end benchmark also needs aam's dependencies (biom-format,
# scipy, ...) and is skipped with a message when they are neither installed nor in bench/wheels/.
#
# Budget: 10 minutes on one H100. Each step runs under `timeout`; at its limit it gets SIGINT, so pytest
# still writes the JSON of the benchmarks that finished (SIGKILL 20 s later). The limits leave room
# above the times of the last GPU run (docs/performance-log.md).
#   step                                  limit
#   1 kernel tests on CUDA                  100 s   mostly Triton compiles; 4 workers with pytest-xdist
#   2 peaks (copy 1 GiB, two matmuls)        20 s
#   3 regression_loss, 15 cases x 8          60 s   6 torch.compile graphs (two size classes)
#   4 moe_mlp, 11 cases x 11                 80 s   4 torch.compile graphs
#   4b cross_entropy, 3 cases x 2            40 s   one Triton compile per class count
#   5 training, default model x 2; pretrain  70 s   imports, study, 2 x 4 epochs; 5 pretraining epochs (bf16)
#   6 report                                 20 s
#   7 sweep: block sizes, scale-shape check  70 s   bench/gpu_sweep.py, stops starting runs after 55 s
#   8 profile: moe_mlp and loss kernels      40 s   bench/gpu_sweep.py --profile
#   9 training step: eager, compile, graphs  90 s   bench/gpu_step.py, two torch.compile graphs; each mode's
#                                                   line and JSON are written as it ends, so a cut run keeps
#                                                   the modes that finished
#   sum of limits                           590 s (+ ~10 s of set-up: within 10 minutes)
# Benchmarks run --benchmark-max-time=0.05 with at least 3 rounds: enough for medians of calls that take
# microseconds to milliseconds; calls over 0.25 s get exactly 3 rounds (bench/common.py).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-out/gpu-check-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
log() { echo "[gpu_check] $*" | tee -a "$out/summary.txt"; }
# The interpreter: $PYTHON if set, else python, else python3 (some GPU images have only python3).
py=${PYTHON:-$(command -v python || command -v python3 || echo python)}

if ! "$py" -c "import torch" 2>/dev/null; then
  log "error: PyTorch does not import; nothing to check"
  exit 2
fi
if ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  log "error: no CUDA device is visible to PyTorch (torch.cuda.is_available() is False); this script needs" \
      "a CUDA GPU. On a machine without one, run the CPU suite instead: python -m pytest bench --benchmark-only"
  exit 2
fi

wheels=bench/wheels
install_offline() {  # install_offline MODULE:PACKAGE... : pip-installs what does not import, from $wheels
  local missing=() packages=() pair mod
  for pair in "$@"; do
    "$py" -c "import ${pair%%:*}" 2>/dev/null || { missing+=("${pair%%:*}"); packages+=("${pair#*:}"); }
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if compgen -G "$wheels/*.whl" >/dev/null; then
    "$py" -m pip install --quiet --no-index --find-links "$wheels" "${packages[@]}" >>"$out/pip.log" 2>&1
  fi
  for mod in "${missing[@]}"; do "$py" -c "import $mod" 2>/dev/null || return 1; done
}

if ! install_offline pytest:pytest pytest_benchmark:pytest-benchmark; then
  log "error: pytest and pytest-benchmark are needed (put their wheels, and py-cpuinfo's, in $wheels/)"
  exit 2
fi
"$py" - >"$out/environment.txt" 2>&1 <<'PY'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__)
try:
    import triton
    print("triton", triton.__version__)
except Exception as exc:
    print("triton: not importable:", exc)
print("cuda", torch.version.cuda, "device", torch.cuda.get_device_name())
PY
tee -a "$out/summary.txt" <"$out/environment.txt"
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true

status=0
step() {  # step NAME LIMIT_S COMMAND... : output in $out/NAME.txt, its closing line in the summary
  local name=$1 limit=$2 rc
  shift 2
  log "$name (limit ${limit} s)"
  timeout -s INT -k 20 "$limit" "$@" >"$out/$name.txt" 2>&1
  rc=$?
  if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    log "  $name: time limit reached; what finished is kept (pytest writes its JSON on SIGINT)"
  fi
  [ $rc -ne 0 ] && status=1
  tail -n 1 "$out/$name.txt" | tee -a "$out/summary.txt"
}
pytest_q=("$py" -m pytest -q -p no:cacheprovider)
bench_opts=(-m cuda --benchmark-only --benchmark-max-time=0.05 --benchmark-min-rounds=3)

workers=()
"$py" -c "import xdist" 2>/dev/null && workers=(-n 4)  # Triton compiles in parallel
step 1-kernel-tests 100 "${pytest_q[@]}" tests/kernels -m cuda "${workers[@]}" --junitxml="$out/kernel-tests.xml"
step 2-peaks 20 "${pytest_q[@]}" bench/test_peak.py "${bench_opts[@]}" --benchmark-json="$out/peak.json"
step 3-regression-loss 60 "${pytest_q[@]}" bench/test_regression_loss.py "${bench_opts[@]}" \
  --benchmark-json="$out/regression_loss.json"
step 4-moe 80 "${pytest_q[@]}" bench/test_moe.py "${bench_opts[@]}" --benchmark-json="$out/moe.json"
step 4b-cross-entropy 40 "${pytest_q[@]}" bench/test_cross_entropy.py "${bench_opts[@]}" \
  --benchmark-json="$out/cross_entropy.json"

if install_offline scipy:scipy pandas:pandas biom:biom-format sklearn:scikit-learn matplotlib:matplotlib \
  tqdm:tqdm h5py:h5py; then
  install_offline skbio:scikit-bio || log "  scikit-bio missing: bench/test_pretrain.py skips"
  step 5-training 70 "${pytest_q[@]}" bench/test_training.py bench/test_pretrain.py "${bench_opts[@]}" \
    --benchmark-json="$out/training.json"
else
  log "5-training skipped: the aam package needs scipy, pandas, biom-format, scikit-learn, matplotlib, tqdm and" \
      "h5py (put their wheels in $wheels/)"
fi

results=()
for name in peak regression_loss moe cross_entropy training; do
  [ -s "$out/$name.json" ] && results+=("$out/$name.json")
done
if [ ${#results[@]} -gt 0 ]; then
  log "6-report (limit 20 s): $out/report.md"
  timeout 20 "$py" -m bench.report "${results[@]}" --plots "$out/plot" >"$out/report.md" 2>&1 || status=1
  cat "$out/report.md" >>"$out/summary.txt"
else
  log "6-report: no benchmark results to report"
  status=1
fi
step 7-sweep 70 "$py" -m bench.gpu_sweep --budget-s 55
step 8-profile 40 "$py" -m bench.gpu_sweep --profile
step 9-training-step 90 "$py" -m bench.gpu_step --json "$out/training_step.json"
log "done (status $status); everything is in $out/"
exit $status
