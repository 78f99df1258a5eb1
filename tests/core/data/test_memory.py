import numpy as np
import pytest
import scipy.sparse as sp
import torch

from sclatent._core.data import RowSource
from sclatent._core.data.memory import gather_csr_rows

CPU = torch.device("cpu")


def test_gather_matches_scipy_rows_with_repeats_and_empty_rows(csr):
    rows = torch.tensor([7, 3, 299, 3, 0, 7, 150])
    source = RowSource(csr, CPU)
    np.testing.assert_array_equal(source.gather(rows).numpy(), csr[rows.numpy()].toarray())


@pytest.mark.parametrize("rows", [[7, 3, 299, 3, 0, 7, 150], [7, 7]])
def test_positive_entries_are_those_of_the_dense_rows_in_row_major_order(csr, rows):
    matrix = csr.copy()
    matrix.data[::9] = 0  # stored zeros
    rows = torch.tensor(rows)
    dense, positives = RowSource(matrix, CPU).gather_with_positives(rows)
    np.testing.assert_array_equal(dense.numpy(), matrix[rows.numpy()].toarray())
    found_rows, found_cols = (dense > 0).nonzero(as_tuple=True)
    assert torch.equal(positives.rows, found_rows) and torch.equal(positives.cols, found_cols)
    assert torch.equal(positives.values, dense[found_rows, found_cols])
    assert RowSource(matrix.toarray(), CPU).gather_with_positives(rows)[1] is None  # dense input


def test_gather_of_empty_rows_only(csr):
    out = RowSource(csr, CPU).gather(torch.tensor([7, 7]))
    assert out.shape == (2, 57) and not out.any()


def test_sparse_matrix_is_not_densified_and_not_modified(csr):
    before = csr.copy()
    source = RowSource(csr, CPU)
    assert source.is_sparse
    assert source._values.numel() == csr.nnz
    # the SciPy view that slices rows on the host shares the tensors' memory
    assert np.shares_memory(source._host_csr.data, source._values.numpy())
    assert np.shares_memory(source._host_csr.indices, source._indices.numpy())
    assert (csr != before).nnz == 0


def test_non_canonical_csr_is_summed_without_touching_the_input():
    data, indices, indptr = np.array([1.0, 2.0, 3.0]), np.array([1, 1, 0]), np.array([0, 2, 3])
    matrix = sp.csr_matrix((data, indices, indptr), shape=(2, 3))
    matrix.has_canonical_format = False
    out = RowSource(matrix, CPU).gather(torch.tensor([0, 1])).numpy()
    np.testing.assert_array_equal(out, [[0, 3, 0], [3, 0, 0]])
    assert matrix.nnz == 3


@pytest.mark.parametrize("fmt", ["csc", "dense"])
def test_other_formats_give_the_same_rows(csr, fmt):
    matrix = csr.tocsc() if fmt == "csc" else csr.toarray()
    rows = torch.tensor([5, 1, 42])
    np.testing.assert_array_equal(RowSource(matrix, CPU).gather(rows).numpy(), csr[[5, 1, 42]].toarray())


def test_row_sums(csr):
    np.testing.assert_allclose(RowSource(csr, CPU).row_sums().numpy(), csr.sum(1).A1)
    np.testing.assert_allclose(RowSource(csr.toarray(), CPU).row_sums().numpy(), csr.sum(1).A1)


def test_gather_csr_rows_function_directly(csr):
    indptr = torch.from_numpy(csr.indptr.astype(np.int64))
    indices = torch.from_numpy(csr.indices)
    values = torch.from_numpy(csr.data)
    out = gather_csr_rows(indptr, indices, values, torch.arange(300), 57)
    np.testing.assert_array_equal(out.numpy(), csr.toarray())
