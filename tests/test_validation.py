"""One argument-validation layer: each bad value gets one message naming the argument."""

import anndata as ad
import numpy as np
import pytest
import scanpy as sc

import sclatent as sl
from sclatent._validation import Integer, Integers, Key, Real, seed
from sclatent.cli import main

TINY = {"epochs": 1, "progress": False, "batch_size": 16}


@pytest.fixture(scope="module")
def pbmc():
    adata = sc.datasets.pbmc68k_reduced()
    adata.obs["dose"] = np.random.default_rng(0).uniform(size=adata.n_obs)  # continuous
    return adata


def snapshot(adata: ad.AnnData) -> tuple:
    return (
        adata.shape,
        sorted(adata.obs.columns),
        sorted(adata.obsm),
        sorted(adata.uns),
        float(np.asarray(adata.X).sum()),
    )


@pytest.mark.parametrize(
    ("check", "value", "error", "message"),
    [
        (Integer(minimum=1), 0, ValueError, "n=0: expected an integer >= 1."),
        (Integer(minimum=1), 2.5, ValueError, "n=2.5: expected an integer >= 1."),
        (Integer(minimum=1), "3", TypeError, "n='3': expected an integer >= 1."),
        (Integer(minimum=1), True, TypeError, "n=True"),
        (Integer(minimum=1, optional=True), 1.5, ValueError, "an integer >= 1, or None"),
        (Real(low=0, high=1, high_open=True), 1.0, ValueError, "n=1.0: expected a number in [0, 1)."),
        (Real(low=0), float("nan"), ValueError, "n=nan"),
        (Integers(), "16", TypeError, "n='16': expected one or more integers >= 1"),
        (Integers(), (), ValueError, "one or more integers"),
        (Integers(), (16, 0), ValueError, "n[1]=0: expected an integer >= 1."),
        (Key(storable=True), "my/key", ValueError, "without '/'"),
        (Key(storable=True), 123, TypeError, "n=123: expected a string"),
        (seed, "zero", TypeError, "an int, None, or a numpy.random.Generator"),
        (seed, -1, ValueError, "non-negative"),
    ],
)
def test_checks_name_argument_value_and_what_is_allowed(check, value, error, message):
    with pytest.raises(error) as info:
        check("n", value)
    assert message in str(info.value)


def test_checks_return_plain_python_values():
    assert type(Integer()("n", np.int64(4))) is int and Integer()("n", 3.0) == 3
    assert Integers()("n", np.array([16, 8])) == (16, 8)
    assert type(Real()("n", np.float32(0.5))) is float
    assert seed("n", None) is None and seed("n", np.int64(3)) == 3
    assert seed("n", np.random.default_rng(1)) == seed("n", np.random.default_rng(1))


CASES = [
    # (tool, arguments, error, text naming the argument)
    ("scvae", {"n_latent": 0}, ValueError, "n_latent=0"),
    ("scvae", {"n_latent": -1}, ValueError, "n_latent=-1"),
    ("scvae", {"n_latent": 2.5}, ValueError, "n_latent=2.5"),
    ("scvae", {"hidden": (0,)}, ValueError, "hidden[0]=0"),
    ("scvae", {"hidden": "16"}, TypeError, "hidden='16'"),
    ("scvae", {"epochs": 1.5}, ValueError, "epochs=1.5"),
    ("scvae", {"random_state": "0"}, TypeError, "random_state='0'"),
    ("scvae", {"dropout": -0.1}, ValueError, "dropout=-0.1"),
    ("scvae", {"batch_size": 32.5}, ValueError, "batch_size=32.5"),
    ("scvae", {"kl_warmup": -5}, ValueError, "kl_warmup=-5"),
    ("scvae", {"lr": 0}, ValueError, "lr=0"),
    ("scvae", {"validation_fraction": 0}, ValueError, "early_stopping=True needs held-out cells"),
    ("scvae", {"prior": "mixture", "n_components": 2.7}, ValueError, "n_components=2.7"),
    ("scvae", {"key_added": 123}, TypeError, "key_added=123"),
    ("scvae", {"key_added": "my/key"}, ValueError, "key_added='my/key'"),
    ("scvae", {"batch_key": "dose"}, TypeError, "batch_key='dose'"),
    ("scvae", {"device": "gpu"}, ValueError, "device='gpu'"),
    ("scvae", {"progress": "yes"}, TypeError, "progress='yes'"),
    ("scvae", {"copy": 1}, TypeError, "copy=1"),
    ("groupenc", {"n_latent": 0}, ValueError, "n_latent=0"),
    ("groupenc", {"gamma": 2}, ValueError, "gamma=2"),
    ("groupenc", {"kl_weight": -1}, ValueError, "kl_weight=-1"),
    ("ae_sampling", {"mode": "trst", "p": 1.5}, ValueError, "p=1.5"),
    ("ae_sampling", {"mode": "abc"}, ValueError, "mode='abc'"),
    ("rnx", {"basis": []}, ValueError, "basis=[]"),
    ("rnx", {"basis": "umap", "n_ref": 100.5}, ValueError, "n_ref=100.5"),
    ("rnx", {"basis": "umap", "key_added": "a/b"}, ValueError, "key_added='a/b'"),
    ("rnx", {"basis": "umap", "random_state": 1.5}, TypeError, "random_state=1.5"),
    ("rnx", {"basis": 5}, TypeError, "basis=5"),
    ("latent_accuracy", {"classifiers": ("knn", "tree")}, ValueError, "classifiers='tree'"),
    ("latent_accuracy", {"test_size": 1.0}, ValueError, "test_size=1.0"),
]


