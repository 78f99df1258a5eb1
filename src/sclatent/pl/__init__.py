"""Plots of what the tools computed."""

from ._rnx import rnx

__all__ = ["rnx"]
