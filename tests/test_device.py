import pytest
import torch

from sclatent._core.device import resolve_device, seed_everything, seeded_rng


def test_auto_and_cpu():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda():
    with pytest.raises(ValueError, match="no CUDA device"):
        resolve_device("cuda")


def test_cuda_index_out_of_range():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    with pytest.raises(ValueError, match="does not exist"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")


@pytest.mark.parametrize("name", ["tpu", "gpu0", "mps"])
def test_unknown_device(name):
    with pytest.raises(ValueError, match="use 'auto', 'cpu', 'cuda' or 'cuda:N'"):
        resolve_device(name)


def test_seeding_is_repeatable_and_forked_rng_leaves_outer_state():
    seed_everything(5)
    a = torch.rand(3)
    seed_everything(5)
    with seeded_rng(1, torch.device("cpu")):
        inner = torch.rand(2)
    assert torch.equal(torch.rand(3), a)
    with seeded_rng(1, torch.device("cpu")):
        assert torch.equal(torch.rand(2), inner)
