#!/usr/bin/env python3
"""sclatent ae-sampling as an nf-core module step. Nextflow fills in the placeholders."""

import os
import shlex

# caches inside the task's work directory and thread limits, set before numba and torch load
for variable in ("NUMBA_CACHE_DIR", "MPLCONFIGDIR", "XDG_CACHE_HOME"):
    os.environ[variable] = os.path.join(os.getcwd(), ".cache", variable.lower())
for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[variable] = "${task.cpus}"

from sclatent.cli import pipeline_step

# seed 0 unless ext.args sets --random-state; obsm rounded to 6 decimals for stable snapshots
pipeline_step(
    "ae-sampling",
    "${h5ad}",
    "${prefix}",
    threads=int("${task.cpus}"),
    process="${task.process}",
    args=shlex.split("${task.ext.args ?: ''}"),
    seed=0,
    decimals=6,
)
