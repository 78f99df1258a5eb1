import numpy as np
import pytest
import scipy.sparse as sp
import torch

CPU = torch.device("cpu")


@pytest.fixture
def csr():
    rng = np.random.default_rng(0)
    matrix = sp.random(300, 57, density=0.1, format="csr", random_state=rng, dtype=np.float32)
    matrix.data = np.ceil(matrix.data * 10)
    matrix.data[matrix.indptr[7] : matrix.indptr[8]] = 0  # an empty row
    matrix.eliminate_zeros()
    return matrix
