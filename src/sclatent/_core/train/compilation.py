"""Optional ``torch.compile`` of the training step's loss (``sl.settings.compile``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..._logging import logger

#: ``sl.settings.compile``: False (eager), True (always compile) or "auto" (compile GPU runs of at
#: least :data:`AUTO_MIN_STEPS` optimisation steps, which repay the compile time). On CPU the eager
#: count likelihoods evaluate their log-gamma terms at non-zero counts only, which compiled code
#: cannot: measured on 2 threads (bench_scvae.py --compile, ZINB, warm caches) compiled 1.05x and
#: 0.94x eager in two runs, after about 25 s of compilation, so "auto" leaves CPU runs eager.
DEFAULTS: dict[str, bool | str] = {"compile": False}

#: With ``compile="auto"``, runs of fewer steps stay eager: compiling a loss takes tens of seconds,
#: which short runs cannot win back (a threshold not yet measured on a GPU).
AUTO_MIN_STEPS = 2_000

Loss = Callable[[dict[str, torch.Tensor], Any], dict[str, torch.Tensor]]


def should_compile(n_steps: int, device: torch.device) -> bool:
    """Whether a run of ``n_steps`` steps on ``device`` compiles its loss under the current setting."""
    setting = DEFAULTS["compile"]
    return setting is True or (setting == "auto" and device.type == "cuda" and n_steps >= AUTO_MIN_STEPS)


def compile_loss(loss: Loss) -> Loss:
    """``loss`` compiled by ``torch.compile``, falling back to ``loss`` itself if compilation fails.

    Minibatches keep their shape (training drops the last, incomplete one) and the KL weight is
    passed as a tensor, so the warm-up does not recompile. Random numbers come from PyTorch's
    generator as in eager mode, so results differ from eager training by rounding only. A missing or
    failing compiler (e.g. no C++ compiler for the CPU backend) logs a warning and training goes on
    eagerly.
    """
    # fallback_random: dropout masks and reparameterisation noise from the eager generator, so that a
    # compiled run draws the same random numbers as an eager one with the same seed
    compiled = torch.compile(loss, dynamic=False, options={"fallback_random": True})
    state: dict[str, Any] = {"fn": compiled, "weight": None}

    def run(batch: dict[str, torch.Tensor], kl_weight: float) -> dict[str, torch.Tensor]:
        # one device tensor, filled in place: no host copy per step while the warm-up changes it
        if state["weight"] is None:
            state["weight"] = torch.empty((), device=batch["x"].device)
        state["weight"].fill_(kl_weight)
        try:
            return state["fn"](batch, state["weight"])
        except Exception as err:  # any backend failure: go on eagerly
            if state["fn"] is loss:
                raise
            logger.warning(
                "torch.compile failed (%s: %s); training goes on without compilation. Set "
                "sl.settings.compile = False to skip the attempt.",
                type(err).__name__,
                str(err).splitlines()[0][:200] if str(err) else "",
            )
            state["fn"] = loss
            return loss(batch, state["weight"])

    return run
