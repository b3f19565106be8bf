#!/usr/bin/env bash
# One command for a machine with a CUDA GPU and no network: the kernel tests on CUDA, the kernel
# benchmarks, the end-to-end training benchmark when its dependencies are importable, and the
# report, all written under one folder.
#
#   bench/gpu_check.sh [OUT_DIR]        (default: gpu-check-<date>)
#
# Needs PyTorch, Triton, NumPy, pytest and pytest-benchmark. Missing Python packages are installed
# offline from wheels placed in bench/wheels/ (pip download them on a connected machine).
# Budget: about 9 minutes on one H100 (each step has its own time limit).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
log() { echo "[gpu_check] $*" | tee -a "$out/summary.txt"; }

wheels=bench/wheels
install_offline() {  # install_offline MODULE:PACKAGE... : pip-installs what does not import, from $wheels
  local missing=() packages=() pair
  for pair in "$@"; do
    python -c "import ${pair%%:*}" 2>/dev/null || { missing+=("${pair%%:*}"); packages+=("${pair#*:}"); }
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if compgen -G "$wheels/*.whl" >/dev/null; then
    python -m pip install --quiet --no-index --find-links "$wheels" "${packages[@]}" >>"$out/pip.log" 2>&1
  fi
  for mod in "${missing[@]}"; do python -c "import $mod" 2>/dev/null || return 1; done
}

if ! install_offline pytest:pytest pytest_benchmark:pytest-benchmark; then
  log "error: pytest and pytest-benchmark are needed (put their wheels in $wheels/)"
  exit 2
fi
python - >"$out/environment.txt" 2>&1 <<'PY'
import platform, torch
print("python", platform.python_version(), "torch", torch.__version__)
try:
    import triton
    print("triton", triton.__version__)
except Exception as exc:
    print("triton: not importable:", exc)
print("cuda", torch.version.cuda, "device", torch.cuda.get_device_name() if torch.cuda.is_available() else "none")
PY
cat "$out/environment.txt" | tee -a "$out/summary.txt"
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  log "error: no CUDA device visible; nothing to check"
  exit 2
fi

status=0
log "1/4 kernel tests on CUDA"
timeout 180 python -m pytest tests/kernels -m cuda -q -p no:cacheprovider --junitxml="$out/kernel-tests.xml" \
  >"$out/kernel-tests.txt" 2>&1 || status=1
tail -n 3 "$out/kernel-tests.txt" | tee -a "$out/summary.txt"

log "2/4 kernel benchmarks (GPU providers and peaks)"
timeout 300 python -m pytest bench/test_peak.py bench/test_regression_loss.py bench/test_moe.py \
  -k "cuda or triton" --benchmark-only --benchmark-max-time=0.5 --benchmark-json="$out/kernels.json" -q \
  -p no:cacheprovider >"$out/kernel-bench.txt" 2>&1 || status=1
tail -n 3 "$out/kernel-bench.txt" | tee -a "$out/summary.txt"

log "3/4 end-to-end training benchmark"
if install_offline scipy:scipy pandas:pandas biom:biom-format sklearn:scikit-learn matplotlib:matplotlib \
  tqdm:tqdm h5py:h5py; then
  timeout 150 python -m pytest bench/test_training.py --benchmark-only --benchmark-max-time=0.5 \
    --benchmark-json="$out/training.json" -q -p no:cacheprovider >"$out/training-bench.txt" 2>&1 || status=1
  tail -n 3 "$out/training-bench.txt" | tee -a "$out/summary.txt"
else
  log "skipped: the aam package needs scipy, pandas, biom-format, scikit-learn, matplotlib, tqdm and h5py (wheels in $wheels/)"
fi

log "4/4 report"
for json in "$out"/kernels.json "$out"/training.json; do
  [ -f "$json" ] && python -m bench.report "$json" >"${json%.json}-report.md" 2>&1
done
[ -f "$out/kernels-report.md" ] && cat "$out/kernels-report.md" >>"$out/summary.txt"
log "done (status $status); everything is in $out/"
exit $status
