"""Plots of what the tools computed."""

from ._history import history
from ._rnx import rnx

__all__ = ["history", "rnx"]
