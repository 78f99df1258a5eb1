import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_docs_build_without_warnings(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    api = (tmp_path / "generated" / "sclatent.tl.rnx.html").read_text()
    assert "n_ref" in api
    assert (tmp_path / "metrics.html").exists()
    assert "Which model when" in (tmp_path / "models.html").read_text()
    for name in ("scvae", "groupenc", "ae_sampling"):  # the tutorials, rendered from tutorials/
        assert (tmp_path / "tutorials" / f"{name}.html").read_text().count("cell_input") >= 3
