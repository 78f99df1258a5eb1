"""The model life cycle shared by every model (models/_base.py): fit, save, load, refit."""

from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import torch

import sclatent as sl
from sclatent.models import _base

FAST = {"likelihood": "nb", "n_latent": 3, "hidden": (16,), "epochs": 2, "progress": False}


@pytest.fixture
def fitted(small_counts):
    return sl.models.SCVAE(**FAST).fit(small_counts)


def test_numpy_typed_hyperparameters_save_and_load(small_counts, tmp_path):
    model = sl.models.SCVAE(
        likelihood="nb",
        n_latent=np.int64(4),
        hidden=np.array([16]),
        lr=np.float32(1e-3),
        epochs=np.int32(2),
        random_state=np.int64(0),
        early_stopping=np.bool_(True),
        progress=False,
    ).fit(small_counts)
    assert model.params["n_latent"] == 4 and type(model.params["n_latent"]) is int
    assert model.params["hidden"] == [16] and type(model.params["lr"]) is float
    model.save(tmp_path / "model.pt")
    loaded = sl.models.load(tmp_path / "model.pt", device="cpu")
    np.testing.assert_array_equal(loaded.transform(small_counts), model.transform(small_counts))


def test_interrupted_refit_keeps_the_previous_model(fitted, small_counts, monkeypatch, tmp_path):
    before = fitted.transform(small_counts)
    state = {k: v.clone() for k, v in fitted.module_.state_dict().items()}
    fitted_before = dict(fitted.fitted_)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_base, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fitted.fit(small_counts[:500, :800].copy())  # other cells and genes
    assert fitted.fitted_ == fitted_before
    for key, value in fitted.module_.state_dict().items():
        torch.testing.assert_close(value, state[key], rtol=0, atol=0)
    np.testing.assert_array_equal(fitted.transform(small_counts), before)
    fitted.save(tmp_path / "model.pt")
    assert sl.models.load(tmp_path / "model.pt").fitted_["n_input"] == small_counts.n_vars


def test_save_refuses_to_overwrite_and_names_directories(fitted, tmp_path):
    path = tmp_path / "model.pt"
    fitted.save(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        fitted.save(path)
    fitted.save(path, overwrite=True)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        fitted.save(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fitted.save(tmp_path / "missing" / "model.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x01random bytes" * 50, "not a model saved by sclatent"),
        ("foreign", "not a model saved by sclatent"),
        ("damaged", "damaged sclatent model"),
        ("unknown_param", "damaged sclatent model"),
    ],
)
def test_load_names_foreign_and_damaged_files(fitted, tmp_path, content, message):
    path = tmp_path / "model.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
    else:
        fitted.save(path)
        checkpoint = torch.load(path, weights_only=True)
        if content == "damaged":
            checkpoint["state_dict"].popitem()
        else:
            checkpoint["params"]["evil"] = 1
        torch.save(checkpoint, path)
    with pytest.raises(ValueError, match=message):
        sl.models.load(path)
    with pytest.raises(IsADirectoryError):
        sl.models.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        sl.models.load(tmp_path / "missing.pt")


def test_random_state_accepts_what_scanpy_accepts(small_counts):
    def embed(random_state):
        return sl.models.SCVAE(**FAST, random_state=random_state).fit(small_counts).transform(small_counts)

    np.testing.assert_array_equal(embed(np.random.default_rng(7)), embed(np.random.default_rng(7)))
    np.testing.assert_array_equal(embed(np.random.RandomState(7)), embed(np.random.RandomState(7)))
    model = sl.models.SCVAE(**FAST, random_state=None).fit(small_counts)
    seed = model.uns_record()["params"]["random_state"]  # the fresh seed is recorded: reproducible
    assert isinstance(seed, int)
    np.testing.assert_array_equal(embed(seed), model.transform(small_counts))


@pytest.mark.parametrize(("model", "most"), [(sl.models.SCVAE(), 400), (sl.models.GroupEnc(), 500)])
def test_default_epochs_keep_the_number_of_steps_above_20000_cells(model, most):
    epochs = {n: model._training_config(n).epochs for n in (2_000, 20_000, 100_000, 1_000_000)}
    assert epochs == {2_000: most, 20_000: most, 100_000: most // 5, 1_000_000: most // 50}
    assert sl.models.GroupEnc(epochs=7)._training_config(1_000_000).epochs == 7


SAVED = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize(
    ("name", "kind"),
    [("scvae_mixture", "SCVAE"), ("groupenc_local", "GroupEnc"), ("sampling_icrst", "SamplingAE")],
)
def test_models_saved_by_release_0_1_0_load_and_embed_as_before(name, kind):
    """Files written by sclatent 0.1.0 before the core was regrouped (tests/data/make_saved_models.py)."""
    cells = ad.read_h5ad(SAVED / "saved_models_cells.h5ad")
    model = sl.models.load(SAVED / f"saved_{name}.pt", device="cpu")
    assert type(model).__name__ == kind
    expected = np.load(SAVED / "saved_models_embeddings.npz")[name]
    np.testing.assert_allclose(model.transform(cells), expected, rtol=0, atol=1e-6)