def call(tool: str, adata: ad.AnnData, arguments: dict):
    if tool == "scvae":  # pbmc68k_reduced holds scaled values: the Gaussian likelihood fits them
        return sl.tl.scvae(adata, likelihood="gaussian", **{**TINY, **arguments})
    if tool == "groupenc":
        return sl.tl.groupenc(adata, **{**TINY, **arguments})
    if tool == "ae_sampling":
        return sl.tl.ae_sampling(adata, use_rep="X_pca", **{**TINY, **arguments})
    if tool == "rnx":
        return sl.tl.rnx(adata, **arguments)
    return sl.tl.latent_accuracy(adata, "umap", "bulk_labels", **arguments)


@pytest.mark.parametrize(("tool", "arguments", "error", "text"), CASES)
def test_bad_arguments_of_every_tool(pbmc, tool, arguments, error, text):
    before = snapshot(pbmc)
    with pytest.raises(error) as info:
        call(tool, pbmc, arguments)
    assert text in str(info.value)
    assert snapshot(pbmc) == before


def test_single_classifier_name_is_one_classifier(pbmc):
    out = sl.tl.latent_accuracy(pbmc, "umap", "bulk_labels", classifiers="knn", copy=True)
    assert list(out.uns["latent_accuracy"]["X_umap"]["accuracy"]) == ["knn"]


@pytest.mark.parametrize(
    ("adata", "message"),
    [
        (ad.AnnData(np.zeros((0, 5), dtype=np.float32)), "no cells"),
        (ad.AnnData(np.zeros((50, 0), dtype=np.float32)), "no features"),
    ],
)
def test_empty_anndata_is_named(adata, message):
    with pytest.raises(ValueError, match=message):
        sl.tl.scvae(adata, likelihood="gaussian", **TINY)


def test_wrong_container_and_results_key(pbmc):
    with pytest.raises(TypeError, match="adata: expected an AnnData or the path"):
        sl.tl.scvae([pbmc], **TINY)
    with pytest.raises(TypeError, match="adata: expected an AnnData, got list"):
        sl.tl.rnx([pbmc], "umap")
    other = pbmc.copy()
    other.uns["rnx"] = "not a dict"
    with pytest.raises(ValueError, match=r"adata.uns\['rnx'\] holds a str"):
        sl.tl.rnx(other, "umap")


@pytest.mark.parametrize(("option", "text"), [("--hidden", "hidden[0]=0"), ("--n-latent", "n_latent=0")])
def test_cli_reports_bad_numbers_in_one_line(tmp_path, capsys, option, text):
    source = tmp_path / "in.h5ad"
    sc.datasets.pbmc68k_reduced().write_h5ad(source)
    assert main(["scvae", str(source), str(tmp_path / "out.h5ad"), option, "0", "--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert text in err and len(err.splitlines()) == 1
