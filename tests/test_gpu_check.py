"""The GPU check's table script runs end to end (on the CPU, tiny cases): a GPU session reads figures."""

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_prints_every_case_in_one_table():
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--threads", "2", "--quick"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    table = [line for line in run.stdout.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| case | shape | CPU")  # the device names the column
    cases = [line.split(" | ")[0][2:] for line in table[1:]]
    assert cases == [
        "SCVAE zinb, CPU shapes",
        "SCVAE zinb, CPU shapes, CUDA graphs",
        "SCVAE zinb, batch 1,024",
        "SCVAE zinb, batch 1,024, bf16",
        "SCVAE zinb, batch 1,024, CUDA graphs",
        "GMVAE (K = 16)",
        "GroupEnc",
        "SamplingAE (TRST)",
        "GMVAE epochs alone",
        "exact R_NX",
        "sampled R_NX",
    ]
    for line in table[1:]:
        figure = float(re.search(r"\| ([\d,.]+) (cells/s|s)", line).group(1).replace(",", ""))
        assert figure > 0, line
    elbos = [float(m) for m in re.findall(r"ELBO (-?[\d.]+)", run.stdout)]
    assert len(elbos) == 10 and all(e < 0 for e in elbos)  # five fits, each printed twice
