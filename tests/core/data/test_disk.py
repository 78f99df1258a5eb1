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


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_read_their_own_blocks_and_together_the_file_once(backed, small_blocks, world_size):
    n, chosen = 4000, np.sort(np.random.default_rng(1).choice(4000, 3600, replace=False))
    sources = [DiskRowSource(backed.X, torch.device("cpu")) for _ in range(world_size)]
    samplers = [
        s.sampler(chosen, 50, np.random.default_rng(0), rank=r, world_size=world_size)
        for r, s in enumerate(sources)
    ]
    for _epoch in range(2):
        read_before = [s.rows_read for s in sources]
        batches = [[b.numpy() for b in sampler] for sampler in samplers]
        assert len({len(b) for b in batches}) == 1  # every rank steps equally often
        cells = [np.concatenate(b) for b in batches]
        blocks = [set((c // 500).tolist()) for c in cells]
        # each rank takes a run of blocks; neighbouring runs share at most their border block
        shared = sum(len(blocks[i] & blocks[j]) for i in range(world_size) for j in range(i))
        assert shared <= world_size - 1
        everything = np.concatenate(cells)  # chosen cells only, each at most once
        assert len(np.unique(everything)) == len(everything) and np.isin(everything, chosen).all()
        # each buffer (4 per rank at most) drops less than a batch, and a rank at most a batch more
        assert len(everything) >= 3600 - world_size * 5 * 50
        # together the ranks read the file once per pass (each rank its run), not once each
        read = [s.rows_read - before for s, before in zip(sources, read_before, strict=True)]
        assert sum(read) <= n + (world_size - 1) * 500, read
        assert max(read) <= n // world_size + 2 * 500, read
    assert len(samplers[0]) == 3600 // world_size // 50


def test_validation_cells_are_sharded_by_block(backed, small_blocks):
    source = DiskRowSource(backed.X, torch.device("cpu"))
    cells = np.arange(0, 4000, 7)
    shards = [source.shard(cells, rank, 3) for rank in range(3)]
    assert np.array_equal(np.sort(np.concatenate(shards)), cells)
    assert [sorted(set((s // 500 % 3).tolist())) for s in shards] == [[0], [1], [2]]
    few_blocks = DiskRowSource(backed.X, torch.device("cpu"), block_rows=4000)  # 1 block, 3 ranks
    assert np.array_equal(few_blocks.shard(cells, 1, 3), cells[1::3])


def test_a_sample_of_cells_is_read_once_into_memory(backed, path, small_blocks):
    source = row_source(backed.X, torch.device("cpu"))
    rows = np.array([3999, 12, 1700, 13])
    data = CellData(source, {"n": torch.arange(4000)})
    cached, where = data.cached(rows)
    assert source.rows_read == 3 * 500  # the three blocks holding the rows, once
    memory = ad.read_h5ad(path).X
    batch = cached.batch(torch.as_tensor(where))
    np.testing.assert_array_equal(batch["x"].numpy(), memory[rows].toarray())
    np.testing.assert_array_equal(batch["n"].numpy(), rows)
    in_memory = CellData(row_source(memory, torch.device("cpu")))
    assert in_memory.cached(rows)[0] is in_memory


def test_with_fewer_blocks_than_ranks_each_rank_shares_every_buffer(backed):
    sources = [DiskRowSource(backed.X, torch.device("cpu"), block_rows=2000) for _ in range(3)]  # 2 blocks
    cells = [
        np.concatenate(
            [
                b.numpy()
                for b in s.sampler(np.arange(4000), 50, np.random.default_rng(0), rank=r, world_size=3)
            ]
        )
        for r, s in enumerate(sources)
    ]
    assert len({len(c) for c in cells}) == 1 and len(np.unique(np.concatenate(cells))) == 3 * len(cells[0])
    assert all(s.rows_read == 4000 for s in sources)  # small files: every rank reads them whole
