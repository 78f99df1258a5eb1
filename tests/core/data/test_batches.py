import numpy as np
import torch

from sclatent._core.data import CellData, RowSource

CPU = torch.device("cpu")


def test_cell_data_adds_positive_entries_only_when_asked(csr):
    data = CellData(RowSource(csr, CPU))
    assert "x_positives" not in data.batch(torch.tensor([1, 2]))
    assert data.batch(torch.tensor([1, 2]), positives=True)["x_positives"].values.shape == (csr[[1, 2]].nnz,)
    data.target_rows = torch.arange(300).flip(0)
    batch = data.batch(torch.tensor([1, 2]), positives=True)
    assert torch.equal(batch["target_positives"].values, torch.from_numpy(csr[[298, 297]].data))


def test_cell_data_gathers_obs_alongside(csr):
    data = CellData(RowSource(csr, CPU), {"label": torch.arange(300) * 2})
    batch = data.batch(torch.tensor([4, 9]))
    assert batch["label"].tolist() == [8, 18]
    np.testing.assert_array_equal(batch["x"].numpy(), csr[[4, 9]].toarray())
