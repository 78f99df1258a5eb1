"""bfloat16 autocast of the network while training: ``sl.settings.precision`` (_core/precision.py)."""

import numpy as np
import pytest
import torch

import sclatent as sl
from sclatent._core.runtime import precision

ZINB = {"likelihood": "zinb", "n_latent": 4, "hidden": (32,), "epochs": 4, "batch_size": 128}


@pytest.fixture
def linear_dtypes(monkeypatch):
    """The dtypes of every nn.Linear output while the module is training."""
    seen, real = set(), torch.nn.Linear.forward

    def forward(self, x):
        out = real(self, x)
        if self.training:
            seen.add(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", forward)
    return seen


def fit(adata, setting, monkeypatch, **kwargs):
    monkeypatch.setitem(precision.DEFAULTS, "precision", setting)
    return sl.models.SCVAE(device="cpu", progress=False, random_state=0, **{**ZINB, **kwargs}).fit(adata)


def test_bfloat16_layers_train_a_float32_likelihood_to_the_same_elbo(
    small_counts, monkeypatch, linear_dtypes
):
    full = fit(small_counts, "float32", monkeypatch)
    assert linear_dtypes == {torch.float32}
    linear_dtypes.clear()
    mixed = fit(small_counts, "bfloat16", monkeypatch)
    assert linear_dtypes == {torch.bfloat16}  # every layer's product in bfloat16 ...
    embedding = mixed.transform(small_counts)
    assert embedding.dtype == np.float32 and np.isfinite(embedding).all()
    # ... the likelihood in float32: after 4 epochs the held-out ELBO (evaluated in float32) of the
    # bfloat16 run is within 0.3% of the float32 run's (-0.05% measured; about -400 nats per cell)
    np.testing.assert_allclose(mixed.history_["val_elbo"][-1], full.history_["val_elbo"][-1], rtol=3e-3)
    assert mixed.history_["val_elbo"][-1] > mixed.history_["val_elbo"][0]


def test_heads_return_float32_under_autocast():
    from sclatent._core.nn.layers import GaussianHead, LikelihoodDecoder

    head, decoder = GaussianHead(8, 2), LikelihoodDecoder(2, (8,), 5, "zinb")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mean, log_var = head(torch.randn(3, 8))
        params = decoder(mean, torch.zeros(3))
    assert mean.dtype == log_var.dtype == torch.float32
    assert {p.dtype for p in params.values()} == {torch.float32}


def test_every_model_trains_in_bfloat16(small_counts, monkeypatch):
    monkeypatch.setitem(precision.DEFAULTS, "precision", "bfloat16")
    pcs = small_counts.copy()
    pcs.obsm["X_pca"] = np.log1p(small_counts.X.toarray())[:, :20]
    out = sl.tl.groupenc(pcs, epochs=2, batch_size=128, random_state=0, copy=True, progress=False)
    assert np.isfinite(out.obsm["X_groupenc"]).all()
    out = sl.tl.ae_sampling(small_counts, mode="trst", loss="nb", epochs=2, copy=True, progress=False)
    assert np.isfinite(out.obsm["X_ae_sampling"]).all()
    out = sl.tl.scvae(small_counts, prior="mixture", n_components=4, epochs=3, copy=True, progress=False)
    assert np.isfinite(out.obsm["X_scvae"]).all()


def test_precision_setting_is_checked(monkeypatch):
    monkeypatch.setitem(precision.DEFAULTS, "precision", "float32")
    sl.settings.precision = "bfloat16"
    assert sl.settings.precision == "bfloat16" and "precision='bfloat16'" in repr(sl.settings)
    with pytest.raises(
        ValueError, match=r"sl.settings.precision='fp16': expected one of 'float32', 'bfloat16'"
    ):
        sl.settings.precision = "fp16"
