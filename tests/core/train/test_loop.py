import numpy as np
import pytest
import torch
from torch import nn

from sclatent._core.data import CellData, MinibatchSampler, RowSource
from sclatent._core.train.loop import TrainingConfig, TrainingDivergedError, optimisation_step, predict, train


class Regression(nn.Module):
    """Linear regression of the first feature on the others; records the KL weights it is given."""

    def __init__(self, n_features: int, constant: bool = False, blow_up_at: int | None = None):
        super().__init__()
        self.linear = nn.Linear(n_features - 1, 1)
        self.constant = constant
        self.blow_up_at = blow_up_at
        self.kl_weights: list[float] = []

    def loss(self, batch, kl_weight=1.0):
        if self.training:
            self.kl_weights.append(kl_weight)
        x = batch["x"]
        error = ((self.linear(x[:, 1:])[:, 0] - x[:, 0]) ** 2).mean()
        if self.constant:
            error = error * 0 + 1.0
        if self.blow_up_at is not None and len(self.kl_weights) >= self.blow_up_at:
            error = error * float("nan")
        return {"loss": error, "mse": error.detach()}


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 4)).astype(np.float32)
    x[:, 0] = x[:, 1:] @ np.array([1.0, -2.0, 0.5], dtype=np.float32)
    return CellData(RowSource(x, torch.device("cpu")))


def fit(module, data, **config):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data))
    settings = {"epochs": 30, "batch_size": 64, "lr": 0.05, "progress": False, **config}
    return train(module, data, order[64:], order[:64], TrainingConfig(**settings), rng)[0]


def test_loss_falls_and_history_has_every_term(data):
    history = fit(Regression(4), data)
    assert set(history) == {"train_loss", "val_loss", "val_mse"}
    assert history["val_loss"][-1] < 0.01 * history["val_loss"][0]
    assert history["val_loss"] == history["val_mse"]


def test_early_stopping_ends_a_run_that_does_not_improve(data):
    history = fit(Regression(4, constant=True), data, patience=3)
    assert len(history["train_loss"]) == 4  # the first epoch sets the best, then 3 without gain


def test_kept_epoch_is_the_best_held_out_one(data):
    rng = np.random.default_rng(0)
    order = rng.permutation(len(data))
    config = TrainingConfig(epochs=12, batch_size=64, lr=0.5, patience=50, progress=False)
    torch.manual_seed(0)
    history, kept = train(Regression(4), data, order[64:], order[:64], config, rng)
    assert kept == int(np.argmin(history["val_loss"]))
    config.early_stopping = False
    history, kept = train(Regression(4), data, order[64:], order[:64], config, rng)
    assert kept == len(history["train_loss"]) - 1


def test_kl_warmup_rises_linearly_to_one(data):
    module = Regression(4)
    fit(module, data, epochs=4, kl_warmup=2, early_stopping=False)
    weights = np.array(module.kl_weights)
    steps_per_epoch = 448 // 64
    np.testing.assert_allclose(weights[: 2 * steps_per_epoch], np.arange(1, 2 * steps_per_epoch + 1) / 14)
    assert (weights[2 * steps_per_epoch :] == 1).all()


def test_divergence_raises_with_an_explanation(data):
    with pytest.raises(TrainingDivergedError, match=r"diverged in epoch 2.*Lower the learning rate"):
        fit(Regression(4, blow_up_at=10), data)


def test_best_weights_are_restored_and_predict_keeps_order(data):
    module = Regression(4)
    fit(module, data, epochs=5)
    out = predict(lambda b: b["x"][:, 0], data, batch_size=100)
    np.testing.assert_array_equal(out, data.x._dense[:, 0].numpy())
    assert not module.training


@pytest.mark.parametrize("grad_clip", [1e-3, 1e6])  # every step clipped / none
def test_optimisation_step_clips_as_clip_grad_norm_does(data, grad_clip):
    """The CPU step scales gradients only where clipping changes them: the same numbers as torch's."""
    ours, reference = Regression(4), Regression(4)
    reference.load_state_dict(ours.state_dict())
    adams = [torch.optim.Adam(m.parameters(), lr=0.01, fused=True) for m in (ours, reference)]
    for rows in MinibatchSampler(np.arange(512), 64):
        batch = data.batch(rows)
        optimisation_step(ours.loss, batch, 1.0, adams[0], grad_clip)
        adams[1].zero_grad()
        reference.loss(batch)["loss"].backward()
        nn.utils.clip_grad_norm_(list(reference.parameters()), grad_clip)
        adams[1].step()
        for a, b in zip(ours.parameters(), reference.parameters(), strict=True):
            assert torch.equal(a, b) and torch.equal(a.grad, b.grad)


def test_predict_shows_a_bar_for_large_passes_only(data, monkeypatch, capsys):
    from sclatent._core.train import loop

    def first_column(batch):
        return batch["x"][:, :1]

    predict(first_column, data, progress="scvae: embedding")
    assert "scvae: embedding" not in capsys.readouterr().err  # below PROGRESS_CELLS
    monkeypatch.setattr(loop, "PROGRESS_CELLS", 10)
    out = predict(first_column, data, batch_size=16, progress="scvae: embedding")
    assert "scvae: embedding" in capsys.readouterr().err
    np.testing.assert_array_equal(out, predict(first_column, data, batch_size=16))  # the same values
