"""TMP's top-down tree allocation (the default ``search="tree"``; design and reasons in docs/tmp.md §4).

Sensitivities are measured bottom-up, budgets are passed top-down:

1. **Stage budgets from block sensitivities.** Every block is probed alone on the unpruned model:
   its width cut uniformly at the model's mean ratio (a quadratic error curve through that point),
   dropped, and replaced by its linear map. Each block's options form a menu of (saving, cost)
   points; the stage budgets are the savings one multiple-choice allocation over all blocks' menus
   gives each stage.
2. **Block budgets from component sensitivities.** Inside a stage with a budget, every unit group of
   its blocks is probed alone: at the stage's width ratio and cut to its constraint minimum (per
   policy for experts: pruned or merged). The groups' curves add up to each block's width curve;
   with the block's drop and linear-map points they form the block menus the stage budget is
   shared over.
3. **Component budgets** are the group points of each block's chosen width state; units within a
   group leave in the order of the within-component scorer.

The allocation of one level is the classic greedy for a multiple-choice knapsack: each menu is
reduced to its lower convex hull and hull segments are taken cheapest-per-saving first (cost times
the policy's prior) until the level's budget is met. ``tree_depth`` nests the menus: 1 = block
points only, 2 = + whole-component cuts, 3 = + fractional widths in ``1/chunks`` steps.

Every probe touches one block, so the evaluator replays the blocks before it from the teacher's
recorded outputs (block-local evaluation): a probe costs the FLOPs share of a forward from that
block on. With ``local=True`` (``local_probes``) the level-2 group probes and the measured fill score only
the touched block's own output, scaled to the output by a gain measured per block and pass
(docs/tmp.md §4d). The landing (:meth:`pruners.allocate.Allocation.settle`) and the final measured error
are the same as the flat search's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pruners.allocate import Allocation, BlockSlot, UnitGroup
from pruners.tmp_search import BLOCK_POLICIES, UNIT_POLICIES, Evaluator

# a state edit: ("block", path, mode) or ("group", path, removed, merge)
Edit = tuple


@dataclass
class Point:
    """One option of a menu: what it saves, what it costs (prior-weighted), and the edits it makes."""

    saving: float
    cost: float
    edits: tuple[Edit, ...] = ()
    raw: float = 0.0  # measured (or predicted) error increase before the prior


@dataclass
class Menu:
    key: str
    points: list[Point] = field(default_factory=list)

    def hull(self) -> list[Point]:
        """Lower convex hull from (0, 0), increasing saving, increasing slope."""
        pts = sorted([p for p in self.points if p.saving > 0], key=lambda p: (p.saving, p.cost))
        hull = [Point(0.0, 0.0)]
        for p in pts:
            if p.cost >= hull[-1].cost and p.saving <= hull[-1].saving:
                continue
            while len(hull) >= 2:
                a, b = hull[-2], hull[-1]
                # drop b when it lies on or above the segment a -> p
                if (b.cost - a.cost) * (p.saving - a.saving) >= (p.cost - a.cost) * (b.saving - a.saving):
                    hull.pop()
                else:
                    break
            hull.append(p)
        return hull


def allocate_menus(menus: list[Menu], budget: float) -> dict[str, Point]:
    """Multiple-choice knapsack greedy: take hull segments cheapest per saving first until ``budget``
    is saved; the segment that crosses the budget is taken when that lands closer. Returns the chosen
    point per menu key (the (0, 0) point when a menu gives nothing)."""
    hulls = {m.key: m.hull() for m in menus}
    segs = []
    for key, h in hulls.items():
        for j in range(1, len(h)):
            dx = h[j].saving - h[j - 1].saving
            segs.append(((h[j].cost - h[j - 1].cost) / dx, key, j, dx))
    segs.sort(key=lambda s: (s[0], s[1], s[2]))
    level = {key: 0 for key in hulls}
    saved = 0.0
    for _slope, key, j, dx in segs:
        if saved >= budget:
            break
        if level[key] != j - 1:  # hull slopes increase, so a menu's segments come in order
            continue
        if saved + dx > budget and (saved + dx - budget) > (budget - saved):
            break
        level[key] = j
        saved += dx
    return {key: hulls[key][level[key]] for key in hulls}


class TreeSearch:
    """Top-down allocation over the unit tree (module docstring)."""

    def __init__(self, alloc: Allocation, evaluator: Evaluator, allowed: set[str], mix: dict[str, float],
                 depth: int, chunks: int, refine: int = 1, local: bool = False, width_probes: int = 1,
                 width_savings: str = "sum", fill: str = "measured", rescore_every: int = 8) -> None:
        self.alloc = alloc
        # the measured fill (docs/tmp.md §4a, Fill): "measured" scores its shortlist afresh at every step, "lazy"
        # keeps a candidate's measured cost until its own block changes (or ``rescore_every`` acceptances
        # pass), "curves" skips it (the fine fill alone, by the probed curves)
        self.fill = fill
        self.rescore_every = rescore_every
        self.width_savings = width_savings  # a width state's saving: its groups' own savings added, or the state's
        self.width_probes = width_probes  # level 1: width probes per block, at 1/k .. k/k of the mean ratio
        self.refine = refine
        # local probes (docs/tmp.md §4d): level-2 group probes and the measured fill score the touched
        # block's own output error, turned into output error by the block's gain (one global probe per
        # block and pass, in context)
        self.local = local
        self.gains: dict[str, float] = {}  # block -> output error per unit of its local error (this pass)
        self.local_probes = 0
        self.ev = evaluator
        self.allowed = allowed
        self.mix = mix
        self.depth = depth
        self.chunks = chunks
        self.probes = 0
        self.accepted = 0
        self._touched: list[str] = []
        self.stage_budgets: dict[str, float] = {}
        self.block_budgets: dict[str, float] = {}
        # (block, kind) -> in-context / isolated error of the chosen element (kind: a block mode or "width")
        self.ratio: dict[tuple[str, str], float] = {}
        self._picked: dict[str, tuple[str, float]] = {}  # block -> (kind, isolated error) of the last pass
        self.rounds: list[dict[str, Any]] = []

    # --- the state ---------------------------------------------------------------------------------
    def _set(self, edits: tuple[Edit, ...]) -> list[tuple]:
        undo = []
        for e in edits:
            if e[0] == "block":
                slot = self.alloc.blocks[e[1]]
                undo.append(("block", slot, slot.mode))
                slot.mode = e[2]
            else:
                g = self.alloc.groups[e[1]]
                undo.append(("group", g, g.removed, g.merge))
                g.removed, g.merge = e[2], e[3]
        return undo

    @staticmethod
    def _undo(undo: list[tuple]) -> None:
        for u in reversed(undo):
            if u[0] == "block":
                u[1].mode = u[2]
            else:
                u[1].removed, u[1].merge = u[2], u[3]

    def _probe(self, edits: tuple[Edit, ...]) -> float:
        """Error increase of ``edits`` applied to the current context (the unpruned state at level 1; at
        level 2, the stages after the one being allocated as already chosen)."""
        undo = self._set(edits)
        try:
            self.probes += 1
            return self.ev.error() - self._ctx
        finally:
            self._undo(undo)

    def _saving(self, edits: tuple[Edit, ...]) -> float:
        before = self.alloc.saved()
        undo = self._set(edits)
        try:
            return self.alloc.saved() - before
        finally:
            self._undo(undo)

    # --- what a group / block admits ---------------------------------------------------------------
    def _policies(self, g: UnitGroup) -> list[str]:
        if self.depth < 2:
            return []
        return [p for p in UNIT_POLICIES[g.kind] if p in self.allowed and p in g.policies]

    def _groups(self, slot: BlockSlot) -> list[UnitGroup]:
        return [self.alloc.groups[p] for p in slot.groups if self._policies(self.alloc.groups[p])
                and self.alloc.groups[p].max_removed() > 0]

    def _block_modes(self, slot: BlockSlot) -> list[str]:
        modes = [m for m in BLOCK_POLICIES if m in self.allowed and m in slot.policies]
        return [m for m in modes if m != "linear_replace" or self.ev.can_linear(slot)]

    def _removal(self, g: UnitGroup, frac: float) -> int:
        """Units of ``g`` removed at ``frac`` of what it can lose (at least one valid step)."""
        top = g.max_removed()
        n = g.floor_removed(round(frac * top))
        if n == 0 and frac > 0:
            n = g.step_down(0) or 0
        return min(n, top)

    def _width_policy(self, g: UnitGroup) -> str:
        return self._policies(g)[0]  # prune before merge: a uniform width probe removes, it does not merge

    def _prior(self, policy: str) -> float:
        return self.mix.get(policy, 1.0)

    # --- level 1: block menus, stage budgets -------------------------------------------------------
    def _width_groups(self, slot: BlockSlot) -> list[UnitGroup]:
        """The groups a uniform width cut of ``slot`` touches (merged experts keep their channels whole)."""
        groups = self._groups(slot)
        merging = {g.link.path for g in groups if g.kind == "experts" and g.link is not None
                   and self._width_policy(g) == "merge_experts"}
        return [g for g in groups if g.path not in merging]

    def _width_edits(self, groups: list[UnitGroup], frac: float) -> tuple[Edit, ...]:
        """Every group of ``groups`` cut at ``frac`` of what it can lose (to its minimum at depth 2)."""
        return tuple(("group", g.path, g.max_removed() if self.depth == 2 else self._removal(g, frac),
                      self._width_policy(g) == "merge_experts") for g in groups)

    def _block_menu(self, slot: BlockSlot, frac: float) -> Menu:
        menu = Menu(slot.path)
        groups = self._width_groups(slot)
        if groups:
            probed: list[tuple[float, float]] = []  # (saving, error) of each width probe, increasing saving
            for j in range(1, (1 if self.depth == 2 else self.width_probes) + 1):
                edits_t = self._width_edits(groups, frac * j / self.width_probes)
                x = self._saving(edits_t)
                if x > (probed[-1][0] if probed else 0.0):
                    probed.append((x, max(self._probe(edits_t), probed[-1][1] if probed else 0.0)))
            if probed:
                x0, c0 = probed[-1]
                prior = sum(self._prior(self._width_policy(g)) for g in groups) / len(groups)
                full = tuple(("group", g.path, g.max_removed(), False) for g in groups)
                top = self._saving(full)
                if self.depth == 2:
                    menu.points.append(Point(x0, prior * c0, full, c0))
                else:
                    for k in range(1, self.chunks + 1):
                        c = self._width_error(probed, top * k / self.chunks)
                        menu.points.append(Point(top * k / self.chunks, prior * c, (), c))  # width: shares come from level 2
        for m in self._block_modes(slot):
            edits_t = (("block", slot.path, m),)
            c = self._probe(edits_t)
            menu.points.append(Point(self.alloc.block_saving(slot, mode=m), self._prior(m) * max(c, 0.0), edits_t, c))
        return menu

    @staticmethod
    def _width_error(probed: list[tuple[float, float]], x: float) -> float:
        """A block's width error at saving ``x`` from its probes: quadratic through (0, 0) and the first probe
        below it, linear between probes, quadratic through the last beyond it (one probe: one quadratic)."""
        (x1, c1), (xn, cn) = probed[0], probed[-1]
        if x <= x1:
            return c1 * (x / x1) ** 2
        if x >= xn:
            return cn * (x / xn) ** 2
        for (xa, ca), (xb, cb) in zip(probed, probed[1:]):  # x1 < x < xn: some segment holds x
            if x <= xb:
                break
        return ca + (x - xa) / (xb - xa) * (cb - ca)

    def _scale(self, block: str, kind: str) -> float:
        """In-context / isolated error measured for ``block``'s element ``kind`` by a refine pass; for an
        element not measured yet, the geometric mean over the measured ones of its kind (1 before any)."""
        if (block, kind) in self.ratio:
            return self.ratio[(block, kind)]
        same = [v for (_b, k), v in self.ratio.items() if k == kind]
        return math.exp(sum(math.log(v) for v in same) / len(same)) if same else 1.0

    def _scaled(self, block: str, p: Point) -> Point:
        kind = p.edits[0][2] if p.edits and p.edits[0][0] == "block" else "width"
        s = self._scale(block, kind)
        return p if s == 1.0 else Point(p.saving, p.cost * s, p.edits, p.raw * s)

    def _block_points(self, menu: Menu) -> list[Point]:
        """A block menu's points at their in-context scale (after a refine pass)."""
        return [self._scaled(menu.key, p) for p in menu.points]

    # --- local probes: a block's own error, scaled to the output by its gain --------------------------
    def _measure_gain(self, slot: BlockSlot, frac: float) -> None:
        """One global probe of ``slot``'s width cut at ``frac`` in the current context, against the same
        cut's local error: their ratio turns the block's local errors into output error for this pass
        (how much the blocks after it amplify or absorb what it changes). No gain (global probes for the
        block's groups) when the block cannot be scored locally or either error is not positive."""
        self.gains.pop(slot.path, None)
        groups = self._width_groups(slot)
        if not (self.local and groups and self.ev.can_local(slot)):
            return
        edits = self._width_edits(groups, frac)
        if self._saving(edits) <= 0:
            return
        glob, loc = self._probe(edits), self._local_probe(slot.path, edits)
        if glob > 1e-12 and loc > 1e-12:
            self.gains[slot.path] = glob / loc

    def _local_probe(self, block: str, edits: tuple[Edit, ...] = ()) -> float:
        """``block``'s own error with ``edits`` applied to the current state (its local error)."""
        undo = self._set(edits)
        try:
            self.local_probes += 1
            return self.ev.local_error(block)
        finally:
            self._undo(undo)

    def _group_cost(self, g: UnitGroup, edits: tuple[Edit, ...]) -> float:
        """Error increase of a group probe: its block's local error times the block's gain when the block
        has one (local probes), else a global probe in the current context."""
        gain = self.gains.get(g.block)
        return self._probe(edits) if gain is None else gain * self._local_probe(g.block, edits)

    # --- level 2: group menus, block budgets -------------------------------------------------------
    def _group_points(self, g: UnitGroup, frac: float) -> list[Point]:
        pts = []
        for pol in self._policies(g):
            merge = pol == "merge_experts"
            sizes = {g.max_removed()}
            if self.depth >= 3:
                sizes.add(self._removal(g, frac))
            measured = []
            for n in sorted(s for s in sizes if s > 0):
                edits = (("group", g.path, n, merge),)
                x = self._saving(edits)
                if x <= 0:
                    continue
                c = max(self._group_cost(g, edits), 0.0)
                measured.append((n, x, c))
                pts.append(Point(x, self._prior(pol) * c, edits, c))
            if self.depth >= 3 and measured:  # chunk steps between the measured points (linear in between)
                anchors = [(0, 0.0, 0.0)] + measured
                step = max(1, round(g.count / self.chunks))
                for n in range(step, g.max_removed(), step):
                    n = g.floor_removed(n)
                    if n <= 0 or any(n == a[0] for a in anchors):
                        continue
                    lo = max((a for a in anchors if a[0] < n), key=lambda a: a[0])
                    hi = min((a for a in anchors if a[0] > n), key=lambda a: a[0], default=None)
                    if hi is None:
                        continue
                    edits = (("group", g.path, n, merge),)
                    x = self._saving(edits)
                    t = (n - lo[0]) / (hi[0] - lo[0])
                    c = lo[2] + t * (hi[2] - lo[2])
                    pts.append(Point(x, self._prior(pol) * c, edits, c))
        return pts

    def _width_curve(self, groups: list[UnitGroup], frac: float, cache: dict[str, list[Point]]) -> list[Point]:
        """A block's width states: its groups' hulls merged cheapest-per-saving first (each vertex one
        assignment of every group). Experts that merge lock their MoE's routed channels, so a block
        with both is merged twice: once without merge points, once with merges and no routed channels."""
        for g in groups:
            if g.path not in cache:
                cache[g.path] = self._group_points(g, frac)

        def merged(menus: list[Menu]) -> list[Point]:
            hulls = [(m.key, m.hull()) for m in menus]
            segs = sorted(((h[j].cost - h[j - 1].cost) / (h[j].saving - h[j - 1].saving), k, j)
                          for k, h in hulls for j in range(1, len(h)))
            at = {k: h[0] for k, h in hulls}
            out = []
            for _s, k, j in segs:
                at[k] = dict(hulls)[k][j]
                # "sum" (the default) adds the groups' own savings, which overstates a state that prunes an MoE's
                # experts and cuts their routed channels (the pruned experts take those channels with them); the
                # measured fill closes what the pass leaves below the target. "state" counts the saving on the
                # state. Neither wins everywhere (docs/tmp.md §8, reports/tmp-search/width-probes.md)
                edits = tuple(e for p in at.values() for e in p.edits)
                saving = self._saving(edits) if self.width_savings == "state" else sum(p.saving for p in at.values())
                out.append(Point(saving, sum(p.cost for p in at.values()), edits, sum(p.raw for p in at.values())))
            return out

        variants = []
        locked = {g.link.path for g in groups if g.kind == "experts" and g.link is not None and g.link.experts}
        plain = [Menu(g.path, [p for p in cache[g.path] if not p.edits[0][3]]) for g in groups]
        variants.append(merged(plain))
        if any(p.edits[0][3] for g in groups for p in cache[g.path]):
            with_merge = [Menu(g.path, [p for p in cache[g.path] if p.edits[0][3] or g.kind != "experts"])
                          for g in groups if g.path not in locked]
            variants.append(merged(with_merge))
        return [p for v in variants for p in v]

    # --- the search --------------------------------------------------------------------------------
    def run(self) -> None:
        a = self.alloc
        self.base = self._ctx = self.ev.current()
        need = a.gap()
        if need <= 0.5 * a.tolerance:
            return
        width_top = sum(g.delta(g.max_removed(), a.kind) for b in a.blocks.values() for g in self._groups(b))
        frac0 = min(1.0, max(0.0, need / width_top)) if width_top > 0 else 0.0
        stages = self._stages()
        self.ev.phase = "level 1"
        block_menus = {b: self._block_menu(a.blocks[b], frac0) for blocks in stages.values() for b in blocks}
        group_cache: dict[str, list[Point]] = {}
        best: tuple[float, dict] | None = None
        for rnd in range(self.refine + 1):
            self._reset()
            self.ev.phase = "level 2"
            additive = self._allocate(stages, block_menus, group_cache, need)
            self.ev.phase = "refine"
            err = self.ev.error() - self.base
            rnd_info = {"additive_error": additive, "measured_error": err}
            score = err
            if self.ev.screens:  # screened passes are compared on every input (global confirmation)
                with self.ev.confirm():
                    score = rnd_info["confirmed_error"] = self.ev.error()
            self.rounds.append(rnd_info)
            if best is None or score < best[0]:
                best = (score, self._snapshot())
            # re-measure every chosen element in context (the error with it minus without it, everything
            # else chosen) and allocate again when that differs from its isolated cost: two neighbouring
            # linear maps, or a width cut next to one, cost more together than alone
            if rnd == self.refine or not self._picked:
                break
            changed = False
            for block, (kind, isolated) in self._picked.items():
                if isolated <= 1e-12:
                    continue
                undo = self._without(block, kind)
                without = self.ev.error() - self.base
                self._undo(undo)
                ratio = min(50.0, max(0.2, (err - without) / isolated))
                old = self.ratio.get((block, kind), 1.0)
                changed |= abs(ratio - old) > 0.1 * old
                self.ratio[(block, kind)] = ratio
            if not changed:
                break
        self._restore(best[1])
        self.ev.phase = "fill"
        self.ev.accepted(None)  # the fill prices chunks against the restored state's own error
        if self.fill != "curves":
            self._measured_fill(group_cache)
        self._fine_fill(group_cache)
        self.ev.accepted(None)

    def _measured_fill(self, group_cache: dict[str, list[Point]], shortlist: int = 4) -> None:
        """Close most of what the menus leave below the target in chunk steps chosen by measurement in
        the chosen state: the ``shortlist`` cheapest groups by their probed curves are each measured
        with one more chunk, and the cheapest per saving measured goes. Probes were taken alone; here a
        group is priced next to the block policies and cuts around it (a width cut right after a
        linear-mapped block costs more than alone).

        With ``fill="lazy"`` a measured cost is kept while its own block is unchanged: a chunk's cost
        depends mostly on its block (the flat greedy's re-scoring rule, docs/tmp.md §4b), so only the
        accepted group's block is re-measured, and every cost is dropped each ``rescore_every`` acceptances."""
        a = self.alloc
        half = 0.5 * a.tolerance
        lazy = self.fill == "lazy"
        kept: dict[tuple[str, int, int], tuple[float, int]] = {}  # (group, removed, chunk) -> (cost, block version)
        version: dict[str, int] = {}  # block -> acceptances in it so far
        since = 0
        for _ in range(64):
            gap = a.gap()
            cands = []
            for path in group_cache:
                g = a.groups[path]
                if a.blocks[g.block].mode is not None or g.step_down() is None:
                    continue
                chunk = max(1, round(g.count / self.chunks))
                n = g.floor_removed(g.removed + chunk) - g.removed or g.step_down() or 0
                while n > 0 and g.delta(n, a.kind) > gap + half:  # a chunk shrunk to fit the gap
                    n = g.floor_removed(g.removed + n - 1) - g.removed
                if n <= 0:
                    continue
                x = g.delta(n, a.kind)
                predicted = self._curve_cost(group_cache[path], g, g.removed + n) - self._curve_cost(group_cache[path], g, g.removed)
                cands.append((predicted / x, path, n, x))
            if gap <= max(half, 0.0) or not cands:
                return
            cands.sort()
            base = None  # the state's global error, measured only when a candidate is scored globally
            best = None
            for _p, path, n, x in cands[:shortlist]:
                g = a.groups[path]
                gain = self.gains.get(g.block)
                hit = kept.get((path, g.removed, n)) if lazy else None
                fresh = hit is None or hit[1] != version.get(g.block, 0)
                if not fresh:
                    cost = hit[0]
                elif gain is not None:  # local probes: the block's own error before and after, times its gain
                    edits = (("group", path, g.removed + n, g.merge),)
                    cost = gain * (self._local_probe(g.block, edits) - self._local_probe(g.block))
                else:
                    base = self.ev.current() if base is None else base
                    g.removed += n
                    self.probes += 1
                    cost = self.ev.error() - base
                    g.removed -= n
                if lazy and fresh:
                    kept[(path, g.removed, n)] = (cost, version.get(g.block, 0))
                key = self.mix.get("merge_experts" if g.merge else UNIT_POLICIES[g.kind][0], 1.0) * max(cost, 0.0) / x
                if best is None or key < best[0]:
                    best = (key, g, n, base + cost if fresh and gain is None else None)
            _, g, n, after = best
            g.removed += n
            self.ev.accepted(after)
            self._touched.append(g.path)
            version[g.block] = version.get(g.block, 0) + 1
            since += 1
            if since >= self.rescore_every:
                kept.clear()
                since = 0

    @staticmethod
    def _curve_cost(points: list[Point], g: UnitGroup, n: int) -> float:
        """Probed error of ``g`` at ``n`` removed (its own policy), linear between probes and beyond the last."""
        pts = [(0, 0.0)] + sorted({(p.edits[0][2], p.raw) for p in points if p.edits[0][3] == g.merge})
        if len(pts) == 1:
            return 0.0
        for (n0, c0), (n1, c1) in zip(pts, pts[1:]):
            if n <= n1:
                return c0 + (n - n0) / max(n1 - n0, 1) * (c1 - c0)
        (n0, c0), (n1, c1) = pts[-2], pts[-1]
        return c1 + (n - n1) / max(n1 - n0, 1) * (c1 - c0)

    def _fine_fill(self, group_cache: dict[str, list[Point]]) -> None:
        """Close the gap the menus' chunk steps leave with single valid steps, cheapest per saving
        first by the probed group curves (linear between probes, the last slope beyond), so the
        shared landing (:meth:`Allocation.settle`) has only rounding left to do."""
        a = self.alloc
        curves = [path for path, pts in group_cache.items()
                  if a.blocks[a.groups[path].block].mode is None and any(p.edits[0][3] == a.groups[path].merge for p in pts)]

        def cost_at(path: str, n: int) -> float:
            return self._curve_cost(group_cache[path], a.groups[path], n)

        half = 0.5 * a.tolerance
        for _ in range(10_000):
            gap = a.gap()
            if abs(gap) <= half:
                break
            best = None
            for path in curves:
                g = a.groups[path]
                if a.blocks[g.block].mode is not None:
                    continue
                n = g.step_down() if gap > 0 else (g.step_up() if g.removed else None)
                if not n:
                    continue
                n = n if gap > 0 else -n
                dx = g.delta(n, a.kind)
                if dx == 0 or (gap < 0 and gap + abs(dx) > half):
                    continue
                slope = (cost_at(path, g.removed + n) - cost_at(path, g.removed)) / dx
                key = slope * self.mix.get("merge_experts" if g.merge else UNIT_POLICIES[g.kind][0], 1.0)
                if gap < 0:
                    key = -key  # restore where a unit costs most
                if best is None or key < best[0]:
                    best = (key, g, n)
            if best is None:
                if gap < 0 and self._undo_block(gap):
                    continue  # a block action overshot: take it back and let the width close the gap
                break
            best[1].removed += best[2]
            if best[2] > 0:
                self._touched.append(best[1].path)

    def _allocate(self, stages: dict[str, list[str]], block_menus: dict[str, Menu],
                  group_cache: dict[str, list[Point]], need: float) -> float:
        """One top-down pass from the unpruned state; returns the additive (predicted) error."""
        a = self.alloc
        # level 1: block menus -> stage budgets
        chosen = allocate_menus([Menu(k, self._block_points(m)) for k, m in block_menus.items()], need)
        for stage, blocks in stages.items():
            self.stage_budgets[stage] = sum(chosen[b].saving for b in blocks)
        # level 2: within each stage, group menus -> block budgets and (level 3) group budgets
        additive = 0.0
        self._touched = []
        self.block_budgets = {}
        self._picked = {}
        # later stages first: a stage's probes then see the cuts chosen after it (how its error is carried
        # to the output), while the blocks before it stay untouched, so block-local replay still applies
        group_cache.clear()
        for stage, blocks in reversed(list(stages.items())):
            budget = self.stage_budgets[stage]
            if budget <= 0:
                continue
            in_context = any(slot.mode is not None for slot in a.blocks.values()) or any(
                g.removed for g in a.groups.values())
            self._ctx = self.ev.error() if in_context else self.base
            width_room = sum(g.delta(g.max_removed(), a.kind) for b in blocks for g in self._groups(a.blocks[b]))
            frac = min(1.0, budget / width_room) if width_room > 0 else 0.0
            menus = []
            for b in blocks:
                slot = a.blocks[b]
                self._measure_gain(slot, frac)  # before the block's group probes, which it scales
                menu = Menu(b)
                for p0 in block_menus[b].points:  # block policies, probed again in the downstream context
                    if not (p0.edits and p0.edits[0][0] == "block"):
                        continue
                    c = self._probe(p0.edits) if in_context else p0.raw
                    menu.points.append(self._scaled(b, Point(p0.saving, self._prior(p0.edits[0][2]) * max(c, 0.0),
                                                             p0.edits, c)))
                groups = self._groups(slot)
                if groups:
                    menu.points.extend(self._scaled(b, p) for p in self._width_curve(groups, frac, group_cache))
                menus.append(menu)
            picked = allocate_menus(menus, budget)
            for b, point in picked.items():
                self.block_budgets[b] = point.saving
                self._set(point.edits)
                additive += point.raw
                if point.edits:
                    kind = point.edits[0][2] if point.edits[0][0] == "block" else "width"
                    self._picked[b] = (kind, point.raw / self._scale(b, kind))
                if point.edits:
                    self.accepted += 1
                self._touched.extend(e[1] for e in point.edits if e[0] == "group" and e[2] > 0)
        self._ctx = self.base
        return additive

    def _without(self, block: str, kind: str) -> list[tuple]:
        """Take ``block``'s chosen element out of the state (its block policy, or its width cuts)."""
        if kind != "width":
            return self._set((("block", block, None),))
        return self._set(tuple(("group", p, 0, False) for p in self.alloc.blocks[block].groups
                               if self.alloc.groups[p].removed))

    def _reset(self) -> None:
        for slot in self.alloc.blocks.values():
            slot.mode = None
        for g in self.alloc.groups.values():
            g.removed, g.merge = 0, False

    def _snapshot(self) -> dict:
        return {"blocks": {p: b.mode for p, b in self.alloc.blocks.items()},
                "groups": {p: (g.removed, g.merge) for p, g in self.alloc.groups.items()},
                "touched": list(self._touched), "stages": dict(self.stage_budgets), "block_budgets": dict(self.block_budgets),
                "gains": dict(self.gains)}

    def _restore(self, snap: dict) -> None:
        for p, mode in snap["blocks"].items():
            self.alloc.blocks[p].mode = mode
        for p, (n, merge) in snap["groups"].items():
            self.alloc.groups[p].removed, self.alloc.groups[p].merge = n, merge
        self._touched = snap["touched"]
        self.stage_budgets, self.block_budgets = snap["stages"], snap["block_budgets"]
        self.gains = dict(snap["gains"])

    def _undo_block(self, gap: float) -> bool:
        """Overshoot with no width to restore: weaken the smallest block action that brings the size
        back above the target (linear map instead of a drop, or no block action)."""
        a = self.alloc
        options = []
        for slot in a.blocks.values():
            if slot.mode is None:
                continue
            for mode in ("linear_replace", None):
                if mode == slot.mode or (mode == "linear_replace" and (slot.mode != "drop_block" or mode not in self._block_modes(slot))):
                    continue
                back = a.block_saving(slot) - a.block_saving(slot, mode=mode)
                if gap + back >= -0.5 * a.tolerance:
                    options.append((back, slot.path, mode))
        if not options:
            return False
        _, path, mode = min(options)
        a.blocks[path].mode = mode
        return True

    def _stages(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for stage in self.alloc.tree.root.children:
            blocks = stage.children if stage.level == "stage" else [stage]
            paths = [b.path for b in blocks if b.level == "block" and b.path in self.alloc.blocks]
            if paths:
                out[stage.path] = paths
        return out

    def touched_groups(self) -> list[str]:
        return list(dict.fromkeys(self._touched))

    def info(self) -> dict[str, Any]:
        return {
            "probes": self.probes,
            **({"local_probes": self.local_probes, "gains": {k: round(v, 4) for k, v in self.gains.items()}}
               if self.local else {}),
            "rounds": [{k: round(v, 6) for k, v in r.items()} for r in self.rounds],
            "stage_budgets": {k: round(v) for k, v in self.stage_budgets.items()},
            "block_budgets": {k: round(v) for k, v in self.block_budgets.items() if v > 0},
        }


WIDTH_SAVINGS = ("sum", "state", "best")
FILLS = ("measured", "lazy", "curves")


def savings_overlap(alloc: Allocation) -> bool:
    """Whether a width state's saving can differ from its groups' own savings added: only where an MoE's
    experts and their routed channels are both prunable (linked groups). Elsewhere "sum" and "state" give
    the same numbers (parameter or FLOP counts, added exactly), so the two searches are one."""
    return any(g.kind == "experts" and g.link is not None for g in alloc.groups.values())


def run_tree(make: Callable[[str], TreeSearch], width_savings: str) -> tuple[TreeSearch, dict[str, float]]:
    """Run the tree search (``make(count)`` builds one for a width-savings count) and return it, with the
    measured error of each run's final state when there was more than one. ``"best"`` runs it once per
    count ("sum", "state"), each from the unpruned state, and keeps the one whose final state has the lower
    error on every calibration input (docs/tmp.md §8: neither count wins on every model and budget). The
    runs share the evaluator, so the probes they have in common (all of level 1, level-2 probes in the
    same context) are scored once. Without overlapping savings (:func:`savings_overlap`) "best" runs once."""
    first = make("sum" if width_savings == "best" else width_savings)
    if width_savings != "best" or not savings_overlap(first.alloc):
        first.run()
        return first, {}
    done: list[tuple[float, TreeSearch, dict]] = []
    errors: dict[str, float] = {}
    for count in ("sum", "state"):
        search = first if count == "sum" else make(count)
        search._reset()
        search.ev.accepted(None)
        search.run()
        search.ev.accepted(None)
        with search.ev.confirm():
            errors[count] = search.ev.current()
        done.append((errors[count], search, search._snapshot()))
    _err, best, snap = min(done, key=lambda d: d[0])
    best._restore(snap)
    best.ev.accepted(None)
    return best, errors


def estimate_probes(search: TreeSearch, can_linear: bool, screens: bool = False,
                    runs: int = 1) -> tuple[list[str], int, list[str]]:
    """The blocks the search will probe, one entry per evaluation, before running it (``plan --estimate``);
    how many evaluations run on every input besides (confirmations: one per pass when the probes are
    screened on a subset, and the final measurement); and the entries of the first list a refine pass
    may not spend (its level 2 probes: when its later stages choose as before it meets the same states
    again, which the evaluator scores once).

    Level 1 probes every block's width, drop and linear map. Level 2 is counted for every stage (an upper
    bound: only stages that get a budget are probed): a measurement of its context, its blocks' policies
    again in that context, and its groups at two widths per policy. Each refine pass repeats level 2 and
    re-measures its chosen elements; the measured fill is allowed two chunks of ``shortlist`` candidates.
    Entries are block paths, "@" + a block path for a local probe (that block alone, ``local=True``), or ""
    for a measurement that touches many blocks (a full forward). The final
    measurement, and each pass's confirmation when probes are screened, are the second value."""
    a = search.alloc
    stages = search._stages()
    level1: list[str] = []
    level2: list[str] = []
    for blocks in stages.values():
        level2.append("")  # the stage's context
        for path in blocks:
            slot = a.blocks[path]
            groups = search._groups(slot)
            modes = [m for m in BLOCK_POLICIES if m in search.allowed and m in slot.policies
                     and (m != "linear_replace" or (can_linear and slot.dim))]
            has_width = bool(search._width_groups(slot))
            width = (1 if search.depth == 2 else search.width_probes) if has_width else 0
            level1.extend([path] * (width + len(modes)))
            level2.extend([path] * len(modes))
            local = search.local and has_width
            if local:  # the block's gain: its width cut probed globally, and the same cut's local error
                level2.extend([path, "@" + path])
            for g in groups:
                for _pol in search._policies(g):
                    sizes = {g.max_removed()}
                    if search.depth >= 3:
                        sizes.add(search._removal(g, 0.5))
                    level2.extend(("@" + path if local else path) for n in sizes if n > 0)
    passes = search.refine + 1
    chosen = len(a.blocks)  # refine: every block's chosen element, at most
    # ``runs`` > 1 (width_savings="best"): level 1 is shared, the rest is counted once per run, and each run's
    # final state is measured (an estimate: the runs' level-2 probes in the same context are scored once)
    fill = 0 if search.fill == "curves" else 2 * 4
    screened = level1 + (level2 * passes + [""] * (passes + search.refine * chosen + fill)) * runs
    return screened, (passes if screens else 0) * runs + runs, level2 * search.refine * runs
