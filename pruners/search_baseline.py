"""Best-of-N: a compute-matched, non-uniform, global search baseline for TMP (docs/tmp.md section 7).

It answers the referee's question "does TMP's tree structure help, or only its compute?". It mixes
the same policies TMP mixes (block drop, linear map, heads, channels, experts pruned or merged, as
the tree admits them), scores every candidate with the SAME masked output error on the SAME
calibration inputs (:class:`pruners.tmp_search.MeasuredEvaluator`, block-local replay included)
and may spend as many denoiser forward-equivalents as TMP does; only the structure of the search
differs: no tree, no probes, no knapsack, just random plans and keep the best.

Each candidate plan is drawn at random (seeded) and landed on the exact budget with the shared
procedures of :mod:`pruners.allocate`:

1. a random share of the needed saving goes to block policies (random blocks, each dropped or
   replaced by its fitted linear map, while the share is not exceeded);
2. each MoE's experts are merged rather than pruned with a per-plan probability (a merged MoE keeps
   its routed channels whole, as in TMP);
3. every remaining unit group gets a random width weight ``w_g = exp(s * (z_g + z_kind))``
   (``z ~ N(0, 1)``, the spread ``s ~ U(0, spread)`` drawn per plan, so some plans are near-uniform
   and some very uneven); one scale ``c`` is bisected so that removing ``min(1, c * w_g)`` of each
   group's units lands just above the target, and :meth:`Allocation.settle` lands it exactly.

Plan 0 is the uniform anchor (no blocks, no merges, one share of every group). Units within a group
leave in the order of TMP's within-component scorer (activation norms, REAP saliency for experts).
Sampling stops when the forward-equivalents spent (scorer passes + evaluator, counted as TMP counts
them) reach ``forward_budget`` (default ``"tmp"``: TMP's own estimate at this budget, known before either
search runs; not a bound on what TMP spends, see docs/tmp.md) or after ``n_plans`` plans, whichever comes first.
"""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, ClassVar

import torch
from torch import nn

from pruners.allocate import Allocation, UnitGroup, bisect_scale
from pruners.base import Pruner
from pruners.importance import is_meta
from pruners.tmp import TMPPruner
from pruners.tmp_search import BLOCK_POLICIES, MeasuredEvaluator, order_units
from tmpbench.errors import TmpbenchError
from tmpbench.pruning.calibration import WEIGHTINGS
from tmpbench.pruning.tree import UnitTree

BISECTION_STEPS = 40
MAX_REJECTS = 200  # consecutive draws that cannot land (or repeat a plan) before the pruner gives up


