import re
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
MODULES = ROOT / "nextflow" / "modules" / "sclatent"
TEST_DATA = ROOT / "galaxy" / "test-data"
RUNS = {
    "scvae": ("counts_small.h5ad", "--epochs 2 --batch-size 32 --likelihood nb", "X_scvae"),
    "groupenc": ("pbmc_small.h5ad", "--epochs 2 --batch-size 64", "X_groupenc"),
    "aesampling": (
        "pbmc_small.h5ad",
        "--epochs 2 --mode icrst --labels-key bulk_labels --use-rep X_pca",
        "X_ae_sampling",
    ),
    "rnx": ("pbmc_small.h5ad", "--basis X_umap --n-ref 100", None),
}


def render(template: str, values: dict[str, str]) -> str:
    """Fill in the template the way Nextflow does for the placeholders the modules use."""
    for placeholder, value in values.items():
        template = template.replace("${" + placeholder + "}", value)
    assert "${" not in template, re.findall(r"\$\{[^}]*\}", template)
    return template


def test_every_module_is_complete():
    assert sorted(p.name for p in MODULES.iterdir()) == sorted(RUNS)
    for name in RUNS:
        module = MODULES / name
        main = (module / "main.nf").read_text()
        assert (
            f"process SCLATENT_{name.upper()}" in main and f"template '{name}.py'" in main and "stub:" in main
        )
        meta = yaml.safe_load((module / "meta.yml").read_text())
        assert meta["name"] == f"sclatent_{name}" and meta["tools"][0]["sclatent"]["licence"] == [
            "BSD-3-Clause"
        ]
        assert "edamontology.org/format_3590" in (module / "meta.yml").read_text()
        environment = yaml.safe_load((module / "environment.yml").read_text())
        pins = environment["dependencies"][-1]["pip"]
        assert all("==" in pin for pin in pins) and "sclatent==0.1.0" in pins


@pytest.mark.parametrize("name", sorted(RUNS))
def test_template_runs_with_python(name, tmp_path):
    data, args, obsm_key = RUNS[name]
    values = {
        "task.cpus": "1",
        "h5ad": str(TEST_DATA / data),
        "prefix": "sample1",
        "task.process": f"SCLATENT_{name.upper()}",
        "task.ext.args ?: ''": args,
    }
    script = tmp_path / f"{name}.py"
    script.write_text(render((MODULES / name / "templates" / f"{name}.py").read_text(), values))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = ad.read_h5ad(tmp_path / "sample1.h5ad")
    versions = yaml.safe_load((tmp_path / "versions.yml").read_text())
    assert set(versions[f"SCLATENT_{name.upper()}"]) >= {"sclatent", "torch", "anndata"}
    assert (tmp_path / ".cache").is_dir()  # caches kept inside the work directory
    if obsm_key is None:
        assert (tmp_path / "sample1.png").stat().st_size > 10_000
        assert result.uns["rnx"]["X_umap"]["n_ref"] == 100
        return
    embedding = result.obsm[obsm_key]
    np.testing.assert_array_equal(embedding, embedding.round(6))  # rounded for stable snapshots
    assert result.uns[obsm_key[2:]]["params"]["random_state"] == 0
