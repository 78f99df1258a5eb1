"""Package-wide settings: ``sl.settings``."""

from __future__ import annotations

from ._core.data import disk
from ._core.runtime import distributed, precision
from ._core.train import compilation, cuda_graphs
from ._validation import Choice, Integer, Real, flag, flag_or_auto


class Settings:
    """Settings of sclatent, read when a model starts reading its data.

    Attributes
    ----------
    disk_block_rows
        Rows per contiguous read from the on-disk matrix of a backed AnnData (default 8,192).
    disk_buffer_blocks
        Blocks of a backed matrix held in memory at a time; training shuffles cells within this
        buffer (default 8, so about 65,000 cells).
    distributed_timeout
        Seconds a process of a torch.distributed run waits for the others, at start-up and at each
        step, before stopping with an error (default 120; the environment variable
        ``SCLATENT_DISTRIBUTED_TIMEOUT`` overrides it, e.g. for the command line).
    compile
        Compile each training step's loss with ``torch.compile``, which fuses its element-wise math:
        False (default; eager), True, or ``"auto"`` (GPU runs of at least 2,000 steps, which repay
        the compile time; on CPU the eager count likelihoods are as fast). Results agree with eager
        training to rounding, not bit for bit. Where compilation fails (e.g. no C++ compiler for the
        CPU), a warning is logged and training goes on eagerly.
    cuda_graphs
        Replay each CUDA training step from a CUDA graph (one launch instead of hundreds of
        kernels, which is what a small network's step costs on a GPU): False (default) or True. For
        runs of one process on a GPU without ``compile``; CPU runs ignore it. A seeded run repeats
        itself, but draws other random numbers than an eager run. Where a capture fails, a warning
        is logged and training goes on eagerly.
    precision
        Precision of the network layers while training: ``"float32"`` (default) or ``"bfloat16"``
        (``torch.autocast``: matrix products in bfloat16, every likelihood, KL and group-loss term
        in float32; for GPUs with bfloat16, Ampere or later, where it speeds up wide layers).
        Validation, embeddings and ELBOs are computed in float32 either way.
    """

    @property
    def disk_block_rows(self) -> int:
        return disk.DEFAULTS["block_rows"]

    @disk_block_rows.setter
    def disk_block_rows(self, value: int) -> None:
        disk.DEFAULTS["block_rows"] = _positive("disk_block_rows", value)

    @property
    def disk_buffer_blocks(self) -> int:
        return disk.DEFAULTS["buffer_blocks"]

    @disk_buffer_blocks.setter
    def disk_buffer_blocks(self, value: int) -> None:
        disk.DEFAULTS["buffer_blocks"] = _positive("disk_buffer_blocks", value)

    @property
    def distributed_timeout(self) -> float:
        return distributed.timeout_seconds()

    @distributed_timeout.setter
    def distributed_timeout(self, value: float) -> None:
        check = Real(low=0, low_open=True)
        distributed.DEFAULTS["timeout_s"] = check("sl.settings.distributed_timeout", value)

    @property
    def compile(self) -> bool | str:
        return compilation.DEFAULTS["compile"]

    @compile.setter
    def compile(self, value: bool | str) -> None:
        compilation.DEFAULTS["compile"] = flag_or_auto("sl.settings.compile", value)

    @property
    def cuda_graphs(self) -> bool:
        return cuda_graphs.DEFAULTS["cuda_graphs"]

    @cuda_graphs.setter
    def cuda_graphs(self, value: bool) -> None:
        cuda_graphs.DEFAULTS["cuda_graphs"] = flag("sl.settings.cuda_graphs", value)

    @property
    def precision(self) -> str:
        return precision.DEFAULTS["precision"]

    @precision.setter
    def precision(self, value: str) -> None:
        precision.DEFAULTS["precision"] = Choice(precision.PRECISIONS)("sl.settings.precision", value)

    def __repr__(self) -> str:
        return (
            f"Settings(disk_block_rows={self.disk_block_rows}, disk_buffer_blocks={self.disk_buffer_blocks}, "
            f"distributed_timeout={self.distributed_timeout:g}, compile={self.compile!r}, "
            f"cuda_graphs={self.cuda_graphs}, precision={self.precision!r})"
        )


def _positive(name: str, value: int) -> int:
    return Integer(minimum=1)(f"sl.settings.{name}", value)


settings = Settings()
