"""Architecture surgery (scArches): room for new covariate columns, and training only those columns."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from .layers import MLP


def covariate_linears(module: nn.Module) -> list[tuple[nn.Linear, int, str]]:
    """The linear layers of ``module``'s MLPs that take covariates.

    Each comes with the position of its first covariate input and its parameter's name.
    """
    found = []
    for name, mlp in module.named_modules():
        if isinstance(mlp, MLP) and mlp.n_cat:
            for i, layer in enumerate(mlp.layers):
                linear = layer[0]
                found.append(
                    (linear, linear.in_features - mlp.n_cat, f"{name}.layers.{i}.0.weight".lstrip("."))
                )
    return found


def load_with_more_covariates(
    module: nn.Module, state: dict[str, torch.Tensor], columns: Sequence[int]
) -> None:
    """Load ``state``, trained with fewer covariates, into ``module`` (architecture surgery).

    The old covariate input ``j`` of every layer becomes column ``columns[j]`` of ``module``'s wider
    design; the weights of the new columns start at zero, so that cells with only old covariates
    pass through as before.
    """
    state = dict(state)
    columns = torch.as_tensor(list(columns), dtype=torch.int64)
    for linear, first, key in covariate_linears(module):
        old = state[key]
        wider = torch.zeros(linear.weight.shape, dtype=old.dtype)
        wider[:, :first] = old[:, :first]
        wider[:, first + columns] = old[:, first:]
        state[key] = wider
    module.load_state_dict(state)


def train_only_covariate_columns(module: nn.Module, columns: Sequence[int]) -> list[RemovableHandle]:
    """Freeze ``module`` but the weights of covariate inputs ``columns`` (scArches' fine-tuning).

    Every other parameter stops taking gradients, the gradients of the rest of each covariate layer
    are zeroed and batch normalisation keeps its running statistics (evaluation mode) even while the
    module trains. Train with Adam without weight decay, so that zero gradients leave weights
    unchanged. Returns the hooks' handles; :func:`unfreeze` undoes it all.
    """
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    handles = []
    for linear, first, _ in covariate_linears(module):
        mask = torch.zeros_like(linear.weight)
        mask[:, [first + c for c in columns]] = 1.0
        linear.weight.requires_grad_(True)
        handles.append(linear.weight.register_hook(lambda grad, mask=mask: grad * mask))
    for norm in module.modules():
        if isinstance(norm, nn.BatchNorm1d):
            handles.append(norm.register_forward_pre_hook(_evaluation_mode))
    return handles


def unfreeze(module: nn.Module, handles: Sequence[RemovableHandle]) -> None:
    """Undo :func:`train_only_covariate_columns`."""
    for handle in handles:
        handle.remove()
    for parameter in module.parameters():
        parameter.requires_grad_(True)


def _evaluation_mode(module: nn.Module, inputs: object) -> None:
    module.training = False
