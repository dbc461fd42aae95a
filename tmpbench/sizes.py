"""Sizes as users type them (``4b``, ``500m``, ``2e10``, ``33%``): the one grammar, read by model
specs (:mod:`tmpbench.models.spec`, ``zimage-4b``) and budgets (:mod:`tmpbench.pruning.budget`).

Grammar::

    SIZE   := NUMBER [UNIT] | NUMBER "%"
    NUMBER := 4 | 1.5 | .5 | 2e10            (no sign)
    UNIT   := k (1e3) | m (1e6) | b or g (1e9) | t (1e12)    (either case)

``NUMBER UNIT`` is an absolute amount; ``NUMBER "%"`` is the share REMOVED (``33%`` keeps 67%).
A model spec needs the unit or the percent sign (``flux-2`` is a name, not flux at two
parameters); a budget also takes a bare number (``2e10``). What a size must lie in (above 0,
below 100%, below the model) is for the caller to say: its messages name its own fix.

This module is plain text handling with no tmpbench imports, so any layer may use it.

Example::

    >>> parse_size("1.5B")
    Size(number=1.5, unit='b')
    >>> parse_size("1.5B").amount, parse_size("33%").removed_share
    (1500000000.0, 0.33)
    >>> parse_size("four") is None
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNITS = {"": 1.0, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}
NUMBER = r"(?:\d+(?:\.\d*)?(?:e[+-]?\d+)?|\.\d+(?:e[+-]?\d+)?)"
# a size whose unit is required (model specs): NUMBER then one of the units or "%"
SIZE_WITH_UNIT = rf"{NUMBER}\s*(?:%|[kmbgt])"
_SIZE_RE = re.compile(rf"^(?P<num>{NUMBER})\s*(?P<unit>%|[kmbgt])?$", re.IGNORECASE)


@dataclass(frozen=True)
class Size:
    """One parsed size: ``number`` as typed and its ``unit`` (``""``, ``k``, ``m``, ``b``, ``g``, ``t`` or ``%``)."""

    number: float
    unit: str

    @property
    def is_ratio(self) -> bool:
        """True for ``NUMBER%`` (a share removed), False for an absolute amount."""
        return self.unit == "%"

    @property
    def amount(self) -> float:
        """The absolute amount (``4b`` -> 4e9); only for sizes that are not ratios."""
        if self.is_ratio:
            raise ValueError(f"{self.number:g}% is a share removed, not an absolute amount")
        return self.number * UNITS[self.unit]

    @property
    def removed_share(self) -> float:
        """The share removed in [0, 1] terms (``33%`` -> 0.33); only for ratios."""
        if not self.is_ratio:
            raise ValueError(f"{self.number:g}{self.unit} is an absolute amount, not a share removed")
        return self.number / 100.0


def parse_size(text: str) -> Size | None:
    """The :class:`Size` ``text`` spells (see the module grammar), or None when it is not a size."""
    match = _SIZE_RE.match(str(text).strip())
    if match is None:
        return None
    return Size(float(match["num"]), (match["unit"] or "").lower())
