"""Checks of string options shared by the core and the model layer."""

from __future__ import annotations

from collections.abc import Iterable


def check_choice(argument: str, value: object, choices: Iterable[str]) -> None:
    """Raise a ValueError naming the valid choices when ``value`` is not one of them."""
    choices = tuple(choices)
    if value not in choices:
        msg = f"{argument}={value!r} is unknown; choose one of {', '.join(choices)}."
        raise ValueError(msg)
