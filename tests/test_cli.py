import subprocess
import sys

import anndata as ad
import numpy as np
import pytest
import scanpy as sc

from sclatent.cli import main


@pytest.fixture
def pbmc_path(tmp_path):
    path = tmp_path / "pbmc.h5ad"
    sc.datasets.pbmc68k_reduced().write_h5ad(path)
    return path


def test_scvae_round_trip(small_counts, tmp_path):
    source, out = tmp_path / "counts.h5ad", tmp_path / "out.h5ad"
    small_counts.write_h5ad(source)
    argv = ["scvae", str(source), str(out), "--likelihood", "nb", "--n-latent", "4", "--hidden", "32"]
    assert main([*argv, "--epochs", "2", "--no-progress", "--seed", "3", "--threads", "1"]) == 0
    result = ad.read_h5ad(out)
    params = result.uns["scvae"]["params"]
    assert result.obsm["X_scvae"].shape == (1000, 4)
    assert params["likelihood"] == "nb" and params["random_state"] == 3 and list(params["hidden"]) == [32]


def test_groupenc_ae_sampling_and_rnx_round_trip(pbmc_path, tmp_path):
    first, second, third = (tmp_path / f"{i}.h5ad" for i in range(3))
    small = ["--epochs", "2", "--batch-size", "64", "--no-progress"]
    assert main(["groupenc", str(pbmc_path), str(first), *small, "--key-added", "ge"]) == 0
    labels = ["--labels-key", "bulk_labels", "--use-rep", "X_pca", "--p", "0.5"]
    assert main(["ae-sampling", str(first), str(second), *small, *labels]) == 0
    plot = tmp_path / "rnx.png"
    assert main(["rnx", str(second), str(third), "--basis", "ge", "umap", "--plot", str(plot)]) == 0
    result = ad.read_h5ad(third)
    assert result.obsm["X_ge"].shape == (700, 2) and result.uns["ge"]["params"]["random_state"] == 0
    assert result.uns["ae_sampling"]["params"]["p"] == 0.5
    assert set(result.uns["rnx"]) == {"X_ge", "X_umap"}
    assert plot.read_bytes().startswith(b"\x89PNG")
    scored = tmp_path / "scored.h5ad"
    argv = ["latent-accuracy", str(third), str(scored), "--basis", "ge", "--labels-key", "bulk_labels"]
    assert main([*argv, "--classifiers", "knn", "nb"]) == 0
    accuracy = ad.read_h5ad(scored).uns["latent_accuracy"]["X_ge"]["accuracy"]
    assert set(accuracy) == {"knn", "nb"} and 0 < accuracy["knn"] <= 1


def test_several_values_never_take_the_paths(small_counts, tmp_path):
    source, out = tmp_path / "counts.h5ad", tmp_path / "out.h5ad"
    small_counts.write_h5ad(source)
    argv = ["scvae", "--hidden", "64", "32", str(source), str(out), "--epochs", "1", "--no-progress"]
    assert main(argv) == 0
    assert list(ad.read_h5ad(out).uns["scvae"]["params"]["hidden"]) == [64, 32]


def test_help_is_plain_text_with_choices_and_one_default(capsys):
    for command in ("scvae", "groupenc", "ae-sampling", "rnx", "latent-accuracy", "demo"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = capsys.readouterr().out
        assert "``" not in text and ":class:" not in text and "e.g\n" not in text
        for option in text.split("\n  --")[1:]:
            assert option.count("default") <= 1, option
    with pytest.raises(SystemExit):
        main(["scvae", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--likelihood {poisson,nb,zip,zinb,gaussian}" in text and "(default: zinb)" in text
    assert "(default: 128)" in text  # --hidden, a tuple, shown as its values


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["rnx", "missing.h5ad"], "does not exist"),
        (["rnx", "{pbmc}", "--basis", "tsne"], "basis='tsne' is not in adata.obsm"),
        (["scvae", "{pbmc}", "--epochs", "1"], "models raw counts"),
        (["groupenc", "{pbmc}", "--gamma", "2"], "gamma=2"),
    ],
)
def test_input_errors_exit_2_with_one_line_and_no_output(argv, message, pbmc_path, tmp_path, capsys):
    out = tmp_path / "out.h5ad"
    argv = [a.format(pbmc=pbmc_path) for a in argv]
    assert main([*argv[:2], str(out), *argv[2:]]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith(f"sclatent {argv[0]}: error:")
    assert not out.exists()


def test_usage_errors_exit_2_and_the_module_entry_point(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["scvae", "in.h5ad", "out.h5ad", "--no-such-option", "1"])
    assert exit_info.value.code == 2
    done = subprocess.run([sys.executable, "-m", "sclatent", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "ae-sampling" in done.stdout


def test_zarr_in_and_out(pbmc_path, tmp_path):
    store, out = tmp_path / "in.zarr", tmp_path / "out.zarr"
    ad.read_h5ad(pbmc_path).write_zarr(store)
    assert main(["rnx", str(store), str(out), "--basis", "umap", "--n-ref", "50"]) == 0
    result = ad.read_zarr(out)
    assert result.uns["rnx"]["X_umap"]["n_ref"] == 50
    assert np.isfinite(result.uns["rnx"]["X_umap"]["local_sp"])
