"""One layer of argument checks for every public function, model and the command line.

Each check takes the argument's name and value, and returns the value as a plain Python object (an
``int`` for ``np.int64(4)``, a tuple of ints for ``np.array([16])``), so that what a model stores
can always be saved and loaded. A bad value raises one message naming the argument, the value and
what is allowed: a TypeError for the wrong kind of value, a ValueError for a value out of range.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Check = Callable[[str, Any], Any]
#: What ``random_state`` takes, as in scanpy.
SeedLike = int | np.random.Generator | np.random.RandomState | None


def _fail(name: str, value: Any, expected: str, kind: type[Exception] = ValueError) -> None:
    shown = repr(value) if len(repr(value)) <= 80 else f"{type(value).__name__} {repr(value)[:60]}..."
    raise kind(f"{name}={shown}: expected {expected}.")


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


@dataclass(frozen=True)
class Integer:
    """An integer in ``[minimum, maximum]``; None allowed when ``optional``."""

    minimum: int | None = None
    maximum: int | None = None
    optional: bool = False

    def __call__(self, name: str, value: Any) -> int | None:
        if value is None and self.optional:
            return None
        expected = _bounds("an integer", self.minimum, self.maximum) + (", or None" if self.optional else "")
        if not _is_integer(value):
            # 2.0 is an integer given as a float: accepted; 2.5 is not
            if _is_real(value) and float(value).is_integer():
                value = int(value)
            else:
                _fail(name, value, expected, ValueError if _is_real(value) else TypeError)
        value = int(value)
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            _fail(name, value, expected)
        return value


@dataclass(frozen=True)
class Real:
    """A finite number in the interval from ``low`` to ``high``, each end open or closed."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    optional: bool = False

    def __call__(self, name: str, value: Any) -> float | None:
        if value is None and self.optional:
            return None
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        interval = f"{'(' if self.low_open or self.low is None else '['}{lo}, {hi}"
        interval += ")" if self.high_open or self.high is None else "]"
        expected = f"a number in {interval}" + (", or None" if self.optional else "")
        if not _is_real(value):
            _fail(name, value, expected, TypeError)
        value = float(value)
        below = self.low is not None and (value < self.low or (self.low_open and value == self.low))
        above = self.high is not None and (value > self.high or (self.high_open and value == self.high))
        if not np.isfinite(value) or below or above:
            _fail(name, value, expected)
        return value


def flag(name: str, value: Any) -> bool:
    """True or False (NumPy booleans included)."""
    if not isinstance(value, bool | np.bool_):
        _fail(name, value, "True or False", TypeError)
    return bool(value)


