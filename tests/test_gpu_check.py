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


def test_a_failing_case_is_a_row_and_the_table_still_prints(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import gpu_check

    def scvae_case(adata, device, epochs, **settings):
        if settings.get("batch_size") == 1024:
            raise RuntimeError("CUDA out of memory")
        return 1000.0, -200.0

    monkeypatch.setattr(gpu_check, "scvae_case", scvae_case)
    monkeypatch.setattr(
        gpu_check, "synthesize", lambda n, path: gpu_check.sl.datasets.mouse_brain_10k()[:50].write_h5ad(path)
    )
    monkeypatch.setattr(gpu_check, "other_models", lambda *args: dict.fromkeys(gpu_check.OTHER_MODELS, 10.0))
    monkeypatch.setattr(gpu_check, "rnx_case", lambda n, n_ref, device: {"seconds": 1.0})
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--device", "cpu", "--quick"])
    try:
        gpu_check.main()
    except SystemExit as stop:
        assert "3 case(s) failed" in str(stop)
    else:
        raise AssertionError("a failed case must make the check fail")
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(table) == 12  # the header and every case, also those after the failures
    failed = [line for line in table if "ERROR RuntimeError: CUDA out of memory" in line]
    assert [line.split(" | ")[0] for line in failed] == [
        "| SCVAE zinb, batch 1,024",
        "| SCVAE zinb, batch 1,024, bf16",
        "| SCVAE zinb, batch 1,024, CUDA graphs",
    ]
    assert "| exact R_NX | N = 3,000 | 1.0 s |" in "\n".join(table)
