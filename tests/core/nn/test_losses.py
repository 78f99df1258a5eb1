from itertools import combinations

import numpy as np
import pytest
import torch

from sclatent._core.nn.losses import group_loss, neighbour_loss


def group_loss_by_definition(x: np.ndarray, z: np.ndarray, gamma: int) -> float:
    losses = []
    for start in range(0, len(x) - gamma + 1, gamma):
        pairs = list(combinations(range(start, start + gamma), 2))
        dx = np.array([np.linalg.norm(x[i] - x[j]) for i, j in pairs])
        dz = np.array([np.linalg.norm(z[i] - z[j]) for i, j in pairs])
        losses.append(((dx / dx.sum() - dz / dz.sum()) ** 2).sum())
    return float(np.mean(losses))


@pytest.mark.parametrize(("n", "gamma"), [(64, 4), (67, 5), (30, 3)])
def test_group_loss_matches_definition(n, gamma):
    rng = np.random.default_rng(n)
    x, z = rng.normal(size=(n, 7)), rng.normal(size=(n, 2))
    loss = group_loss(torch.as_tensor(x), torch.as_tensor(z), gamma, eps=0.0)
    assert loss.item() == pytest.approx(group_loss_by_definition(x, z, gamma), rel=1e-12)


def test_group_loss_is_zero_for_similar_configurations_and_finite_for_duplicates():
    x = torch.randn(40, 3, dtype=torch.float64)
    assert group_loss(x, 5 * x + 2, 4, eps=0.0).item() == pytest.approx(0.0, abs=1e-24)
    z = torch.zeros(40, 2, requires_grad=True)
    group_loss(x.float(), z, 4).backward()
    assert torch.isfinite(z.grad).all()
    assert group_loss(x, x[:, :2], 50).item() == 0.0  # fewer cells than gamma: no group


def neighbour_loss_by_definition(z: np.ndarray, z_neighbour: np.ndarray) -> float:
    losses = []
    for i in range(len(z)):
        q = [1.0 / (1.0 + np.sum((z[i] - z_neighbour[j]) ** 2)) for j in range(len(z))]
        losses.append(-np.log(q[i] / sum(q)))
    return float(np.mean(losses))


@pytest.mark.parametrize(("n", "dim"), [(7, 2), (20, 10)])
def test_neighbour_loss_matches_definition(n, dim):
    rng = np.random.default_rng(n)
    z, z_neighbour = rng.normal(size=(n, dim)), rng.normal(size=(n, dim))
    loss = neighbour_loss(torch.as_tensor(z), torch.as_tensor(z_neighbour)).item()
    assert loss == pytest.approx(neighbour_loss_by_definition(z, z_neighbour), rel=1e-12)


def test_neighbour_loss_stays_float32_under_bfloat16_autocast():
    # close pairs, where a bfloat16 product would cancel in |a|^2 + |b|^2 - 2 a.b
    rng = np.random.default_rng(0)
    z = torch.as_tensor(rng.normal(size=(64, 10)) * 5, dtype=torch.float32)
    z_neighbour = z + 0.01 * torch.randn(z.shape, generator=torch.Generator().manual_seed(0))
    exact = neighbour_loss(z, z_neighbour)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = neighbour_loss(z, z_neighbour)
    assert mixed.dtype == torch.float32 and mixed.item() == pytest.approx(exact.item(), rel=1e-6)
