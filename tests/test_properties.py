"""Property-based checks of every tool on drawn AnnData objects and argument values (hypothesis).

Each call either succeeds with finite outputs or raises a ValueError / TypeError whose message names
an argument (or ``adata``); the AnnData, and the file of a backed one, are never changed.
"""

import hashlib
import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import sclatent as sl

#: A fixed number of derandomised examples per tool keeps CI's time and results stable.
PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def anndatas(draw) -> ad.AnnData:
    """Small AnnData objects of any shape, dtype, storage and with NaN/inf, empty rows or columns."""
    n_obs = draw(st.sampled_from([40, 60, 80, 0, 1, 5]))
    n_vars = draw(st.one_of(st.integers(2, 12), st.integers(2, 12), st.integers(0, 2)))
    dtype = draw(st.sampled_from(["float16", "float32", "float64", "int32", "int64", "bool"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    counts = draw(st.sampled_from([True, True, True, False]))
    x = rng.poisson(2, (n_obs, n_vars)) if counts else rng.normal(size=(n_obs, n_vars))
    x = x.astype(dtype)
    if x.size and np.issubdtype(x.dtype, np.floating):
        poison = draw(st.sampled_from([None, None, None, np.nan, np.inf, -np.inf]))
        if poison is not None:
            x[rng.integers(n_obs), rng.integers(n_vars)] = poison
    if n_obs and draw(st.booleans()):
        x[rng.integers(n_obs)] = 0  # an empty cell
    if n_vars and draw(st.booleans()):
        x[:, rng.integers(n_vars)] = 0  # an empty gene
    # AnnData holds CSR and CSC (COO is converted by the caller), SciPy has no float16 sparse
    storage = draw(st.sampled_from(["dense", "csr", "csc"] if dtype != "float16" else ["dense"]))
    matrix = x if storage == "dense" else getattr(sp, f"{storage}_matrix")(x)
    adata = ad.AnnData(matrix)
    adata.obs_names = [f"c{i}" for i in range(n_obs)]
    adata.var_names = [f"g{i}" for i in range(n_vars)]
    adata.obs["type"] = rng.choice(["a", "b", None], n_obs)
    adata.obsm["X_emb"] = rng.normal(size=(n_obs, draw(st.integers(1, 3))))
    adata.obsm["X_pca"] = rng.normal(size=(n_obs, 4)).astype(np.float32)
    if n_obs > 2 and draw(st.booleans()):
        adata = adata[1:]  # a view
    return adata


def snapshot(adata: ad.AnnData, *, keys: bool = True) -> str:
    """A digest of the data (and with ``keys`` of the entries) of ``adata``."""
    digest = hashlib.sha256()
    x = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    digest.update(np.ascontiguousarray(x).tobytes())
    for key in ("X_emb", "X_pca"):
        digest.update(np.ascontiguousarray(adata.obsm[key]).tobytes())
    if keys:
        entries = (adata.shape, list(adata.obs.columns), sorted(adata.obsm), sorted(adata.uns))
        digest.update(repr(entries).encode())
    return digest.hexdigest()


def check_call(fn, adata: ad.AnnData, arguments: dict, backed: bool = False) -> Exception | None:
    """Call ``fn(adata, **arguments)``: finite outputs, or a clear error (returned); input unchanged."""
    before, data_before = snapshot(adata), snapshot(adata, keys=False)
    with tempfile.TemporaryDirectory() as folder:
        target = adata
        if backed:
            path = Path(folder) / "cells.h5ad"
            try:
                adata.write_h5ad(path)
            except (TypeError, ValueError):  # what h5ad cannot hold (float16 sparse) is not ours
                return
            target, file_before = str(path), path.read_bytes()
        error = None
        try:
            out = fn(target, **arguments)
            event("succeeded")
        except (ValueError, TypeError) as err:
            event(f"{type(err).__name__}: {str(err)[:40]}")
            names = [*arguments, "adata", "cells", "batch_size"]
            assert any(name in str(err) for name in names), f"{type(err).__name__}: {err}"
            assert snapshot(adata) == before  # nothing written on an error
            error = err
        else:
            result = out if out is not None else adata
            for key, value in result.obsm.items():
                if key not in adata.obsm:
                    assert np.isfinite(value).all(), key
            for value in result.uns.get("rnx", {}).values():
                assert np.isfinite(value["rnx"]).all()
        if backed:
            assert path.read_bytes() == file_before
    assert snapshot(adata, keys=False) == data_before  # outputs are added, the data never changed
    return error


@st.composite
def arguments(draw, valid: dict[str, list], invalid: dict[str, list]) -> tuple[dict, str | None]:
    """Valid values for every argument, and in half the draws one argument given a bad value."""
    values = {name: draw(st.sampled_from(choices)) for name, choices in valid.items()}
    bad = draw(st.sampled_from(sorted(invalid))) if draw(st.booleans()) else None
    if bad is not None:
        values[bad] = draw(st.sampled_from(invalid[bad]))
    return values, bad


TRAINING_VALID = {
    "epochs": [1, 2, None],
    "batch_size": [4, 8],
    "n_latent": [1, 2],
    "hidden": [(4,), (4, 3)],
    "validation_fraction": [0.1, 0.25],
    "early_stopping": [False],
    "random_state": [0, None, np.int64(3), np.random.default_rng(1)],
    "key_added": [None, "k"],
    "copy": [True, False],
    "device": ["cpu"],
    "progress": [False],
}
TRAINING_INVALID = {
    "epochs": [0, 1.5, "1"],
    "batch_size": [1, 4.5],
    "n_latent": [0, -1, 2.5],
    "hidden": [(0,), "4", ()],
    "validation_fraction": [1.0, -0.1],
    "random_state": [-1, "0"],
    "key_added": ["a/b", 3],
    "copy": ["yes"],
    "device": ["gpu"],
    "progress": [None],
}


def check_tool(fn, adata: ad.AnnData, drawn: tuple[dict, str | None], backed: bool = False) -> None:
    """:func:`check_call`; a drawn bad argument must be the one the error names."""
    values, bad = drawn
    outcome = check_call(fn, adata, values, backed=backed)
    if bad is not None and outcome is not None:
        assert f"{bad}=" in str(outcome), f"{bad}={values[bad]!r} gave: {outcome}"


@PROPERTY_SETTINGS
@given(
    adata=anndatas(),
    backed=st.booleans(),
    drawn=arguments(
        {
            **TRAINING_VALID,
            "likelihood": ["nb", "poisson", "zinb", "gaussian"],
            "prior": ["gaussian", "mixture"],
        },
        {**TRAINING_INVALID, "likelihood": ["binomial", None], "prior": ["vamp"]},
    ),
)
def test_scvae_property(adata, backed, drawn):
    check_tool(sl.tl.scvae, adata, drawn, backed=backed)


@PROPERTY_SETTINGS
@given(
    adata=anndatas(),
    drawn=arguments(
        {**TRAINING_VALID, "gamma": [3, 4], "use_rep": ["X_pca", None, "X"]},
        {**TRAINING_INVALID, "gamma": [2, 3.5], "use_rep": ["X_missing", 5]},
    ),
)
def test_groupenc_property(adata, drawn):
    check_tool(sl.tl.groupenc, adata, drawn)


@PROPERTY_SETTINGS
@given(
    adata=anndatas(),
    drawn=arguments(
        {**TRAINING_VALID, "mode": ["trst", "icrst", "none"], "loss": ["mse", "nb"], "labels_key": ["type"]},
        {**TRAINING_INVALID, "mode": ["abc"], "loss": ["l1"], "labels_key": ["missing", 3]},
    ),
)
def test_ae_sampling_property(adata, drawn):
    check_tool(sl.tl.ae_sampling, adata, drawn)


@PROPERTY_SETTINGS
@given(
    adata=anndatas(),
    drawn=arguments(
        {
            "basis": [None, "emb", "X_emb", ["emb", "pca"]],
            "use_rep": [None, "X", "X_pca"],
            "n_ref": [None, 2, 5],
            "random_state": [0, None, np.random.default_rng(0)],
            "key_added": [None, "r"],
            "device": ["cpu"],
            "copy": [True, False],
        },
        {
            "basis": [[], "missing", 5],
            "use_rep": ["missing", 5],
            "n_ref": [1, 5.5],
            "random_state": ["0"],
            "key_added": ["a/b"],
            "device": ["tpu"],
            "copy": [0],
        },
    ),
)
def test_rnx_property(adata, drawn):
    check_tool(sl.tl.rnx, adata, drawn)


@PROPERTY_SETTINGS
@given(
    adata=anndatas(),
    drawn=arguments(
        {
            "classifiers": ["knn", ("knn", "nb")],
            "test_size": [0.3, 0.5],
            "random_state": [0, None, np.random.default_rng(0)],
            "key_added": [None, "acc"],
            "copy": [True, False],
        },
        {
            "classifiers": ["tree", (), 3],
            "test_size": [0, 1.5],
            "random_state": ["0"],
            "key_added": ["a/b"],
            "copy": ["no"],
        },
    ),
)
def test_latent_accuracy_property(adata, drawn):
    def latent_accuracy(data, **arguments):
        return sl.tl.latent_accuracy(data, "emb", "type", **arguments)

    check_tool(latent_accuracy, adata, drawn)


@PROPERTY_SETTINGS
@given(
    n=st.integers(4, 40),
    dim=st.sampled_from([3, 20]),
    storage=st.sampled_from(["dense", "csr", "csc", "coo"]),
    duplicates=st.integers(0, 3),
    seed=st.integers(0, 2**16),
)
def test_rnx_core_gives_one_curve_for_every_storage(n, dim, storage, duplicates, seed):
    from sclatent._core.metrics.rnx_curves import rnx_curves

    rng = np.random.default_rng(seed)
    reference = rng.poisson(1, (n, dim)).astype(np.float64)
    reference[:duplicates] = reference[n - duplicates :] if duplicates else reference[:0]
    embedding = reference[:, :2] + rng.normal(size=(n, 2))
    matrix = reference if storage == "dense" else getattr(sp, f"{storage}_matrix")(reference)
    expected = rnx_curves(reference, [embedding])[0]
    result = rnx_curves(matrix, [embedding])[0]
    np.testing.assert_allclose(result.rnx, expected.rnx, rtol=0, atol=1e-9)
    assert np.isfinite(result.rnx).all()


@pytest.mark.parametrize("storage", ["csr", "csc", "dense"])  # AnnData refuses COO itself
def test_sparse_formats_give_the_same_embedding(small_counts, storage):
    dense = small_counts[:300, :200].copy()
    dense.X = dense.X.toarray()
    other = dense.copy()
    other.X = dense.X if storage == "dense" else getattr(sp, f"{storage}_matrix")(dense.X)
    kwargs = {
        "likelihood": "nb",
        "epochs": 2,
        "n_latent": 2,
        "progress": False,
        "device": "cpu",
        "copy": True,
    }
    np.testing.assert_allclose(
        sl.tl.scvae(other, **kwargs).obsm["X_scvae"], sl.tl.scvae(dense, **kwargs).obsm["X_scvae"], atol=1e-5
    )
