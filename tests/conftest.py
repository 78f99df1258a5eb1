import os
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scanpy as sc
import torch


def _data_dir() -> Path:
    """The labelled data sets: $SCLATENT_TEST_DATA, else ../shared/data beside the checkout, else
    shared/data inside it (a copy of the working tree on another machine)."""
    root = Path(__file__).resolve().parents[1]
    candidates = [root.parent / "shared" / "data", root / "shared" / "data"]
    if "SCLATENT_TEST_DATA" in os.environ:
        candidates.insert(0, Path(os.environ["SCLATENT_TEST_DATA"]))
    return next((path for path in candidates if path.is_dir()), candidates[0])


DATA = _data_dir()


@pytest.fixture(autouse=True)
def _two_threads():
    torch.set_num_threads(2)


def _shared(name: str) -> Path:
    """A labelled data set's path; a missing one skips the test, or fails it with SCLATENT_REQUIRE_DATA=1."""
    path = DATA / name
    if not path.exists():
        message = f"{path} is not available (set SCLATENT_TEST_DATA to the folder of the labelled data sets)"
        if os.environ.get("SCLATENT_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def bladder_counts() -> ad.AnnData:
    """mouse_bladder_2100 reduced to its 2,000 most variable genes, raw counts in .X."""
    adata = ad.read_h5ad(_shared("mouse_bladder_2100.h5ad"))
    lognorm = adata.copy()
    sc.pp.normalize_total(lognorm)
    sc.pp.log1p(lognorm)
    sc.pp.highly_variable_genes(lognorm, n_top_genes=2000)
    return adata[:, lognorm.var["highly_variable"].to_numpy()].copy()


@pytest.fixture(scope="session")
def brain() -> ad.AnnData:
    import sclatent as sl

    return sl.datasets.mouse_brain_10k()


@pytest.fixture
def small_counts(brain) -> ad.AnnData:
    """1,000 real cells x 1,000 genes of raw counts, a fresh copy per test."""
    return brain[np.arange(0, 10_000, 10)].copy()


@pytest.fixture(scope="session")
def bladder_pca() -> ad.AnnData:
    """mouse_bladder_2100 the way GroupEnc expects it: normalize_total, log1p, scale (max 10), 50 PCs."""
    adata = ad.read_h5ad(_shared("mouse_bladder_2100.h5ad"))
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.scale(adata, max_value=10)
    sc.pp.pca(adata, n_comps=50, random_state=0)
    return ad.AnnData(obs=adata.obs, obsm={"X_pca": adata.obsm["X_pca"]})


@pytest.fixture(scope="session")
def digits_adata() -> ad.AnnData:
    """scikit-learn's 1,797 8x8 digit images, pixels scaled to [0, 1], the digit in obs["digit"]."""
    import pandas as pd
    from sklearn.datasets import load_digits

    digits = load_digits()
    obs = pd.DataFrame(
        {"digit": pd.Categorical(digits.target.astype(str))},
        index=[f"image{i}" for i in range(len(digits.target))],
    )
    return ad.AnnData(digits.data.astype(np.float32) / 16, obs=obs)
