import numpy as np
import torch

from sclatent._core.data import MinibatchSampler

CPU = torch.device("cpu")


def test_sampler_is_seeded_and_covers_every_cell():
    indices = np.arange(10, 1010)
    first = [
        b.numpy() for b in MinibatchSampler(indices, 64, shuffle=True, generator=np.random.default_rng(3))
    ]
    again = [
        b.numpy() for b in MinibatchSampler(indices, 64, shuffle=True, generator=np.random.default_rng(3))
    ]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert np.array_equal(np.sort(np.concatenate(first)), indices)
    assert not np.array_equal(np.concatenate(first), indices)


def test_sampler_drop_last_and_order():
    sampler = MinibatchSampler(np.arange(130), 64, drop_last=True)
    assert len(sampler) == 2 and all(len(b) == 64 for b in sampler)
    ordered = MinibatchSampler(np.arange(130), 64)
    assert len(ordered) == 3
    assert np.array_equal(np.concatenate([b.numpy() for b in ordered]), np.arange(130))
