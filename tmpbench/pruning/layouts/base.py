"""The interface every model family's layout implements (one file per family in this package).

A :class:`Layout` is everything the pruning code needs to know about how a family names and wires its
modules. Pruners and scorers (TMP's masked search, activation, Taylor, REAP, block influence) never
test a class or a module name; they ask the layout of the model they hold:

* :meth:`Layout.tree` builds the unit tree (model > stage > block > component > units);
* :meth:`Layout.apply` is the surgery that replays a Plan (the reload of a saved folder rebuilds the
  same shapes through :mod:`tmpbench.pruning.io`);
* :meth:`Layout.head_output` and :meth:`Layout.channel_output` are the mask hook points: the
  projection whose input columns hold one head's (or KV group's) output, or one channel's
  activation, so zeroing them there silences exactly that unit;
* :meth:`Layout.unit_weights` names, per unit kind, the projections whose rows and columns a unit
  owns (weight-norm and gradient scores sum over them).

Routed experts are read the same way in every family, through :class:`tmpbench.models.moe.MoEBlockView`.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from torch import nn

from tmpbench.errors import TmpbenchError


class Layout(abc.ABC):
    """How one model family lays out its denoiser (see the module docstring)."""

    name: ClassVar[str]

    @abc.abstractmethod
    def matches(self, model: nn.Module) -> bool:
        """Whether ``model`` has this layout."""

    @abc.abstractmethod
    def tree(self, model: nn.Module, size: int | None = None) -> Any:
        """The model's :class:`~tmpbench.pruning.tree.UnitTree` (FLOPs at ``size`` px; the builder's default when None)."""

    @abc.abstractmethod
    def apply(self, model: nn.Module, plan: Any, linear_maps: dict | None = None) -> nn.Module:
        """Replay ``plan`` on a copy of ``model`` (the surgery of this layout)."""

    @abc.abstractmethod
    def head_output(self, attention: nn.Module) -> nn.Linear:
        """The output projection of an attention component: input columns ``[u*w, (u+1)*w)`` hold unit
        ``u``'s output (a head, or a KV group of heads), ``w = in_features // units``."""

    DOWN_PROJECTIONS: ClassVar[tuple[str, ...]] = ("w2", "down_proj")

    def is_dense_ffn(self, module: nn.Module) -> bool:
        """A dense FFN or shared expert (one down-projection Linear), as opposed to an MoE's routed experts."""
        return any(isinstance(getattr(module, name, None), nn.Linear) for name in self.DOWN_PROJECTIONS)

    def channel_output(self, ffn: nn.Module) -> nn.Linear:
        """The down projection of a dense FFN (or shared expert): input column ``c`` is channel ``c``."""
        for name in self.DOWN_PROJECTIONS:
            lin = getattr(ffn, name, None)
            if isinstance(lin, nn.Linear):
                return lin
        raise TmpbenchError(f"{type(ffn).__name__} has no down projection (w2 or down_proj) for layout {self.name!r}")

    @abc.abstractmethod
    def unit_weights(self, module: nn.Module, kind: str) -> tuple[list[tuple[nn.Linear, int, int]], list[nn.Linear]]:
        """``(rows, cols)`` a unit of ``kind`` ("heads" or "channels") owns in ``module``.

        ``rows`` lists ``(linear, start, stop)``: output rows ``start:stop`` of ``linear`` split evenly
        over the units (a fused gate-and-up projection gives two entries); ``cols`` lists linears whose
        input columns split evenly over the units.
        """

    def __repr__(self) -> str:
        return f"<Layout {self.name}>"


def swiglu_rows(ffn: nn.Module) -> list[tuple[nn.Linear, int, int]]:
    """Rows a channel owns in a SwiGLU FFN: w1/w3, gate_proj/up_proj, or both halves of gate_and_up_proj."""
    for a, b in (("w1", "w3"), ("gate_proj", "up_proj")):
        first, second = getattr(ffn, a, None), getattr(ffn, b, None)
        if isinstance(first, nn.Linear) and isinstance(second, nn.Linear):
            return [(first, 0, first.out_features), (second, 0, second.out_features)]
    fused = getattr(ffn, "gate_and_up_proj", None)
    if isinstance(fused, nn.Linear):
        n = fused.out_features // 2
        return [(fused, 0, n), (fused, n, 2 * n)]
    raise TmpbenchError(f"{type(ffn).__name__} is not a SwiGLU FFN (w1/w3, gate_proj/up_proj or gate_and_up_proj)")
