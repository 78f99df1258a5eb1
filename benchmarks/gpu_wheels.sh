#!/usr/bin/env bash
# Wheels, for a GPU machine without internet whose Python has PyTorch, NumPy, SciPy, pandas, h5py,
# scikit-learn, matplotlib and numba (a typical CUDA image) but not the single-cell stack: the
# packages sclatent needs beyond those, at the versions installed here, for that machine's Python.
#
#   bash benchmarks/gpu_wheels.sh [python version, default 3.12] [folder, default .whl]
#
# There: python3 -m pip install --no-index --no-deps --target /tmp/site .whl/*.whl
#        PYTHONPATH=/tmp/site bash benchmarks/gpu_check.sh
# (about 18 MB; anndata's and scanpy's own needs included, one version of each)
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-3.12}"
folder="${2:-.whl}"
py="${PYTHON:-python3}"
names=(anndata scanpy umap-learn pynndescent igraph texttable legacy-api-wrap natsort session-info2
  scverse-misc array-api-compat zarr numcodecs donfig google-crc32c)
pins=$("${py}" - "${names[@]}" <<'PY'
import importlib.metadata as md
import sys

pins = []
for name in sys.argv[1:]:
    try:
        pins.append(f"{name}=={md.version(name)}")
    except md.PackageNotFoundError:
        # not installed here: the newest release (pynndescent below 0.7, as pyproject.toml asks)
        pins.append("pynndescent<0.7" if name == "pynndescent" else name)
print(" ".join(pins))
PY
)
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "${tag}")
done
# shellcheck disable=SC2086
"${py}" -m pip download --no-deps --only-binary=:all: --python-version "${version}" --implementation cp \
  "${platforms[@]}" -d "${folder}" ${pins}
ls "${folder}"