class BestOfNPruner(Pruner):
    """Best of N random mixed plans scored by TMP's masked output error, at TMP's compute (module docstring)."""

    name: ClassVar[str] = "best-of-n"
    needs_calibration: ClassVar[bool] = True
    data_free_fallback: ClassVar[bool] = False
    description: ClassVar[str] = "best of random mixed plans (per-layer widths, blocks, merges) by TMP's masked error, TMP's compute"
    SETTINGS: ClassVar[dict[str, Any]] = {
        "forward_budget": "tmp",
        "n_plans": None,
        "spread": 1.5,
        "max_calib_inputs": 16,
        "timestep_weighting": "uniform",
        "round_to": None,
    }

    def _validate_settings(self) -> None:
        super()._validate_settings()
        s = self._settings
        fb = s["forward_budget"]
        if fb is not None and fb != "tmp" and (isinstance(fb, bool) or not isinstance(fb, (int, float))
                                               or not math.isfinite(fb) or fb <= 0):
            raise TmpbenchError(f"pruner 'best-of-n': forward_budget={fb!r} must be a positive number of denoiser "
                                "forward-equivalents, 'tmp' (TMP's estimate at this budget) or None")
        n = s["n_plans"]
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise TmpbenchError(f"pruner 'best-of-n': n_plans={n!r} must be an integer >= 1 or None")
        if fb is None and n is None:
            raise TmpbenchError("pruner 'best-of-n': forward_budget and n_plans are both None; set one of them "
                                "(e.g. forward_budget=1000 or n_plans=50)")
        m = s["max_calib_inputs"]
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise TmpbenchError(f"pruner 'best-of-n': max_calib_inputs={m!r} must be an integer >= 1")
        sp = s["spread"]
        if isinstance(sp, bool) or not isinstance(sp, (int, float)) or not math.isfinite(sp) or sp < 0:
            raise TmpbenchError(f"pruner 'best-of-n': spread={sp!r} must be a number >= 0 (0: uniform width shares)")
        if s["timestep_weighting"] not in WEIGHTINGS:
            raise TmpbenchError(f"pruner 'best-of-n': timestep_weighting={s['timestep_weighting']!r}; use one of {list(WEIGHTINGS)}")

    # --- the search --------------------------------------------------------------------------------
    def _allocate(self, model: nn.Module, tree: UnitTree, alloc: Allocation, calibration: Any) -> dict:
        if is_meta(model):
            raise TmpbenchError("pruner 'best-of-n' measures every plan on calibration data and a meta model has no "
                                "weights; run it on a loaded model (or plan --meta with tmp, magnitude or random)")
        start = time.perf_counter()
        calib = calibration.subset(self._settings["max_calib_inputs"])
        allowed = {p for n in tree.walk() for p in n.policies}
        forward_budget = self._settings["forward_budget"]
        source = "setting"
        if forward_budget == "tmp":
            tmp = TMPPruner(max_calib_inputs=self._settings["max_calib_inputs"], round_to=self._settings["round_to"])
            forward_budget = tmp.estimate(tree, alloc.budget, len(calib))["forward_equivalents"]
            source = "tmp_estimate"
        scorer_forwards = order_units(model, tree, alloc, calib)
        evaluator = MeasuredEvaluator(model, alloc, calib, allowed, self._settings["timestep_weighting"])
        sampler = PlanSampler(alloc, allowed, evaluator.can_linear, self._settings["spread"], self.seed)

        def spent() -> float:
            return evaluator.forward_equivalents + scorer_forwards

        n_plans = self._settings["n_plans"]
        errors: list[float] = []
        seen: set[tuple] = set()
        best: tuple[float, int, tuple] | None = None
        rejected = duplicates = streak = draws = 0
        uniform_error = None
        while n_plans is None or len(errors) < n_plans:
            if errors and forward_budget is not None and spent() >= forward_budget:
                break
            draws += 1
            if not sampler.draw(draws - 1):
                rejected += 1
                streak += 1
            else:
                state = snapshot(alloc)
                if state in seen:
                    duplicates += 1
                    streak += 1
                else:
                    streak = 0
                    seen.add(state)
                    err = evaluator.error()
                    if draws == 1:
                        uniform_error = err
                    if best is None or err < best[0]:
                        best = (err, len(errors), state)
                    errors.append(err)
            if streak >= MAX_REJECTS:
                if not errors:
                    alloc.raise_miss("best-of-n (no random plan landed)")
                break
        assert best is not None
        restore(alloc, best[2])
        alloc.linear_fit_inputs = len(calib)  # surgery fits its linear maps on the search's inputs
        search_info = {
            "search": "best_of_n",
            "evaluator": evaluator.name,
            "unit_scorer": "activation+reap" if any(g.kind == "experts" for g in alloc.groups.values()) else "activation",
            "policies_used": sorted(allowed),
            "forward_budget": forward_budget,
            "forward_budget_source": source,
            "plans_tried": len(errors),
            "draws_rejected": rejected,
            "draws_duplicate": duplicates,
            "evaluations": evaluator.evaluations,
            "forward_equivalents": round(spent(), 2),
            "best_plan": best[1],
            "best_error": best[0],
            "median_error": statistics.median(errors),
            "uniform_error": uniform_error,  # plan 0, the uniform anchor (None: it cannot land)
            "final_error": best[0],
            "predicted_error": best[0],
            "calib_inputs": len(calib),
            "timestep_weighting": self._settings["timestep_weighting"],
            "seconds": round(time.perf_counter() - start, 3),
        }
        return {"search": search_info}


