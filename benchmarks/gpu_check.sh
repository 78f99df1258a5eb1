#!/usr/bin/env bash
# The GPU check: the CUDA tests, then one table of every model's throughput and R_NX's speed on the GPU.
#
#   bash benchmarks/gpu_check.sh          # both (about 5 minutes on an H200)
#   bash benchmarks/gpu_check.sh table    # or one section: tests, table
#
# Needs a CUDA build of PyTorch and the packages of the test extra (pip install -e ".[test]"); an
# uninstalled checkout runs from src/. The CUDA tests read mouse_bladder_2100.h5ad from
# $SCLATENT_TEST_DATA, ../shared/data beside the checkout or shared/data inside it, and fail (rather
# than skip) without it. $PYTHON names the interpreter (default: python3); $GPU_CHECK_TEST_TIMEOUT
# bounds the tests section in seconds (default 420).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="${PWD}/src${PYTHONPATH:+:${PYTHONPATH}}"
py="${PYTHON:-python3}"
sections=("$@")
[ ${#sections[@]} -eq 0 ] && sections=(tests table)
"${py}" - <<'PY'
import torch

if not torch.cuda.is_available():
    raise SystemExit("gpu_check: torch.cuda.is_available() is False; install a CUDA build of PyTorch")
print(f"gpu_check: {torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})")
PY
# a failing section does not stop the next one (the table is worth its device time even when a
# test fails); the exit status is that of the last section that failed
status=0
for section in "${sections[@]}"; do
  echo "== ${section}"
  case "${section}" in
    tests) SCLATENT_REQUIRE_DATA=1 timeout "${GPU_CHECK_TEST_TIMEOUT:-420}" "${py}" -m pytest -q -rs \
      -p no:cacheprovider tests/core/runtime/test_device.py tests/core/train/test_cuda_graphs.py tests/core/metrics/test_rnx_curves.py -k "cuda or gpu" \
      || status=$? ;;
    table) "${py}" benchmarks/gpu_check.py --device cuda --threads "$(nproc)" || status=$? ;;
    *) echo "gpu_check: unknown section ${section} (tests, table)" >&2; exit 2 ;;
  esac
done
exit "${status}"
