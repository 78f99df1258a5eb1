"""Files: atomic writes (no lost input, no half-written output), path checks, readable errors."""

import hashlib
import os
import resource
import subprocess
import sys

import anndata as ad
import numpy as np
import pytest

import sclatent as sl
from sclatent._io import atomic_path, check_output_file, read_anndata, write_anndata
from sclatent.cli import main

SCVAE = ["--likelihood", "nb", "--epochs", "1", "--n-latent", "2", "--hidden", "8", "--no-progress"]


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def counts_file(small_counts, tmp_path):
    path = tmp_path / "X.h5ad"
    small_counts[:400].copy().write_h5ad(path)
    return path


def run_with_file_size_limit(argv, limit: int) -> subprocess.CompletedProcess:
    """The CLI in a process that cannot write files beyond ``limit`` bytes (a full disk)."""

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "sclatent", *argv],
        preexec_fn=limit_file_size,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics")
@pytest.mark.parametrize("backed", [False, True])
def test_failed_write_over_the_input_leaves_it_byte_identical(counts_file, backed):
    before = digest(counts_file)
    argv = ["scvae", str(counts_file), str(counts_file), *SCVAE, *(["--backed"] if backed else [])]
    done = run_with_file_size_limit(argv, counts_file.stat().st_size // 2)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "nothing was written" in done.stderr and "File too large" in done.stderr
    assert digest(counts_file) == before
    assert sorted(p.name for p in counts_file.parent.iterdir()) == ["X.h5ad"]  # no temporary left


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE semantics")
def test_failed_write_of_a_new_output_leaves_no_file(counts_file):
    out = counts_file.parent / "new.h5ad"
    done = run_with_file_size_limit(
        ["scvae", str(counts_file), str(out), *SCVAE], counts_file.stat().st_size // 2
    )
    assert done.returncode == 2 and not out.exists()
    assert sorted(p.name for p in counts_file.parent.iterdir()) == ["X.h5ad"]


def test_backed_run_replaces_an_existing_output_of_another_shape(counts_file, small_counts, tmp_path):
    out = tmp_path / "out.h5ad"
    small_counts[:50].copy().write_h5ad(out)
    assert main(["scvae", str(counts_file), str(out), *SCVAE, "--backed"]) == 0
    result = ad.read_h5ad(out)
    assert result.shape == (400, small_counts.n_vars) and result.obsm["X_scvae"].shape == (400, 2)


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("missing_dir/out.h5ad", "does not exist; create it first"),
        (".", "is a directory"),
        ("out.csv", "unknown suffix; name it *.h5ad or *.zarr"),
    ],
)
def test_output_path_is_checked_before_anything_else(tmp_path, capsys, output, message):
    # the input does not exist either: the output is checked first, before any reading or training
    assert main(["scvae", str(tmp_path / "none.h5ad"), str(tmp_path / output), *SCVAE]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_unstorable_key_is_refused_before_training_and_input_kept(counts_file, capsys):
    before = digest(counts_file)
    assert main(["scvae", str(counts_file), str(counts_file), *SCVAE, "--key-added", "a/b"]) == 2
    assert "key_added='a/b': expected a non-empty string without '/'" in capsys.readouterr().err
    assert digest(counts_file) == before


def test_foreign_input_file_is_named(tmp_path, capsys):
    bogus = tmp_path / "notes.h5ad"
    bogus.write_text("not an AnnData")
    assert main(["scvae", str(bogus), str(tmp_path / "out.h5ad"), *SCVAE]) == 2
    assert "is not a readable AnnData file" in capsys.readouterr().err
    with pytest.raises(ValueError, match="not a readable AnnData file"):
        read_anndata(bogus)


def test_atomic_path_keeps_the_previous_file_on_error(tmp_path):
    target = tmp_path / "result.txt"
    target.write_text("previous")
    with pytest.raises(RuntimeError, match="half-way"), atomic_path(target) as temporary:
        temporary.write_text("partial")
        raise RuntimeError("failed half-way")
    assert target.read_text() == "previous" and sorted(os.listdir(tmp_path)) == ["result.txt"]
    with atomic_path(target) as temporary:
        temporary.write_text("new")
    assert target.read_text() == "new" and sorted(os.listdir(tmp_path)) == ["result.txt"]


def test_zarr_store_is_replaced_whole(small_counts, tmp_path):
    store = tmp_path / "cells.zarr"
    write_anndata(small_counts[:10].copy(), store)
    write_anndata(small_counts[:20].copy(), store)
    assert ad.read_zarr(store).n_obs == 20 and sorted(os.listdir(tmp_path)) == ["cells.zarr"]


def test_check_output_file_refuses_to_overwrite_when_asked(tmp_path):
    existing = tmp_path / "model.pt"
    existing.write_bytes(b"x")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        check_output_file(existing, "path", overwrite=False)
    assert check_output_file(existing, "path") == existing
    with pytest.raises(TypeError, match="expected a file path"):
        check_output_file(3, "path")


def test_backed_tool_call_never_writes_to_its_file(counts_file):
    before = digest(counts_file)
    result = sl.tl.scvae(str(counts_file), likelihood="nb", epochs=1, n_latent=2, hidden=(8,), progress=False)
    assert np.isfinite(result.obsm["X_scvae"]).all() and digest(counts_file) == before


def test_backed_zarr_store_keeps_every_field(small_counts, tmp_path):
    adata = small_counts[:300].copy()
    adata.layers["counts"] = adata.X.copy()
    adata.varm["loadings"] = np.ones((adata.n_vars, 2))
    adata.obsp["distances"] = adata.X[:, :300].tocsr()
    store = tmp_path / "cells.zarr"
    adata.write_zarr(store)
    opened = sl.read_backed(store)
    layers = {key for key in opened.layers if key is not None}  # anndata 0.13 lists X as None
    assert layers == {"counts"} and "loadings" in opened.varm and "distances" in opened.obsp
    sl.tl.scvae(opened, layer="counts", likelihood="nb", epochs=1, n_latent=2, batch_size=32, progress=False)
    assert np.isfinite(opened.obsm["X_scvae"]).all()


@pytest.mark.parametrize("suffix", [".zarr", ".h5ad"])
def test_a_backed_anndata_is_written_a_block_of_rows_at_a_time(small_counts, tmp_path, monkeypatch, suffix):
    from sclatent import _io

    adata = small_counts[:300].copy()
    adata.obsm["X_embedding"] = np.arange(600.0).reshape(300, 2)
    adata.layers["counts"] = adata.X.copy()
    adata.write_h5ad(tmp_path / "cells.h5ad")
    blocks, row_blocks = [], _io.row_blocks

    def recorded(matrix, block_rows=None):
        for block in row_blocks(matrix, 70):
            blocks.append(block.shape[0])
            yield block

    monkeypatch.setattr(_io, "row_blocks", recorded)
    write_anndata(sl.read_backed(tmp_path / "cells.h5ad"), tmp_path / f"out{suffix}")
    if suffix == ".zarr":  # (an h5ad file is written in a child process, which records its own)
        assert blocks == [70, 70, 70, 70, 20]
    out = read_anndata(tmp_path / f"out{suffix}")
    assert (out.X != adata.X).nnz == 0 and (out.layers["counts"] != adata.X).nnz == 0
    np.testing.assert_array_equal(out.obsm["X_embedding"], adata.obsm["X_embedding"])
    assert out.obs_names.equals(adata.obs_names) and out.var_names.equals(adata.var_names)


@pytest.mark.parametrize("suffix", [".zarr", ".h5ad"])
def test_rows_that_do_not_fit_the_anndata_leave_no_file(small_counts, tmp_path, suffix):
    from sclatent._io import write_rows

    adata = small_counts[:100].copy()
    with pytest.raises((ValueError, OSError), match=r"shape \(90, 1000\).*shape \(100, 1000\)"):
        write_rows(
            ad.AnnData(obs=adata.obs, var=adata.var), [adata.X[:50], adata.X[50:90]], tmp_path / f"o{suffix}"
        )
    assert list(tmp_path.iterdir()) == []
