"""Fill the budget: the allocation state every pruner edits, and the shared landing procedure.

Every pruner (TMP and the baselines) records its choices in one :class:`Allocation`: which blocks
are dropped or replaced by a linear map, and how many units of each unit group (heads, channels,
experts) go, in which order. The Allocation keeps the exact size as it changes (parameters and
FLOPs, with the rules of :mod:`tmpbench.pruning.accounting`, the ones ``planned_size`` applies to
the finished Plan and ``apply_plan`` cuts by) and turns the state into a Plan.

Landing is shared so that every pruner meets the SAME target the same way:

* :func:`fill_uniform` removes one ratio of units from every chosen group (bisection on the
  ratio), the "uniform ratio across layers" of the width baselines;
* :meth:`Allocation.settle` is the final fine adjustment: remove (or restore) single units, the
  least (or most) important first, until the size is within half the 0.5% tolerance of the target
  (or within one rounding step when widths are rounded to multiples, which is reported);
* :meth:`Allocation.settle_blocks` does the same with block policies only (drop <-> linear map),
  for block-only searches.

A target no strategy can reach raises a one-line TmpbenchError naming the nearest size reached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from tmpbench.errors import BudgetMissError, TmpbenchError
from tmpbench.pruning.accounting import block_saving, linear_map_flops, linear_map_params, merge_bias_params, tree_size, unit_saving
from tmpbench.pruning.budget import TOLERANCE, Budget, original_for_tree
from tmpbench.pruning.plan import Decision, Plan, model_identity
from tmpbench.pruning.tree import UnitTree

UNIT_POLICY = {"heads": "prune_heads", "channels": "prune_channels", "experts": "prune_experts"}


@dataclass
class UnitGroup:
    """One unit group of the tree (``layers.3.attention#heads``) and how many of its units go."""

    path: str  # unit-group path in the tree
    component: str  # module path of the component (the Decision path)
    block: str  # block path the group lives in
    kind: str  # heads | channels | experts
    policies: tuple[str, ...]
    count: int
    unit_params: int
    unit_flops: float
    min_keep: int
    keep_multiple: int = 1  # GQA: kept heads a multiple of kv_heads
    round_to: int = 1  # hardware rounding of kept units (heads/channels), 1 = none
    order: list[int] = field(default_factory=list)  # removal order: least important first
    scores: list[float] | None = None  # importance per ORIGINAL unit index (higher = keep)
    removed: int = 0
    merge: bool = False  # experts: merge the removed ones into kept ones instead of pruning
    router_bias: bool = False  # experts: router already has a bias (merging adds none)
    similarity: list[list[float]] | None = None  # experts: pairwise similarity for merge targets
    experts: int = 0  # expert channels: number of experts E (a unit is one channel in every expert); 0 otherwise
    link: UnitGroup | None = field(default=None, repr=False)  # expert channels <-> experts of the same MoE
    sub_orders: list[list[int]] | None = None  # expert channels: each expert's own removal order
    _mean: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.order:
            self.order = list(range(self.count))

    @property
    def kept(self) -> int:
        return self.count - self.removed

    def valid_kept(self, kept: int) -> bool:
        if kept == self.count:
            return True
        if kept < self.min_keep or kept % self.keep_multiple:
            return False
        return kept % self.round_to == 0

    @property
    def merge_locked(self) -> bool:
        """Expert channels of an MoE whose experts are merged stay whole: a merged expert averages
        channel j of its members, which is only meaningful when they keep the same channels."""
        return bool(self.experts and self.link is not None and self.link.merge and self.link.removed)

    def step_down(self, removed: int | None = None) -> int | None:
        """Units removed next from ``removed`` (default: current) to the next valid size, or None."""
        if self.merge_locked:
            return None
        r = self.removed if removed is None else removed
        for kept in range(self.count - r - 1, self.min_keep - 1, -1):
            if self.valid_kept(kept):
                return self.count - r - kept
        return None

    def step_up(self) -> int | None:
        for kept in range(self.kept + 1, self.count + 1):
            if self.valid_kept(kept):
                return kept - self.kept
        return None

    def max_removed(self) -> int:
        for kept in range(self.min_keep, self.count + 1):
            if self.valid_kept(kept):
                return self.count - kept
        return 0

    def floor_removed(self, n: int) -> int:
        """Largest valid removal count <= n."""
        n = min(max(0, n), self.count)
        for r in range(n, -1, -1):
            if self.valid_kept(self.count - r):
                return r
        return 0

    def norm_score(self, start: int, n: int) -> float:
        """Mean importance of the units at removal-order positions ``start .. start+n-1``, relative
        to the group mean (comparable across groups); without scores, their rank share."""
        if n <= 0:
            return 0.0
        if self.scores is None:
            return (start + (n - 1) / 2) / max(1, self.count)
        if self._mean is None:
            m = sum(self.scores) / len(self.scores)
            self._mean = m if m > 0 else 1.0
        return sum(self.scores[u] for u in self.order[start:start + n]) / n / self._mean

    def saving(self, removed: int | None = None, kind: str = "params", kept_experts: int | None = None) -> float:
        """What this group's removed units save. For expert channels the parameters count only the
        experts that stay (``kept_experts``, default the linked experts group's; the experts group
        saves the removed experts whole), so the two groups of one MoE add up exactly:
        ``r_e * expert + r_c * channel * (E - r_e)``."""
        n = self.removed if removed is None else removed
        if self.experts and kept_experts is None:
            kept_experts = self.link.kept if self.link is not None else self.experts
        saved = unit_saving(kind, n, unit_params=self.unit_params, unit_flops=self.unit_flops, experts=self.experts,
                            kept_experts=kept_experts)
        if kind == "params" and self.merge and n > 0:
            saved -= merge_bias_params(self.count - n, self.router_bias)
        return saved

    def delta(self, n: int, kind: str = "params") -> float:
        """Exact change of the model's saving when ``n`` more units go (``n < 0``: restored),
        including the effect on a linked group (an expert removed takes its trimmed width along)."""
        d = self.saving(self.removed + n, kind) - self.saving(kind=kind)
        if kind == "params" and self.kind == "experts" and self.link is not None and self.link.removed:
            ch = self.link
            d += ch.saving(kind=kind, kept_experts=self.kept - n) - ch.saving(kind=kind)
        return d

    def kept_ids(self) -> list[int]:
        """Kept unit ids as a Plan names them: group indices, or for expert channels flat ids
        ``expert * count + channel`` (each expert keeps its own best ``kept`` channels)."""
        if not self.experts:
            return sorted(self.order[self.removed:])
        out = []
        for e in range(self.experts):
            order = self.sub_orders[e] if self.sub_orders is not None else self.order
            out.extend(e * self.count + c for c in sorted(order[self.removed:]))
        return out

    @property
    def id_count(self) -> int:
        """Range of the ids :meth:`kept_ids` returns."""
        return self.count * (self.experts or 1)


@dataclass
class BlockSlot:
    """One block and its block-level fate (None, drop_block or linear_replace)."""

    path: str
    params: int
    flops: float
    policies: tuple[str, ...]
    dim: int | None
    tokens: float
    groups: list[str] = field(default_factory=list)
    mode: str | None = None

    @property
    def linear_params(self) -> int:
        return linear_map_params(self.dim or 0)

    @property
    def linear_flops(self) -> float:
        return linear_map_flops(self.dim or 0, self.tokens)


class Allocation:
    """The shared allocation state over a unit tree for one budget (see the module docstring).

    ``target`` is the budget's size in its kind (parameters or FLOPs at the budget's resolution);
    impossible budgets (>= the original, below the tree's smallest feasible size, latency kinds)
    raise one-line errors here, before any scoring.
    """

    def __init__(self, tree: UnitTree, budget: Budget, *, round_to: int | None = None) -> None:
        if budget.kind == "latency":
            raise TmpbenchError(
                f"budget {budget.text!r} is a latency budget; plan with a params or flops@SIZE budget (latency is "
                "measured on the pruned model by the runner)"
            )
        if round_to is not None and (isinstance(round_to, bool) or not isinstance(round_to, int) or round_to < 1):
            raise TmpbenchError(f"round_to={round_to!r} must be a positive integer (e.g. 8 or 64) or None")
        self.tree = tree
        self.budget = budget
        self.kind = budget.kind
        original, minimum = original_for_tree(budget, tree)
        self.original = original
        self.target = budget.target(original, minimum)
        self.tol = TOLERANCE * self.target
        self.round_to = round_to
        self.linear_fit_inputs: int | None = None  # calibration inputs the linear maps are fitted on (None: all)
        self.groups: dict[str, UnitGroup] = {}
        self.blocks: dict[str, BlockSlot] = {}
        self._build()
        self.width_step = tree.width_step(round_to, "params" if self.kind == "params" else "flops") if round_to else 0.0

    # --- construction ----------------------------------------------------------------------------
    def _build(self) -> None:
        default_tokens = float(self.tree.image_tokens + self.tree.caption_tokens)
        for stage in self.tree.root.children:
            tokens = float(stage.constraints.get("tokens", default_tokens))
            blocks = stage.children if stage.level == "stage" else [stage]
            for block in blocks:
                if block.level != "block":
                    continue
                slot = BlockSlot(block.path, block.params, block.flops, tuple(block.policies),
                                 block.constraints.get("dim"), tokens)
                self.blocks[block.path] = slot
                for node in block.walk():
                    if node.level != "unit" or node.count <= 0:
                        continue
                    comp = node.module_path
                    c = node.constraints
                    if node.kind == "heads":
                        min_keep, mult = int(c.get("min_heads", 1)), int(c.get("kept_heads_multiple_of", 1))
                    elif node.kind == "experts":
                        min_keep, mult = int(c.get("top_k", c.get("min_experts", 1))), 1
                    else:
                        min_keep, mult = int(c.get("min_channels", 1)), 1
                    rnd = 1
                    if self.round_to and node.kind in ("heads", "channels") and node.count >= self.round_to:
                        rnd = self.round_to
                    g = UnitGroup(node.path, comp, block.path, node.kind, tuple(node.policies), node.count,
                                  node.unit_params, node.unit_flops, max(1, min_keep), max(1, mult), rnd)
                    if node.kind == "experts":
                        g.router_bias = bool(c.get("router_bias", False))
                    if c.get("per_expert"):
                        g.experts = int(c["experts"])
                        g.link = self.groups.get(f"{c['moe']}#experts")
                        if g.link is not None:
                            g.link.link = g
                    self.groups[node.path] = g
                    slot.groups.append(node.path)

    # --- views -----------------------------------------------------------------------------------
    @property
    def main_blocks(self) -> list[BlockSlot]:
        """Blocks that admit a block policy (drop_block / linear_replace), in model order."""
        return [b for b in self.blocks.values() if b.policies]

    def group_list(self, kinds: Iterable[str] | None = None, active_only: bool = True) -> list[UnitGroup]:
        kinds = set(kinds) if kinds is not None else None
        return [g for g in self.groups.values()
                if (kinds is None or g.kind in kinds) and (not active_only or self.blocks[g.block].mode is None)]

    def kinds(self) -> set[str]:
        return {g.kind for g in self.groups.values()}

    def block_saving(self, slot: BlockSlot, kind: str | None = None, mode: str | None | type = ...) -> float:
        kind = kind or self.kind
        mode = slot.mode if mode is ... else mode
        if mode is not None:
            return block_saving(kind, mode, params=slot.params, flops=slot.flops, dim=slot.dim or 0, tokens=slot.tokens)
        return float(sum(self.groups[p].saving(kind=kind) for p in slot.groups))

    def saved(self, kind: str | None = None) -> float:
        kind = kind or self.kind
        return sum(self.block_saving(b, kind) for b in self.blocks.values())

    def size(self, kind: str | None = None) -> float:
        kind = kind or self.kind
        return tree_size(self.tree, kind) - self.saved(kind)

    def gap(self) -> float:
        """Size above the target (negative: below)."""
        return self.size() - self.target

    def landed(self, slack: float = 1.0) -> bool:
        return abs(self.gap()) <= slack * self.tolerance

    @property
    def tolerance(self) -> float:
        """Absolute tolerance: 0.5% of the target, or one rounding step when widths are rounded."""
        return max(self.tol, self.width_step)

    # --- edits -----------------------------------------------------------------------------------
    def set_order(self, path: str, scores: Any, *, tiebreak: Any = None) -> None:
        """Set a group's importance ``scores`` (per original unit) and its removal order (ascending).

        Expert channels take ``(experts, channels)`` scores: each expert gets its own order, and the
        group's score for its r-th removal is the mean over experts of their r-th lowest score."""
        g = self.groups[path]
        t = scores if isinstance(scores, torch.Tensor) else torch.as_tensor(scores, dtype=torch.float64)
        if t.dim() == 2:
            if not g.experts or tuple(t.shape) != (g.experts, g.count):
                raise TmpbenchError(f"{path}: got scores of shape {tuple(t.shape)}; expected ({g.count},)"
                                    + (f" or ({g.experts}, {g.count})" if g.experts else ""))
            rows = t.double().tolist()
            g.sub_orders = [sorted(range(g.count), key=lambda i, r=r: (r[i], i)) for r in rows]
            slots = [sum(rows[e][g.sub_orders[e][i]] for e in range(g.experts)) / g.experts for i in range(g.count)]
            g.scores = slots
            g._mean = None
            g.order = list(range(g.count))
            return
        g.sub_orders = None
        s = [float(x) for x in (scores.tolist() if isinstance(scores, torch.Tensor) else scores)]
        if len(s) != g.count:
            raise TmpbenchError(f"{path}: got {len(s)} scores for {g.count} units")
        g.scores = s
        g._mean = None
        g.order = sorted(range(g.count), key=lambda i: (s[i], i))

    def set_removed(self, path: str, n: int) -> None:
        g = self.groups[path]
        if not 0 <= n <= g.count or not g.valid_kept(g.count - n):
            raise TmpbenchError(f"{path}: cannot remove {n} of {g.count} {g.kind} (min {g.min_keep}, multiple {g.keep_multiple})")
        g.removed = n

    def set_block(self, path: str, mode: str | None) -> None:
        slot = self.blocks[path]
        if mode is not None and mode not in slot.policies:
            raise TmpbenchError(f"policy {mode!r} is not admitted at {path!r}; it admits: {', '.join(slot.policies) or 'none'}")
        slot.mode = mode

    # --- landing ---------------------------------------------------------------------------------
    def settle(
        self,
        groups: list[UnitGroup] | None = None,
        *,
        prefer: str = "score",
        what: str = "pruner",
        require: bool = True,
    ) -> bool:
        """Final fine adjustment: remove, then restore, single valid steps of ``groups`` (default: all
        active groups) until the size is within half the tolerance of the target.

        ``prefer="score"`` removes the least important next units across groups (by scores
        normalised within each group); ``"uniform"`` removes from the group with the smallest removed
        share first, keeping one ratio across layers. Returns whether it landed within the full
        tolerance; with ``require`` a miss raises a one-line TmpbenchError.
        """
        pool = [g for g in (groups if groups is not None else self.group_list()) if self.blocks[g.block].mode is None]
        half = 0.5 * self.tolerance
        size = self.size()
        def delta(g: UnitGroup, n: int) -> float:
            return g.delta(n, self.kind)

        # phase 1: remove while above the target
        while size > self.target + half:
            cands = []
            for g in pool:
                n = g.step_down()
                if n is None:
                    continue
                d = delta(g, n)
                if d <= 0:
                    continue
                sc = g.norm_score(g.removed, n)
                key = (sc,) if prefer == "score" else ((g.removed + n) / g.count, sc)
                cands.append((key, d, g, n))
            if not cands:
                break
            fitting = [c for c in cands if size - c[1] >= self.target - half]
            key, d, g, n = min(fitting, key=lambda c: c[0]) if fitting else min(cands, key=lambda c: c[1])
            g.removed += n
            size -= d
        # phase 2: restore while below the target (most important removed units first)
        while size < self.target - half:
            cands = []
            for g in pool:
                if g.removed == 0:
                    continue
                n = g.step_up()
                if n is None:
                    continue
                d = -g.delta(-n, self.kind)
                cands.append((g.norm_score(g.removed - n, n), d, g, n))
            fitting = [c for c in cands if size + c[1] <= self.target + half]
            if not fitting:
                break
            _, d, g, n = max(fitting, key=lambda c: c[0])
            g.removed -= n
            size += d
        ok = self.landed()
        if require and not ok:
            self.raise_miss(what)
        return ok

    def settle_blocks(self, allowed: Iterable[str], priority: Callable[[BlockSlot], float] | None = None) -> bool:
        """Block-only fine adjustment: change single blocks between none / drop / linear map (only
        ``allowed`` policies) while that brings the size closer to the target. Lower ``priority``
        blocks are changed first on ties."""
        allowed = set(allowed)
        prio = priority or (lambda b: 0.0)
        for _ in range(4 * len(self.blocks) + 4):
            cur = abs(self.gap())
            if cur <= 0.5 * self.tolerance:
                break
            best = None
            for b in self.main_blocks:
                for mode in (None, *[m for m in ("drop_block", "linear_replace") if m in allowed and m in b.policies]):
                    if mode == b.mode:
                        continue
                    new_gap = self.gap() - (self.block_saving(b, mode=mode) - self.block_saving(b))
                    key = (abs(new_gap), prio(b))
                    if abs(new_gap) < cur and (best is None or key < best[0]):
                        best = (key, b, mode)
            if best is None:
                break
            best[1].mode = best[2]
        return self.landed()

    def raise_miss(self, what: str) -> None:
        size, target = self.size(), self.target
        unit = "params" if self.kind == "params" else "FLOPs"
        raise BudgetMissError(
            f"{what} cannot land budget {self.budget.text!r} on this model: nearest size it reaches is "
            f"{size:,.0f} {unit} vs target {target:,.0f} ({(size - target) / target:+.2%}, tolerance "
            f"{self.tolerance / target:.2%}); use a pruner with more policies (e.g. tmp) or a budget near {size:,.0f}",
            achieved=size, target=target, unit=unit,
        )

    # --- export ----------------------------------------------------------------------------------
    def decisions(self) -> list[Decision]:
        out: list[Decision] = []
        for b in self.blocks.values():
            if b.mode == "drop_block":
                out.append(Decision(b.path, "drop_block"))
            elif b.mode == "linear_replace":
                linear = {"dim": b.dim, "fit": "lstsq", "ridge": 0.0}
                if self.linear_fit_inputs is not None:
                    linear["fit_inputs"] = self.linear_fit_inputs
                out.append(Decision(b.path, "linear_replace", linear=linear))
        for g in self.groups.values():
            if g.removed == 0 or self.blocks[g.block].mode is not None:
                continue
            if g.merge:
                groups, weights = merge_groups(g)
                out.append(Decision(g.component, "merge_experts", groups=groups, weights=weights, merge_router="lse",
                                    original_count=g.count))
            else:
                out.append(Decision(g.component, UNIT_POLICY[g.kind], keep=g.kept_ids(), original_count=g.id_count))
        return out

    def report(self) -> dict[str, Any]:
        """Landing report recorded in ``Plan.settings["allocation"]``."""
        size = self.size()
        return {
            "kind": self.budget.label,
            "target": self.target,
            "achieved": size,
            "relative_error": (size - self.target) / self.target,
            "tolerance": self.tolerance / self.target,
            "rounding_multiple": self.round_to,
            "rounding_step": self.width_step or None,
        }

    def to_plan(self, model: nn.Module, pruner: str, settings: dict[str, Any], calibration: Any = None,
                name: str | None = None) -> Plan:
        """The Plan of the current state (decisions in original indices, sizes, landing report)."""
        return Plan(
            model=model_identity(model, name),
            budget=self.budget.to_dict(),
            pruner=pruner,
            decisions=self.decisions(),
            original_params=int(self.tree.params),
            achieved_params=int(round(self.size("params"))),
            original_flops=float(self.tree.flops),
            achieved_flops=float(self.size("flops")),
            settings={**settings, "allocation": self.report()},
            calibration=dict(getattr(calibration, "identity", {}) or {}),
        )


def merge_groups(g: UnitGroup) -> tuple[list[list[int]], list[float] | None]:
    """Partition of a group's experts for ``merge_experts``: each removed expert joins the kept
    expert it is most similar to (``g.similarity``; round-robin over kept experts without it).
    Groups are ordered by their kept expert; weights are the importance scores (or None)."""
    kept = sorted(g.order[g.removed:])
    removed = g.order[:g.removed]
    members: dict[int, list[int]] = {k: [k] for k in kept}
    for i, e in enumerate(removed):
        if g.similarity is not None:
            target = max(kept, key=lambda k: (g.similarity[e][k], -k))
        else:
            target = kept[i % len(kept)]
        members[target].append(e)
    groups = [sorted(members[k], key=lambda x: (x != k, x)) for k in kept]
    weights = None
    if g.scores is not None:
        weights = [max(float(s), 0.0) + 1e-6 for s in g.scores]
    return groups, weights


def bisect_scale(size_at: Callable[[float], float], hi: float, target: float, steps: int = 40) -> bool:
    """Leave the state at the largest scale in ``[0, hi]`` (to bisection precision) whose size is still
    above ``target``: ``size_at(x)`` applies scale ``x`` to the allocation and returns its size. Returns
    False, with scale ``hi`` applied, when even ``hi`` stays above the target (the landing reports it)."""
    if size_at(hi) > target:
        return False
    lo = 0.0
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if size_at(mid) > target:
            lo = mid
        else:
            hi = mid
    size_at(lo)
    return True


def fill_uniform(alloc: Allocation, groups: list[UnitGroup], *, what: str = "pruner", require: bool = True) -> bool:
    """Remove one share ``r`` of units from every group in ``groups`` (each group's least important
    first; counts floored to valid sizes), with ``r`` found by bisection so the size lands just above
    the target, then :meth:`Allocation.settle` with ``prefer="uniform"`` for the last units."""
    if not groups:
        if require:
            alloc.raise_miss(what)
        return False
    base = {g.path: g.removed for g in groups}

    def apply(r: float) -> float:
        for g in groups:
            g.removed = max(base[g.path], g.floor_removed(int(r * g.count + 1e-9)))
        return alloc.size()

    bisect_scale(apply, 1.0, alloc.target)
    return alloc.settle(groups, prefer="uniform", what=what, require=require)
