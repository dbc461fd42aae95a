"""User-facing errors.

Anything the user can fix (a bad argument, a missing file, an offline hub) raises a subclass of
:class:`TmpbenchError` whose message is one line naming the value and the fix. The CLI prints that
line and exits non-zero without a traceback.
"""


import difflib
from collections.abc import Iterable


def did_you_mean(name: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.5) -> str:
    """``"; did you mean 'a' or 'b'?"`` for the choices close to ``name``, else ``""`` (one home for the hint).

    >>> did_you_mean("tpm", ["tmp", "random"])
    "; did you mean 'tmp'?"
    """
    close = difflib.get_close_matches(str(name), [str(c) for c in choices], n=n, cutoff=cutoff)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


class TmpbenchError(ValueError):
    """An error caused by user input or the environment, with a one-line message."""


class UnknownNameError(TmpbenchError, KeyError):
    """A registry lookup failed; the message carries a "did you mean" suggestion."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class BudgetMissError(TmpbenchError):
    """A pruner cannot land a budget on a model; carries the nearest size it reached so a sweep or
    an ablation can record the miss as a result instead of stopping."""

    def __init__(self, message: str, *, achieved: float, target: float, unit: str = "params") -> None:
        super().__init__(message)
        self.achieved = float(achieved)
        self.target = float(target)
        self.unit = unit

    @property
    def relative_error(self) -> float:
        return (self.achieved - self.target) / self.target if self.target else float("inf")


class DataFormatError(TmpbenchError):
    """A file does not match the format its loader expects (names the file and line)."""


class MissingDependencyError(TmpbenchError, ImportError):
    """An optional dependency or weight file is absent; the message names how to get it."""


class OfflineError(TmpbenchError):
    """Weights were requested from a hub while offline, or are not found locally."""
