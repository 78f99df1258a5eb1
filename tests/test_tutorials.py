from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"


@pytest.mark.parametrize("name", ["scvae", "groupenc", "ae_sampling"])
def test_tutorial_notebook_runs(name, tmp_path, monkeypatch):
    monkeypatch.setenv("SCLATENT_TUTORIAL_EPOCHS", "2")  # the kernel inherits it
    notebook = nbformat.read(TUTORIALS / f"{name}.ipynb", as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code")  # stripped
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    ).execute()
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert any(o.output_type == "display_data" for c in notebook.cells for o in c.get("outputs", []))
