import runpy
import sys
from pathlib import Path

TUTORIALS = Path(__file__).resolve().parents[1] / "docs" / "tutorials"


def test_ae_sampling_tutorial_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("SCLATENT_TUTORIAL_EPOCHS", "2")
    monkeypatch.setattr(sys, "argv", ["ae_sampling.py", str(tmp_path)])
    runpy.run_path(str(TUTORIALS / "ae_sampling.py"), run_name="__main__")
    assert (tmp_path / "ae_sampling_modes.png").stat().st_size > 10_000
