"""Training from a backed AnnData: the matrix is streamed from disk a buffer of blocks at a time."""

import anndata as ad
import numpy as np
import pytest
import torch

import sclatent as sl
from sclatent._core.data import CellData, row_source
from sclatent._core.data.disk import DiskRowSource


@pytest.fixture
def small_blocks():
    before = (sl.settings.disk_block_rows, sl.settings.disk_buffer_blocks)
    sl.settings.disk_block_rows, sl.settings.disk_buffer_blocks = 500, 3
    yield
    sl.settings.disk_block_rows, sl.settings.disk_buffer_blocks = before


@pytest.fixture
def path(brain, tmp_path):
    path = tmp_path / "cells.h5ad"
    brain[:4000].copy().write_h5ad(path)
    return path


@pytest.fixture
def backed(path):
    return ad.read_h5ad(path, backed="r")


def test_gather_matches_memory_and_holds_one_buffer(backed, path, small_blocks):
    source = row_source(backed.X, torch.device("cpu"))
    assert isinstance(source, DiskRowSource)
    memory = ad.read_h5ad(path).X
    sampler = source.sampler(np.arange(0, 4000, 2), 64, np.random.default_rng(0))
    seen = []
    for rows in sampler:
        np.testing.assert_array_equal(source.gather(rows).numpy(), memory[rows.numpy()].toarray())
        seen.append(rows.numpy())
    seen = np.concatenate(seen)
    assert len(np.unique(seen)) == len(seen) and np.all(seen % 2 == 0)
    assert len(seen) >= 2000 - 3 * 64  # each of the 3 buffers drops at most one incomplete batch
    assert source.max_rows_held <= 3 * 500
    in_order = source.gather(torch.arange(1000, 1100))  # sequential reads with read-ahead
    np.testing.assert_array_equal(in_order.numpy(), memory[1000:1100].toarray())
    np.testing.assert_allclose(source.row_sums().numpy(), np.asarray(memory.sum(1)).ravel())
    data = CellData(source)
    assert data.batch(torch.tensor([5, 3000]))["x"].shape == (2, 1000)
    dense, positives = source.gather_with_positives(torch.tensor([5, 3000]))
    np.testing.assert_array_equal(dense.numpy(), memory[[5, 3000]].toarray())
    np.testing.assert_array_equal(positives.values.numpy(), memory[[5, 3000]].data)


def test_scvae_trains_from_disk_as_well_as_from_memory(backed, path, small_blocks):
    args = {"likelihood": "nb", "epochs": 12, "progress": False, "device": "cpu"}
    from_disk = sl.models.SCVAE(**args).fit(backed)
    from_memory = sl.models.SCVAE(**args).fit(ad.read_h5ad(path))
    disk_elbo, memory_elbo = from_disk.history_["val_elbo"][-1], from_memory.history_["val_elbo"][-1]
    assert abs(disk_elbo - memory_elbo) <= 0.02 * abs(memory_elbo)
    embedding = from_disk.transform(backed)
    assert embedding.shape == (4000, 10) and np.isfinite(embedding).all()


def test_tl_writes_into_a_backed_anndata_and_checks_counts(backed, small_blocks):
    sl.tl.scvae(backed, likelihood="poisson", epochs=1, progress=False)
    assert backed.isbacked and backed.obsm["X_scvae"].shape == (4000, 10)
    with pytest.raises(ValueError, match="gamma"):
        sl.models.GroupEnc(gamma=1)


def test_settings_are_validated():
    with pytest.raises(ValueError, match=r"disk_block_rows=0: expected an integer >= 1"):
        sl.settings.disk_block_rows = 0


def test_zarr_store_and_command_line_stream_from_disk(brain, tmp_path, small_blocks):
    from sclatent.cli import main

    store = tmp_path / "cells.zarr"
    brain[:2000].copy().write_zarr(store)
    adata = sl.read_backed(store)
    assert isinstance(row_source(adata.X, torch.device("cpu")), DiskRowSource)
    sl.tl.scvae(adata, likelihood="nb", epochs=2, progress=False)
    assert np.isfinite(adata.obsm["X_scvae"]).all()
    out = tmp_path / "out.h5ad"
    assert main(["scvae", str(store), str(out), "--backed", "--epochs", "2", "--no-progress"]) == 0
    assert ad.read_h5ad(out).obsm["X_scvae"].shape == (2000, 10)
    model = sl.models.GroupEnc(use_rep="X", epochs=1, batch_size=256, progress=False).fit(str(store))
    assert model.transform(store).shape == (2000, 2)  # a path: read from disk block by block
    with pytest.raises(FileNotFoundError, match="does not exist"):
        sl.read_backed(tmp_path / "missing.zarr")
    with pytest.raises(TypeError, match=r"path of an \.h5ad"):
        sl.models.SCVAE().fit(42)


def test_tl_given_a_path_returns_the_opened_anndata(path, small_blocks):
    result = sl.tl.scvae(
        str(path), likelihood="nb", prior="mixture", n_components=3, epochs=1, progress=False
    )
    assert result.isbacked and result.obsm["X_scvae"].shape == (4000, 10)
    assert result.obs["scvae_cluster"].nunique() <= 3


def test_principal_components_stream_from_disk_as_from_memory(backed, path, small_blocks):
    """The GMVAE's PCs of the input (n_components=None) read the on-disk matrix block by block."""
    from sclatent._core.stats.pca import log_normalised_pcs

    rows = np.sort(np.random.default_rng(0).choice(4000, 1500, replace=False))
    source = row_source(backed.X, torch.device("cpu"))
    from_disk = log_normalised_pcs(source, rows, n_comps=20)
    from_memory = log_normalised_pcs(row_source(ad.read_h5ad(path).X, torch.device("cpu")), rows, n_comps=20)
    np.testing.assert_allclose(from_disk, from_memory, rtol=1e-4, atol=1e-4)
    assert source.max_rows_held <= 3 * 500
    model = sl.models.SCVAE(likelihood="nb", prior="mixture", epochs=4, progress=False).fit(backed)
    assert model.n_clusters >= 2 and model.cluster_probabilities(backed).shape == (4000, model.n_clusters)
