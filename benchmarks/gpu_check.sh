#!/usr/bin/env bash
# The GPU check: the CUDA tests, then the benchmarks on the GPU, each printing its figures.
#
#   bash benchmarks/gpu_check.sh            # everything (about 10 minutes on an H100)
#   bash benchmarks/gpu_check.sh tests scvae rnx groupenc ae_sampling   # or some sections
#
# Needs a CUDA build of PyTorch and the bench extra (pip install -e ".[test,bench]").
set -euo pipefail
cd "$(dirname "$0")/.."
sections=("$@")
[ ${#sections[@]} -eq 0 ] && sections=(tests scvae rnx groupenc ae_sampling)
python - <<'PY'
import torch

if not torch.cuda.is_available():
    raise SystemExit("gpu_check: torch.cuda.is_available() is False; install a CUDA build of PyTorch")
print(f"gpu_check: {torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})")
PY
threads=$(nproc)
for section in "${sections[@]}"; do
  echo "== ${section}"
  case "${section}" in
    tests) python -m pytest -q -rs tests/test_device.py tests/test_rnx.py -k "cuda or gpu" ;;
    scvae) python benchmarks/bench_scvae.py --device cuda --threads "${threads}" --models ;;
    rnx) python benchmarks/bench_rnx.py --device cuda --threads "${threads}" --no-peers ;;
    groupenc) python benchmarks/bench_groupenc.py --device cuda --threads "${threads}" ;;
    ae_sampling) python benchmarks/bench_ae_sampling.py --device cuda --threads "${threads}" ;;
    *) echo "gpu_check: unknown section ${section} (tests, scvae, rnx, groupenc, ae_sampling)" >&2; exit 2 ;;
  esac
done
