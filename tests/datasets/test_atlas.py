"""A synthetic atlas drawn from real counts, written to disk block by block."""

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import sclatent as sl
from sclatent import _io
from sclatent._anndata import is_on_disk


@pytest.fixture(scope="module")
def reference():
    return sl.datasets.pbmc_4k()


@pytest.mark.parametrize("suffix", [".zarr", ".h5ad"])
def test_atlas_resamples_thins_and_streams_its_blocks(reference, tmp_path, monkeypatch, suffix):
    written = []
    write_rows = _io.write_rows

    def recording(adata, blocks, path):  # every block the writer receives, by its number of rows
        write_rows(adata, (written.append(b.shape[0]) or b for b in blocks), path)

    monkeypatch.setattr("sclatent.datasets._atlas.write_rows", recording)
    depths = (0.9, 0.3)
    args = {"reference": reference, "depths": depths, "block_cells": 1200, "progress": False}
    atlas = sl.datasets.synthetic_atlas(tmp_path / f"atlas{suffix}", 5000, **args)
    if suffix == ".zarr":  # (an h5ad file is written in a child process, which records its own)
        assert written == [1200, 1200, 1200, 1200, 200]  # never the whole matrix at once
    assert is_on_disk(atlas.X) and atlas.shape == (5000, reference.n_vars)
    assert list(atlas.var_names) == list(reference.var_names)
    counts = atlas.X.to_memory()
    assert sp.isspmatrix_csr(counts) and np.array_equal(counts.data, np.round(counts.data))
    # every cell is a thinned copy of the reference cell it was drawn from, with that cell's type
    source = reference[atlas.obs["reference_cell"].to_numpy()]
    assert (counts <= source.X).toarray().all()
    assert np.array_equal(atlas.obs["cell_type"].to_numpy(), source.obs["cell_type"].to_numpy())
    assert set(atlas.obs["cell_type"]) == set(reference.obs["cell_type"])
    known = atlas.obs["known_cell_type"].notna().to_numpy()  # 1% of the cells, with their own type
    assert 20 <= known.sum() <= 80
    assert (atlas.obs["known_cell_type"][known] == atlas.obs["cell_type"][known]).all()
    # each batch keeps about its depth times the cells' own depth factor (mean 0.75) of the counts
    kept = np.asarray(counts.sum(1)).ravel() / np.asarray(source.X.sum(1)).ravel()
    for name, depth in zip(["batch_0", "batch_1"], depths, strict=True):
        share = kept[(atlas.obs["batch"] == name).to_numpy()].mean()
        assert abs(share - 0.75 * depth) < 0.1, (name, share)
    again = sl.datasets.synthetic_atlas(tmp_path / f"again{suffix}", 5000, **args)
    assert (again.X.to_memory() != counts).nnz == 0  # seeded


def test_atlas_bad_input(reference, tmp_path):
    with pytest.raises(ValueError, match="unknown suffix"):
        sl.datasets.synthetic_atlas(tmp_path / "atlas.csv", 100, reference=reference)
    with pytest.raises(KeyError, match="celltype"):
        sl.datasets.synthetic_atlas(tmp_path / "atlas.zarr", 100, reference=reference, labels_key="celltype")
    with pytest.raises(ValueError, match="n_cells"):
        sl.datasets.synthetic_atlas(tmp_path / "atlas.zarr", 0, reference=reference)
    normalised = reference.copy()
    normalised.X = normalised.X * 0.5
    with pytest.raises(ValueError, match="raw counts"):
        sl.datasets.synthetic_atlas(tmp_path / "atlas.zarr", 100, reference=normalised)
    assert not (tmp_path / "atlas.zarr").exists()


def test_the_atlas_trains_from_disk(reference, tmp_path):
    atlas = sl.datasets.synthetic_atlas(tmp_path / "atlas.zarr", 3000, reference=reference, progress=False)
    sl.tl.scvae(atlas, likelihood="nb", epochs=2, progress=False, device="cpu")
    _io.write_anndata(atlas, tmp_path / "out.zarr")
    out = ad.read_zarr(tmp_path / "out.zarr")
    assert out.obsm["X_scvae"].shape == (3000, 10) and np.isfinite(out.obsm["X_scvae"]).all()
    assert (atlas.X.to_memory() != out.X).nnz == 0
