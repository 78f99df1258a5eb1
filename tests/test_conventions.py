"""Every public tl function follows scanpy's conventions."""

import inspect
import sys
import typing
import warnings

import anndata as ad
import pytest
import scanpy as sc

import sclatent as sl

#: Arguments the scoring tools take positionally after adata, as in DESIGN.md.
POSITIONAL = {"rnx": ["adata", "basis"], "latent_accuracy": ["adata", "basis", "labels_key"]}

RUNS = {
    "scvae": {"likelihood": "gaussian", "use_rep": "X_pca", "epochs": 2, "progress": False},
    "groupenc": {"epochs": 2, "batch_size": 64, "progress": False},
    "ae_sampling": {"labels_key": "bulk_labels", "use_rep": "X_pca", "epochs": 2, "progress": False},
    "rnx": {"basis": "umap", "n_ref": 50},
    "latent_accuracy": {"basis": "umap", "labels_key": "bulk_labels", "classifiers": ("knn",)},
}


def test_every_public_tool_is_covered():
    assert set(sl.tl.__all__) == set(RUNS)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_signature(name):
    fn = getattr(sl.tl, name)
    parameters = inspect.signature(fn).parameters
    positional = [p.name for p in parameters.values() if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    assert positional == POSITIONAL.get(name, ["adata"])
    for argument, default in (("copy", False), ("key_added", None)):
        assert parameters[argument].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[argument].default is default
    assert typing.get_type_hints(fn)["return"] == ad.AnnData | None
    if "random_state" in parameters:
        assert parameters["random_state"].default == 0


@pytest.mark.parametrize("name", sorted(RUNS))
def test_copy_and_key_added_move_every_output(name):
    adata = sc.datasets.pbmc68k_reduced()
    fn = getattr(sl.tl, name)
    before_obsm, before_uns = set(adata.obsm), set(adata.uns)
    default = fn(adata, copy=True, **RUNS[name])
    moved = fn(adata, copy=True, key_added="alt", **RUNS[name])
    assert set(adata.obsm) == before_obsm and set(adata.uns) == before_uns  # copy=True: input untouched
    added_default = (set(default.obsm) - before_obsm) | (set(default.uns) - before_uns)
    added_moved = (set(moved.obsm) - before_obsm) | (set(moved.uns) - before_uns)
    assert added_default and all("alt" not in key for key in added_default)
    assert added_moved and all("alt" in key for key in added_moved)
    assert fn(adata, **RUNS[name]) is None  # copy=False writes in place and returns None
    if name in ("scvae", "groupenc", "ae_sampling"):
        params = moved.uns["alt"]["params"]
        for argument, value in RUNS[name].items():
            assert params[argument] == (list(value) if isinstance(value, tuple) else value)
        assert {"device", "versions", "random_state"} <= set(params)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_a_view_is_written_without_warnings_and_reports_through_scanpy(name, capsys):
    adata = sc.datasets.pbmc68k_reduced()
    view = adata[:600]
    verbosity, logfile = sc.settings.verbosity, sc.settings.logfile
    sc.settings.verbosity, sc.settings.logfile = "info", sys.stderr  # the stream capsys captures
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert getattr(sl.tl, name)(view, **RUNS[name]) is None
    finally:
        sc.settings.verbosity, sc.settings.logfile = verbosity, logfile
    assert not view.is_view  # made an AnnData of its own, like scanpy's tools do
    printed = capsys.readouterr().err  # the info lines, printed by scanpy's logging
    assert f"{name}: adata is a view" in printed
    if name in ("scvae", "groupenc", "ae_sampling"):
        kept = view.uns[name]["params"]["kept_epoch"]
        assert f"trained 2 epochs on cpu, kept epoch {kept + 1}" in printed
        assert f"added obsm['X_{name}']" in printed
