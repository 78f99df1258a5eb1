#!/usr/bin/env bash
# The GPU check: the CUDA tests, then one table of every model's throughput and R_NX's speed on the GPU.
#
#   bash benchmarks/gpu_check.sh          # both (a few minutes on an H100)
#   bash benchmarks/gpu_check.sh table    # or one section: tests, table
#
# Needs a CUDA build of PyTorch and the test extra (pip install -e ".[test]"); the CUDA tests read
# the labelled sets from ../shared/data beside the checkout, or from $SCLATENT_TEST_DATA.
set -euo pipefail
cd "$(dirname "$0")/.."
sections=("$@")
[ ${#sections[@]} -eq 0 ] && sections=(tests table)
python - <<'PY'
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
    tests) python -m pytest -q -rs tests/test_device.py tests/test_graphs.py tests/test_rnx.py -k "cuda or gpu" || status=$? ;;
    table) python benchmarks/gpu_check.py --device cuda --threads "$(nproc)" || status=$? ;;
    *) echo "gpu_check: unknown section ${section} (tests, table)" >&2; exit 2 ;;
  esac
done
exit "${status}"
