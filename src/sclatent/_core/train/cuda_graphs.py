"""Training steps replayed from CUDA graphs (``sl.settings.cuda_graphs``).

A step of these small networks is hundreds of short kernels (forward, backward, gradient clipping,
Adam), so on a GPU its time is the host's time to launch them, not the device's time to run them. A
CUDA graph records the whole step once and replays it with one launch (PyTorch's whole-network
capture): the minibatch is copied into fixed input tensors, the KL weight is a tensor filled each
step, the gradients live in the graph's memory and Adam keeps its step count on the device
(``capturable=True``). Training drops the last incomplete minibatch, so every step has the same
shapes; a minibatch with other tensors (a GMVAE's anchors come and go) gets a graph of its own.
Random numbers (dropout, reparameterisation) are drawn inside the graph from PyTorch's generator,
so a seeded run repeats itself but draws other numbers than an eager one.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from ..._logging import logger

#: ``sl.settings.cuda_graphs``: False (default) or True (CUDA runs of one process whose loss is not
#: compiled; CPU runs are never captured).
DEFAULTS: dict[str, bool] = {"cuda_graphs": False}

#: Eager steps of each minibatch signature before its capture: the first steps allocate Adam's
#: state and the libraries' workspaces, which a capture must find in place.
WARMUP_STEPS = 3

#: One optimisation step: ``step(batch, kl_weight)`` returns the detached loss.
Step = Callable[[dict[str, torch.Tensor], float | torch.Tensor], torch.Tensor]


def should_capture(device: torch.device, world_size: int, compiled: bool) -> bool:
    """Whether training steps on ``device`` are replayed from CUDA graphs under the current setting."""
    return DEFAULTS["cuda_graphs"] and device.type == "cuda" and world_size == 1 and not compiled


class GraphedSteps:
    """Optimisation steps, each minibatch signature captured once as a CUDA graph and then replayed.

    Parameters
    ----------
    step
        One optimisation step that never waits for the device (e.g.
        :func:`~sclatent._core.train.loop.optimisation_step` with its optimiser, which must be
        ``capturable``); the KL weight it gets may be a tensor.
    optimizer
        The optimiser ``step`` steps: its gradients are reset before a capture.
    capture
        Record CUDA graphs; False runs the same steps on the same fixed input tensors by direct
        calls (the path the CPU tests check bit for bit against eager steps).

    A capture that fails (an operation that waits for the device, for instance) logs a warning and
    the remaining steps run eagerly.
    """

    def __init__(self, step: Step, optimizer: torch.optim.Optimizer, *, capture: bool = True) -> None:
        self.step, self.optimizer, self.capture = step, optimizer, capture
        self.failed = False
        self.eager_steps: dict[tuple, int] = {}
        self.inputs: dict[tuple, tuple[dict[str, torch.Tensor], torch.Tensor]] = {}
        self.replays: dict[tuple, Callable[[], torch.Tensor]] = {}

    def __call__(self, batch: dict[str, torch.Tensor], kl_weight: float) -> torch.Tensor:
        """One optimisation step on ``batch``; the detached loss."""
        if not self.capture:
            return self._step(batch, kl_weight)
        with torch.cuda.device(batch["x"].device):  # streams and captures belong to the current device
            return self._step(batch, kl_weight)

    def _step(self, batch: dict[str, torch.Tensor], kl_weight: float) -> torch.Tensor:
        signature = tuple((key, tuple(value.shape), value.dtype) for key, value in sorted(batch.items()))
        if signature not in self.replays:
            done = self.eager_steps.get(signature, 0)
            if self.failed or done < WARMUP_STEPS:
                self.eager_steps[signature] = done + 1
                return self._eager(batch, kl_weight)
            try:
                self._record(signature, batch)
            except Exception as err:  # any capture failure: go on eagerly
                self.failed = True
                cause = err.__context__ or err  # the step's own error, not the invalidated capture's
                logger.warning(
                    "CUDA graph capture failed (%s: %s); training goes on without graphs. Set "
                    "sl.settings.cuda_graphs = False to skip the attempt.",
                    type(cause).__name__,
                    str(cause).splitlines()[0][:200] if str(cause) else "",
                )
                return self._eager(batch, kl_weight)
        inputs, weight = self.inputs[signature]
        for key, value in batch.items():
            inputs[key].copy_(value)
        weight.fill_(kl_weight)
        return self.replays[signature]().clone()

    def _eager(self, batch: dict[str, torch.Tensor], kl_weight: float) -> torch.Tensor:
        if not self.capture or self.failed:
            return self.step(batch, kl_weight)
        # eager steps before a capture run on a side stream, as PyTorch's whole-network capture asks
        current = torch.cuda.current_stream()
        side = torch.cuda.Stream()
        side.wait_stream(current)
        with torch.cuda.stream(side), warnings.catch_warnings():
            # Adam warns that a capturable instance steps outside a capture, as warm-up steps do
            warnings.filterwarnings("ignore", message=".*capturable=True.*", category=UserWarning)
            loss = self.step(batch, kl_weight)
        current.wait_stream(side)
        return loss

    def _record(self, signature: tuple, batch: dict[str, torch.Tensor]) -> None:
        """Fixed inputs shaped as ``batch`` and the step on them: recorded, or called directly."""
        inputs = {key: value.clone() for key, value in batch.items()}
        weight = torch.ones((), device=batch["x"].device)
        self.inputs[signature] = inputs, weight
        if not self.capture:
            self.replays[signature] = lambda: self.step(inputs, weight)
            return
        self.optimizer.zero_grad(set_to_none=True)  # the gradients are allocated inside the graph
        graph = torch.cuda.CUDAGraph()
        current = torch.cuda.current_stream()
        try:
            with torch.cuda.graph(graph, stream=torch.cuda.Stream()):  # of the current device
                loss = self.step(inputs, weight)
        finally:  # a failed capture leaves torch.cuda.graph without restoring the stream
            torch.cuda.set_stream(current)

        def replay() -> torch.Tensor:
            graph.replay()
            return loss

        self.replays[signature] = replay