def snapshot(alloc: Allocation) -> tuple:
    """The allocation's decisions as a hashable value (block modes, then each group's removals and merge)."""
    return (tuple(b.mode for b in alloc.blocks.values()),
            tuple((g.removed, g.merge) for g in alloc.groups.values()))


def restore(alloc: Allocation, state: tuple) -> None:
    modes, groups = state
    for b, mode in zip(alloc.blocks.values(), modes):
        b.mode = mode
    for g, (removed, merge) in zip(alloc.groups.values(), groups):
        g.removed, g.merge = removed, merge


class PlanSampler:
    """Draws random mixed plans on an Allocation and lands each on its budget (module docstring)."""

    def __init__(self, alloc: Allocation, allowed: set[str], can_linear: Any, spread: float, seed: int) -> None:
        self.alloc = alloc
        self.spread = float(spread)
        self.gen = torch.Generator().manual_seed(seed)
        self.block_modes = {b.path: [m for m in BLOCK_POLICIES if m in allowed and m in b.policies
                                     and (m != "linear_replace" or can_linear(b))] for b in alloc.main_blocks}
        self.width = [g for g in alloc.groups.values() if any(p in allowed for p in g.policies)]
        # expert groups that may merge: True when they may also be pruned (then a coin decides), False: merge only
        self.mergeable = {g.path: "prune_experts" in g.policies and "prune_experts" in allowed for g in self.width
                          if g.kind == "experts" and "merge_experts" in g.policies and "merge_experts" in allowed}
        self.kinds = sorted({g.kind for g in self.width})

    def _uniform(self) -> float:
        return float(torch.rand((), generator=self.gen))

    def _reset(self) -> None:
        for b in self.alloc.blocks.values():
            b.mode = None
        for g in self.alloc.groups.values():
            g.removed, g.merge = 0, False

    def draw(self, index: int) -> bool:
        """Draw plan ``index`` (0: the uniform anchor) and land it; False when it cannot land."""
        a = self.alloc
        self._reset()
        anchor = index == 0
        if not anchor:
            self._draw_blocks(self._uniform() * a.gap())
        q = 0.0 if anchor else self._uniform()  # the anchor merges only where pruning is not admitted
        for path, prunable in self.mergeable.items():
            a.groups[path].merge = not prunable or self._uniform() < q
        pool = [g for g in self.width if a.blocks[g.block].mode is None
                and not (g.experts and g.link is not None and g.link.merge)]  # a merged MoE keeps its channels
        if not pool:
            return a.landed()
        spread = 0.0 if anchor else self._uniform() * self.spread
        z_kind = {k: float(torch.randn((), generator=self.gen)) for k in self.kinds}
        z = torch.randn(len(pool), generator=self.gen).tolist()
        weights = [math.exp(spread * (zi + z_kind[g.kind])) for g, zi in zip(pool, z)]
        self._fill(pool, weights)
        if not a.settle(pool, prefer="score", require=False):
            return False
        return a.landed()

    def _draw_blocks(self, share: float) -> None:
        """Random blocks, each with a random admitted block policy, while their saving stays within ``share``."""
        a = self.alloc
        paths = [p for p, modes in self.block_modes.items() if modes]
        used = 0.0
        for i in torch.randperm(len(paths), generator=self.gen).tolist():
            slot = a.blocks[paths[i]]
            modes = self.block_modes[slot.path]
            mode = modes[int(torch.randint(len(modes), (), generator=self.gen))]
            saving = a.block_saving(slot, mode=mode)
            if used + saving <= share:
                slot.mode = mode
                used += saving

    def _fill(self, pool: list[UnitGroup], weights: list[float]) -> None:
        """Bisect one scale ``c`` so that removing ``min(1, c * w_g)`` of each group lands just above the target."""
        a = self.alloc

        def apply(c: float) -> float:
            for g, w in zip(pool, weights):
                g.removed = g.floor_removed(int(min(1.0, c * w) * g.count + 1e-9))
            return a.size()

        bisect_scale(apply, 1.0 / min(weights), a.target, BISECTION_STEPS)  # a miss: settle reports it
