"""Package-wide settings: ``sl.settings``."""

from __future__ import annotations

from ._core import disk


class Settings:
    """Settings of sclatent, read when a model starts reading its data.

    Attributes
    ----------
    disk_block_rows
        Rows per contiguous read from the on-disk matrix of a backed AnnData (default 8,192).
    disk_buffer_blocks
        Blocks of a backed matrix held in memory at a time; training shuffles cells within this
        buffer (default 8, so about 65,000 cells).
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

    def __repr__(self) -> str:
        return (
            f"Settings(disk_block_rows={self.disk_block_rows}, disk_buffer_blocks={self.disk_buffer_blocks})"
        )


def _positive(name: str, value: int) -> int:
    if int(value) != value or value < 1:
        msg = f"sl.settings.{name}={value!r}: pass a positive integer."
        raise ValueError(msg)
    return int(value)


settings = Settings()
