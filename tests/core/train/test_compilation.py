"""torch.compile of the training loss: ``sl.settings.compile`` (_core/compilation.py)."""

import logging

import numpy as np
import pytest
import torch

import sclatent as sl
from sclatent._core.train import compilation

ZINB = {"likelihood": "zinb", "n_latent": 4, "hidden": (32,), "epochs": 3, "batch_size": 128}


@pytest.fixture
def compile_calls(monkeypatch):
    """The functions handed to torch.compile (which still compiles them)."""
    calls, real = [], torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: calls.append(fn) or real(fn, **kwargs))
    return calls


def fit(adata, setting, monkeypatch):
    monkeypatch.setitem(compilation.DEFAULTS, "compile", setting)
    return sl.models.SCVAE(kl_warmup=2, device="cpu", progress=False, **ZINB).fit(adata)


def test_compiled_training_agrees_with_eager_training(small_counts, monkeypatch, compile_calls):
    eager = fit(small_counts, False, monkeypatch)
    assert not compile_calls
    compiled = fit(small_counts, True, monkeypatch)
    assert len(compile_calls) == 1  # one graph: the KL warm-up's weight is a tensor, not a constant
    # same random numbers, but the fused element-wise math rounds differently (and differently on
    # each CPU's vector instruction set): losses agree to 1e-4, the held-out ELBO after the last
    # epoch to 5e-4 (1.3e-4 measured on one machine), and Adam, which scales each gradient by its own
    # size, turns the rounding of gradients near zero into steps of up to lr: after 21 steps the
    # embeddings (spread ~0.5) agree to about 0.01
    np.testing.assert_allclose(compiled.history_["train_loss"], eager.history_["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(compiled.history_["val_elbo"], eager.history_["val_elbo"], rtol=5e-4)
    embeddings = compiled.transform(small_counts), eager.transform(small_counts)
    np.testing.assert_allclose(*embeddings, atol=0.02)
    assert np.corrcoef(embeddings[0].ravel(), embeddings[1].ravel())[0, 1] > 0.999


def test_auto_compiles_only_long_gpu_runs(small_counts, monkeypatch, compile_calls):
    fit(small_counts, "auto", monkeypatch)  # 3 epochs of 7 steps on CPU
    assert not compile_calls
    monkeypatch.setattr(compilation, "AUTO_MIN_STEPS", 21)
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert compilation.should_compile(21, cuda) and not compilation.should_compile(20, cuda)
    assert not compilation.should_compile(10_000, cpu)
    monkeypatch.setitem(compilation.DEFAULTS, "compile", True)
    assert compilation.should_compile(1, cpu)


def test_a_failing_compiler_falls_back_to_eager_training(small_counts, monkeypatch, caplog):
    def broken(fn, **kwargs):
        def fail(*args):
            raise RuntimeError("no C++ compiler found")

        return fail

    eager = fit(small_counts, False, monkeypatch)
    monkeypatch.setattr(torch, "compile", broken)
    with caplog.at_level(logging.WARNING, logger="sclatent"):
        fallback = fit(small_counts, True, monkeypatch)
    assert "torch.compile failed (RuntimeError: no C++ compiler found)" in caplog.text
    np.testing.assert_array_equal(fallback.transform(small_counts), eager.transform(small_counts))


def test_compile_setting_is_checked(monkeypatch):
    monkeypatch.setitem(compilation.DEFAULTS, "compile", False)
    sl.settings.compile = "auto"
    assert sl.settings.compile == "auto" and "compile='auto'" in repr(sl.settings)
    sl.settings.compile = np.bool_(True)
    assert sl.settings.compile is True
    with pytest.raises(TypeError, match=r"sl.settings.compile='always': expected True, False or 'auto'"):
        sl.settings.compile = "always"
