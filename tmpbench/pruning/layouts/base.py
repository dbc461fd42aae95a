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

Scorers and masks call the model-level forms :meth:`Layout.mask_columns` and :meth:`Layout.weight_slices`
(a component path in the whole model, column ranges instead of whole projections). By default they
read the two per-module methods above; a family whose units sit in a projection shared with another
component (Flux's single-stream ``proj_out``, whose input is ``concat(attention heads, MLP channels)``)
or in two projections (a joint attention's image and context outputs) overrides them.
:meth:`Layout.identity_block` is what a dropped block becomes while masked, and :meth:`Layout.block_lists`,
:meth:`Layout.describe_block` and :meth:`Layout.reshape_block` are what :mod:`tmpbench.pruning.io`
saves and rebuilds per block.

Routed experts are read the same way in every family, through :class:`tmpbench.models.moe.MoEBlockView`.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
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
    def apply(self, model: nn.Module, plan: Any, linear_maps: dict | None = None, copy: bool = True) -> nn.Module:
        """Replay ``plan`` on a copy of ``model`` (on ``model`` itself with ``copy=False``): the surgery of this layout."""

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

    # --- model-level hook points (what scorers and masks call) ----------------------------------
    def mask_columns(self, model: nn.Module, path: str, kind: str) -> list[tuple[nn.Linear, int, int]]:
        """Where the units of component ``path`` ("heads" or "channels") are silenced: ``(linear, start, stop)``
        input column ranges; unit ``u`` owns columns ``start + u*w`` to ``start + (u+1)*w`` of each,
        ``w = (stop - start) // units``. Zeroing them in every range removes the unit exactly."""
        module = model.get_submodule(path)
        lin = self.head_output(module) if kind == "heads" else self.channel_output(module)
        return [(lin, 0, lin.in_features)]

    def weight_slices(
        self, model: nn.Module, path: str, kind: str
    ) -> tuple[list[tuple[nn.Linear, int, int]], list[tuple[nn.Linear, int, int]]]:
        """``(rows, cols)`` the units of component ``path`` own, each ``(linear, start, stop)``: output rows
        (or input columns) ``start:stop`` split evenly over the units (see :meth:`unit_weights`)."""
        rows, cols = self.unit_weights(model.get_submodule(path), kind)
        return rows, [(lin, 0, lin.in_features) for lin in cols]

    def identity_block(self, block: nn.Module) -> nn.Module:
        """What ``block`` becomes while masked as dropped: a module with its call signature that returns its
        input unchanged (surgery deletes the block, so the residual stream passes through)."""
        return PassThrough()

    # --- save and reload (tmpbench.pruning.io) -----------------------------------------------------
    @abc.abstractmethod
    def block_lists(self, model: nn.Module) -> list[tuple[str, nn.ModuleList]]:
        """``(path, blocks)`` of every block list of ``model``, in model order (what a saved spec lists)."""

    def describe_block(self, block: nn.Module) -> dict[str, dict[str, Any]] | None:
        """What survives in ``block`` as ``{part path: {"kind": ..., widths}}``, or None to let
        :func:`tmpbench.pruning.io.describe_block` read it generically (diffusers Attention, SwiGLU, MoE)."""
        return None

    def reshape_block(self, block: nn.Module, parts: dict[str, dict[str, Any]]) -> bool:
        """Cut ``block`` (weights irrelevant, meta allowed) to the widths :meth:`describe_block` wrote; False
        to let :func:`tmpbench.pruning.io.apply_architecture` do it generically."""
        return False

    def __repr__(self) -> str:
        return f"<Layout {self.name}>"


class PassThrough(nn.Module):
    """A dropped residual block while masked: returns its hidden-state input."""

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return x


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