def flag_or_auto(name: str, value: Any) -> bool | str:
    """True, False or ``"auto"``."""
    if isinstance(value, str) and value == "auto":
        return value
    if not isinstance(value, bool | np.bool_):
        _fail(name, value, "True, False or 'auto'", TypeError)
    return bool(value)


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of strings."""

    choices: tuple[str, ...]

    def __call__(self, name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in self.choices:
            _fail(name, value, f"one of {', '.join(map(repr, self.choices))}")
        return str(value)


@dataclass(frozen=True)
class Choices:
    """One or more of a fixed set of strings: one string, or a sequence of them."""

    choices: tuple[str, ...]

    def __call__(self, name: str, value: Any) -> tuple[str, ...]:
        values = (value,) if isinstance(value, str) else value
        if not isinstance(values, Sequence) or not values:
            _fail(name, value, f"one or more of {', '.join(map(repr, self.choices))}", TypeError)
        return tuple(Choice(self.choices)(name, v) for v in values)


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """``value`` when it is one of ``choices``, else a ValueError listing them."""
    return Choice(tuple(choices))(name, value)


@dataclass(frozen=True)
class Key:
    """The name of an AnnData entry (a column of ``obs``, a key of ``obsm``, ``layers``, ``uns``).

    With ``storable``, a key that h5ad can write as a group name: not empty and without ``/``.
    """

    optional: bool = True
    storable: bool = False

    def __call__(self, name: str, value: Any) -> str | None:
        if value is None and self.optional:
            return None
        expected = "a string" + (" without '/' (h5ad stores keys as paths)" if self.storable else "")
        expected += ", or None" if self.optional else ""
        if not isinstance(value, str):
            _fail(name, value, expected, TypeError)
        if self.storable and (not value or "/" in value):
            _fail(name, value, "a non-empty " + expected.removeprefix("a "))
        return str(value)


@dataclass(frozen=True)
class Keys:
    """None, or one or more distinct names of AnnData entries (a string or a sequence), as a tuple."""

    def __call__(self, name: str, value: Any) -> tuple[str, ...] | None:
        if value is None:
            return None
        values = (value,) if isinstance(value, str) else value
        expected = "a string, a list of strings, or None"
        if not isinstance(values, Sequence) or not values or not all(isinstance(v, str) for v in values):
            _fail(name, value, expected, TypeError)
        if len(set(values)) < len(values):
            _fail(name, value, "distinct names")
        return tuple(values)


@dataclass(frozen=True)
class Integers:
    """One or more integers >= ``minimum`` (a tuple, list or 1-d array), returned as a tuple."""

    minimum: int = 1

    def __call__(self, name: str, value: Any) -> tuple[int, ...]:
        expected = f"one or more integers >= {self.minimum}, e.g. (128,)"
        if isinstance(value, str | bytes) or not isinstance(value, Iterable | np.ndarray):
            _fail(name, value, expected, TypeError)
        items = list(np.asarray(value).ravel()) if isinstance(value, np.ndarray) else list(value)
        if not items:
            _fail(name, value, expected)
        return tuple(Integer(minimum=self.minimum)(f"{name}[{i}]", v) for i, v in enumerate(items))


def seed(name: str, value: Any) -> int | None:
    """A random state as scanpy takes it: an int, None, or a NumPy Generator / RandomState.

    A generator is drawn from once for an int seed (as scikit-learn does), so what is stored is a
    plain int; None stays None and means a fresh seed per run (see :func:`resolve_seed`).
    """
    if value is None:
        return None
    if isinstance(value, np.random.Generator):
        return int(value.integers(2**32))
    if isinstance(value, np.random.RandomState):
        return int(value.randint(2**32, dtype=np.int64))
    if not _is_integer(value):
        _fail(name, value, "an int, None, or a numpy.random.Generator / RandomState", TypeError)
    if not 0 <= int(value) < 2**32:  # what NumPy's RandomState and scikit-learn take
        _fail(name, value, "a non-negative int below 2**32")
    return int(value)


def resolve_seed(value: int | None) -> int:
    """The seed of a run: ``value``, or a fresh one from the operating system's entropy for None."""
    return int(np.random.SeedSequence().generate_state(1)[0]) if value is None else value


def device(name: str, value: Any) -> str:
    """A device name: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` (or a ``torch.device``)."""
    import torch

    expected = "'auto', 'cpu', 'cuda' or 'cuda:N'"
    if isinstance(value, torch.device):
        value = str(value)
    if not isinstance(value, str):
        _fail(name, value, expected, TypeError)
    if value != "auto":
        try:
            parsed = torch.device(value)
        except (RuntimeError, TypeError):
            parsed = None
        if parsed is None or parsed.type not in ("cpu", "cuda"):
            _fail(name, value, expected)
    return value


def check_arguments(values: Mapping[str, Any], checks: Mapping[str, Check]) -> dict[str, Any]:
    """Every entry of ``values`` checked by its entry in ``checks`` (those without one kept as they are)."""
    return {name: checks[name](name, value) if name in checks else value for name, value in values.items()}


def _bounds(what: str, minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"{what} in [{minimum}, {maximum}]"
    if minimum is not None:
        return f"{what} >= {minimum}"
    return what if maximum is None else f"{what} <= {maximum}"


#: Checks of the training arguments every model shares.
TRAINING = {
    "epochs": Integer(minimum=1, optional=True),
    "batch_size": Integer(minimum=2),
    "lr": Real(low=0, low_open=True),
    "kl_warmup": Integer(minimum=0, optional=True),
    "early_stopping": flag,
    "patience": Integer(minimum=1),
    "validation_fraction": Real(low=0, high=1, high_open=True),
    "random_state": seed,
    "device": device,
    "progress": flag,
    "n_latent": Integer(minimum=1),
    "hidden": Integers(minimum=1),
    "dropout": Real(low=0, high=1, high_open=True),
    "layer": Key(),
    "use_rep": Key(),
    "labels_key": Key(),
    "batch_key": Key(),
}


def check_training_combination(params: Mapping[str, Any]) -> None:
    """Training settings that are each valid but cannot work together."""
    if params["early_stopping"] and params["validation_fraction"] == 0:
        msg = (
            "early_stopping=True needs held-out cells to stop on, but validation_fraction=0; pass "
            "validation_fraction > 0 (e.g. 0.1) or early_stopping=False."
        )
        raise ValueError(msg)
