"""Training steps replayed from CUDA graphs: ``sl.settings.cuda_graphs`` (_core/train/cuda_graphs.py)."""

import functools
import logging

import numpy as np
import pytest
import torch

import sclatent as sl
from sclatent._core.train import cuda_graphs as graphs
from sclatent._core.train import loop as training

GMVAE = {"likelihood": "zinb", "prior": "mixture", "n_components": 4, "n_latent": 4, "hidden": (32,)}
SETUP = {"epochs": 6, "batch_size": 128, "kl_warmup": 2, "early_stopping": False, "progress": False}
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture
def recorded(monkeypatch):
    """The minibatch signatures that GraphedSteps records (or sets up for direct calls)."""
    signatures, real = [], graphs.GraphedSteps._record

    def spy(self, signature, batch):
        signatures.append({key: shape for key, shape, _ in signature})
        return real(self, signature, batch)

    monkeypatch.setattr(graphs.GraphedSteps, "_record", spy)
    return signatures


def test_steps_on_fixed_inputs_equal_eager_steps(small_counts, monkeypatch, recorded):
    """The replay path (fixed input tensors, KL weight as a tensor, a graph per signature) on CPU."""
    eager = sl.models.SCVAE(device="cpu", **GMVAE, **SETUP).fit(small_counts)
    monkeypatch.setattr(training, "should_capture", lambda *args: True)  # direct calls on a CPU
    replayed = sl.models.SCVAE(device="cpu", **GMVAE, **SETUP).fit(small_counts)
    # the warm start's minibatches, then the anchored ones (their anchors a tensor more)
    assert [sorted(s) for s in recorded] == [
        ["log_library", "x"],
        ["anchor", "log_library", "x"],
    ]
    assert recorded[0]["x"] == (128, small_counts.n_vars)
    for key in ("train_loss", "val_loss", "val_elbo"):
        np.testing.assert_array_equal(replayed.history_[key], eager.history_[key])
    np.testing.assert_array_equal(replayed.transform(small_counts), eager.transform(small_counts))
    probabilities = replayed.cluster_probabilities(small_counts), eager.cluster_probabilities(small_counts)
    np.testing.assert_array_equal(*probabilities)


def test_graphs_only_for_single_process_eager_cuda_runs(monkeypatch):
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setitem(graphs.DEFAULTS, "cuda_graphs", False)
    assert not graphs.should_capture(gpu, 1, False)
    sl.settings.cuda_graphs = np.bool_(True)
    assert sl.settings.cuda_graphs is True and "cuda_graphs=True" in repr(sl.settings)
    assert graphs.should_capture(gpu, 1, False)
    assert not graphs.should_capture(cpu, 1, False)
    assert not graphs.should_capture(gpu, 2, False)  # data-parallel: DDP's all-reduce stays eager
    assert not graphs.should_capture(gpu, 1, True)  # a compiled loss has torch.compile's own modes
    with pytest.raises(TypeError, match=r"sl.settings.cuda_graphs='on': expected True or False"):
        sl.settings.cuda_graphs = "on"


@cuda
@pytest.mark.parametrize("extra", [{}, {"prior": "mixture", "n_components": 8}])
def test_cuda_graphs_repeat_themselves_and_match_eager_quality(
    bladder_counts, monkeypatch, recorded, caplog, extra
):
    adata = bladder_counts[:1024].copy()
    kwargs = {"likelihood": "zinb", "epochs": 40, "early_stopping": False, "progress": False, **extra}
    eager = sl.models.SCVAE(device="cuda", **kwargs).fit(adata)
    monkeypatch.setitem(graphs.DEFAULTS, "cuda_graphs", True)
    with caplog.at_level(logging.WARNING, logger="sclatent"):
        graphed = sl.models.SCVAE(device="cuda", **kwargs).fit(adata)
    assert recorded and "CUDA graph capture failed" not in caplog.text  # captured, not fallen back
    again = sl.models.SCVAE(device="cuda", **kwargs).fit(adata)
    np.testing.assert_array_equal(graphed.transform(adata), again.transform(adata))
    assert np.isfinite(graphed.transform(adata)).all()
    # other random numbers than the eager run: the same quality, not the same numbers
    assert abs(graphed.elbo(adata) - eager.elbo(adata)) < 0.03 * abs(eager.elbo(adata))


@cuda
def test_a_failing_cuda_capture_falls_back_to_eager_steps(bladder_counts, monkeypatch, caplog):
    # a check that reads the gradient norm on the host: allowed eagerly, not while capturing
    clip = functools.partial(torch.nn.utils.clip_grad_norm_, error_if_nonfinite=True)
    monkeypatch.setattr(training.nn.utils, "clip_grad_norm_", clip)
    monkeypatch.setitem(graphs.DEFAULTS, "cuda_graphs", True)
    adata = bladder_counts[:1024].copy()
    with caplog.at_level(logging.WARNING, logger="sclatent"):
        model = sl.models.SCVAE(likelihood="nb", epochs=3, device="cuda", progress=False).fit(adata)
    assert "CUDA graph capture failed" in caplog.text
    assert np.isfinite(model.transform(adata)).all() and len(model.history_["train_loss"]) == 3
    assert torch.cuda.current_stream() == torch.cuda.default_stream()
