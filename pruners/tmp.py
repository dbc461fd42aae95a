"""TMP: Tree-structured Mixed-policy Pruning (our reading; design note in docs/tmp.md).

The model is its unit tree (model > stage > block > component > unit group). Six policies are
mixed across that tree under ONE budget: drop a block, replace a block by a fitted linear map,
prune heads, prune FFN / shared-expert channels, prune experts, merge experts.

1. **Cost = quality lost, measured as a mask.** With calibration, a state's cost is the denoiser's
   relative output error ``E_t ||f(x_t) - f_S(x_t)||^2 / ||f(x_t)||^2`` over inputs captured along the
   teacher's own sampling trajectory (every timestep; optionally weighted), measured with hooks and
   swaps that mimic the cut exactly (:func:`pruners.importance.apply_masks`); blocks before the
   first touched one are replayed from the teacher's records. Without calibration (meta size) a
   data-free proxy stands in (:mod:`pruners.tmp_search`).
2. **Allocation down the tree** (``search="tree"``, the default, :mod:`pruners.tmp_tree`): stage
   budgets from probed block sensitivities, block budgets from probed component sensitivities,
   component budgets from the chosen width states, each level a multiple-choice knapsack over
   convex menus with the policies' priors. ``search="flat"`` (:class:`pruners.tmp_search.FlatSearch`)
   is the ablation row: one greedy over every action of the tree with re-scoring.
3. **Nested depth.** ``tree_depth=1``: block policies; ``2``: + whole components cut to their
   constraint minimum; ``3``/``"max"``: + fractional widths in ``1/chunks`` steps.
4. **Final fine adjustment** (:meth:`pruners.allocate.Allocation.settle`): single units removed or
   restored until the size is within the 0.5% tolerance (at ``tree_depth=1``: block policy swaps).

One code path serves DiT and MoE: only the tree's nodes, policies and constraints are read.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

from torch import nn

from pruners.allocate import UNIT_POLICY, Allocation
from pruners.base import Pruner
from pruners.importance import expert_similarity, is_meta, weight_magnitude
from pruners.tmp_search import (
    BLOCK_POLICIES,
    DEPTH_POLICIES,
    Action,
    Evaluator,
    FlatSearch,
    MeasuredEvaluator,
    ProxyEvaluator,
    SearchProgress,
    order_units,
)
from pruners.tmp_tree import FILLS, WIDTH_SAVINGS, TreeSearch, estimate_probes, run_tree, savings_overlap
from tmpbench.errors import TmpbenchError, did_you_mean
from tmpbench.pruning.calibration import WEIGHTINGS
from tmpbench.pruning.tree import POLICIES, UnitTree

__all__ = ["Action", "TMPPruner", "parse_depth", "parse_policy_mix"]
SEARCHES = ("tree", "flat")

def parse_depth(value: Any) -> int:
    if value in ("max", None):
        return 3
    try:
        depth = int(value)
    except (TypeError, ValueError):
        depth = -1
    if depth not in (1, 2, 3) or isinstance(value, bool):
        raise TmpbenchError(f"pruner 'tmp': tree_depth={value!r} must be 1 (blocks), 2 (+components), 3 (+units) or 'max'")
    return depth


def parse_policy_mix(value: Any) -> dict[str, float]:
    """None -> every policy with prior 1; a list/comma string -> those with prior 1; a dict -> priors."""
    if value is None:
        return {p: 1.0 for p in POLICIES}
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)):
        value = {p: 1.0 for p in value}
    if not isinstance(value, dict) or not value:
        raise TmpbenchError(f"pruner 'tmp': policy_mix={value!r} must be a list of policies or a {{policy: prior}} mapping")
    out = {}
    for p, w in value.items():
        if p not in POLICIES:
            hint = did_you_mean(str(p), POLICIES, n=1, cutoff=0.6) or f"; policies: {', '.join(POLICIES)}"
            raise TmpbenchError(f"pruner 'tmp': unknown policy {p!r} in policy_mix{hint}")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w <= 0:
            raise TmpbenchError(f"pruner 'tmp': prior of {p!r} in policy_mix must be a positive number, got {w!r}")
        out[p] = float(w)
    return out


class TMPPruner(Pruner):
    """Tree-structured Mixed-policy Pruning (see the module docstring and docs/tmp.md)."""

    name: ClassVar[str] = "tmp"
    needs_calibration: ClassVar[bool] = True
    data_free_fallback: ClassVar[bool] = True
    description: ClassVar[str] = "tree search mixing drop/linear-map/heads/channels/experts/merge under one budget"
    SETTINGS: ClassVar[dict[str, Any]] = {
        "search": "tree",
        "tree_depth": "max",
        "policy_mix": None,
        "chunks": 8,
        "rescore_every": 8,
        "timestep_weighting": "uniform",
        "max_calib_inputs": 16,
        "round_to": None,
        "block_local": True,
        "refine": 1,
        "screen_inputs": None,
        "local_probes": False,
        "width_probes": 1,
        "width_savings": "sum",
        "fill": "lazy",  # "measured" before session 12: the same plans in 22 of 24 (cell, draw) pairs, ties in two
    }
    # the defaults prune-cache keys are relative to (Pruner.KEYED_DEFAULTS): when a default above changes, its
    # old value stays here, so plans made under it are keyed apart from plans made under the new one
    KEYED_DEFAULTS: ClassVar[dict[str, Any]] = {
        "search": "tree", "tree_depth": "max", "policy_mix": None, "chunks": 8, "rescore_every": 8,
        "timestep_weighting": "uniform", "max_calib_inputs": 16, "round_to": None, "block_local": True, "refine": 1,
        "screen_inputs": None, "local_probes": False, "width_probes": 1, "width_savings": "sum", "fill": "measured",
    }

    def _validate_settings(self) -> None:
        super()._validate_settings()
        s = self._settings
        self.depth = parse_depth(s["tree_depth"])
        self.mix = parse_policy_mix(s["policy_mix"])
        for key, lo in (("chunks", 1), ("rescore_every", 1), ("max_calib_inputs", 1), ("refine", 0), ("width_probes", 1)):
            v = s[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise TmpbenchError(f"pruner 'tmp': {key}={v!r} must be an integer >= {lo}")
        v = s["screen_inputs"]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise TmpbenchError(f"pruner 'tmp': screen_inputs={v!r} must be an integer >= 1 (probes scored on that many "
                                "calibration inputs, candidates confirmed on all) or None (every probe on all inputs)")
        if s["search"] not in SEARCHES:
            raise TmpbenchError(f"pruner 'tmp': search={s['search']!r}; use one of {list(SEARCHES)} (tree: top-down, flat: one greedy)")
        for key in ("block_local", "local_probes"):
            if not isinstance(s[key], bool):
                raise TmpbenchError(f"pruner 'tmp': {key}={s[key]!r} must be true or false")
        if s["local_probes"] and (s["search"] != "tree" or not s["block_local"]):
            raise TmpbenchError("pruner 'tmp': local_probes=true scores the tree search's group probes on their own block's "
                                "replayed inputs; it needs search=tree and block_local=true")
        if s["width_savings"] not in WIDTH_SAVINGS:
            raise TmpbenchError(f"pruner 'tmp': width_savings={s['width_savings']!r}; use 'sum' (a width state saves what its "
                                "groups save alone), 'state' (what the state saves: an MoE's pruned experts take their channels) "
                                "or 'best' (the search under both, the lower measured error kept)")
        if s["fill"] not in FILLS:
            raise TmpbenchError(f"pruner 'tmp': fill={s['fill']!r}; use 'measured' (the tree search's fill scores its "
                                "shortlist in the chosen state at every step), 'lazy' (a measured cost is kept until its "
                                "block changes) or 'curves' (no measured fill: the probed curves alone)")
        if s["timestep_weighting"] not in WEIGHTINGS:
            raise TmpbenchError(f"pruner 'tmp': timestep_weighting={s['timestep_weighting']!r}; use one of {list(WEIGHTINGS)}")
        if not set(self.mix) & DEPTH_POLICIES[self.depth]:
            raise TmpbenchError(
                f"pruner 'tmp': policy_mix {sorted(self.mix)} has no policy usable at tree_depth={self.depth} "
                f"(it allows {sorted(DEPTH_POLICIES[self.depth])})"
            )

    # --- policies the tree admits ------------------------------------------------------------------
    def _allowed(self, tree: UnitTree) -> set[str]:
        admitted = {p for n in tree.walk() for p in n.policies}
        if self._settings["policy_mix"] is not None:
            missing = sorted(set(self.mix) - admitted)
            if missing:
                kind = "an MoE model" if any(n.kind == "moe" for n in tree.walk()) else "a dense DiT"
                raise TmpbenchError(
                    f"pruner 'tmp': policy {missing[0]!r} is not admitted by {tree.model_class} ({kind}); "
                    f"it admits: {', '.join(p for p in POLICIES if p in admitted)}"
                )
        return set(self.mix) & admitted & DEPTH_POLICIES[self.depth]

    # --- the search --------------------------------------------------------------------------------
    def _allocate(self, model: nn.Module, tree: UnitTree, alloc: Allocation, calibration: Any) -> dict:
        calib = calibration.subset(self._settings["max_calib_inputs"]) if calibration is not None else None
        if not (self.progress and calib is not None and not is_meta(model)):
            return self._search(model, tree, alloc, calib, None)
        # a measured search shows a bar in forward-equivalents against what --estimate predicts for it
        # (the flat greedy has no estimate: its bar counts without a total)
        search = self._settings["search"]
        total = self.estimate(tree, alloc.budget, len(calib))["forward_equivalents"] if search == "tree" else None
        with SearchProgress(total, f"tmp {search} search") as progress:
            return self._search(model, tree, alloc, calib, progress)

    def _search(self, model: nn.Module, tree: UnitTree, alloc: Allocation, calib: Any,
                progress: SearchProgress | None) -> dict:
        start = time.perf_counter()
        allowed = self._allowed(tree)
        unit_scorer, scorer_forwards = self._order_units(model, tree, alloc, calib)
        if progress is not None:
            progress.advance(scorer_forwards)
        if calib is not None and not is_meta(model):
            evaluator: Evaluator = MeasuredEvaluator(model, alloc, calib, allowed, self._settings["timestep_weighting"],
                                                     block_local=self._settings["block_local"], progress=progress,
                                                     screen_inputs=self._settings["screen_inputs"])
        else:
            evaluator = ProxyEvaluator(alloc)
        search: FlatSearch | TreeSearch
        savings_errors: dict[str, float] = {}
        if self._settings["search"] == "tree":
            def make(count: str) -> TreeSearch:
                return TreeSearch(alloc, evaluator, allowed, self.mix, self.depth, self._settings["chunks"],
                                  self._settings["refine"], local=self._settings["local_probes"],
                                  width_probes=self._settings["width_probes"], width_savings=count,
                                  fill=self._settings["fill"], rescore_every=self._settings["rescore_every"])

            search, savings_errors = run_tree(make, self._settings["width_savings"])
        else:
            search = FlatSearch(alloc, evaluator, allowed, self.mix, self.depth, self._settings["chunks"],
                                self._settings["rescore_every"])
            search.run()
        touched = search.touched_groups()
        if self.depth == 1:
            alloc.settle_blocks(allowed, priority=evaluator.block_priority)
            if not alloc.landed():
                alloc.raise_miss("tmp with tree_depth=1 (blocks only)")
        else:
            # the landing uses only unit groups whose policy the mix allows, so a policy-mix
            # ablation's "depth-only" or "experts-only" variant stays what it says
            landing = [g for g in alloc.group_list() if UNIT_POLICY[g.kind] in allowed
                       or (g.kind == "experts" and "merge_experts" in allowed)]
            pool = landing if self.depth >= 3 else [alloc.groups[p] for p in touched if alloc.groups[p] in landing]
            ok = alloc.settle(pool, prefer="score", what="tmp", require=False) if pool else alloc.landed()
            if not ok:
                alloc.settle_blocks(allowed & set(BLOCK_POLICIES), priority=evaluator.block_priority)
                if not alloc.landed():
                    if not landing:
                        alloc.raise_miss(f"tmp with policy_mix {sorted(allowed)}")
                    alloc.settle(landing, prefer="score", what="tmp")
        # the error of the state the plan records (after the landing), as the search measures it: the
        # runner measures the physically pruned model on the same inputs (settings.search.measured_error)
        evaluator.phase = "final"
        evaluator.accepted(None)
        with evaluator.confirm():
            predicted = evaluator.current()
        search_info = {
            "search": self._settings["search"],
            "evaluator": evaluator.name,
            "unit_scorer": unit_scorer,
            "policies_used": sorted(allowed),
            "accepted": search.accepted,
            "evaluations": evaluator.evaluations,
            "forward_equivalents": round(evaluator.forward_equivalents + scorer_forwards, 2),
            "phases": {k: round(v, 2) for k, v in {"scorers": scorer_forwards, **evaluator.by_phase}.items() if v},
            "final_error": predicted,
            "seconds": round(time.perf_counter() - start, 3),
        }
        if isinstance(search, TreeSearch):
            search_info["tree"] = search.info()
            if savings_errors:  # width_savings="best": each count's final error, and the one kept
                search_info["tree"]["width_savings"] = {**{k: round(v, 6) for k, v in savings_errors.items()},
                                                        "kept": search.width_savings}
        if isinstance(evaluator, MeasuredEvaluator):
            search_info.update(predicted_error=predicted, calib_inputs=len(calib),
                               timestep_weighting=self._settings["timestep_weighting"])
            search_info["repeated_states"] = evaluator.memo_hits  # states met again, scored once
            if evaluator.local_evaluations:
                search_info["local_evaluations"] = evaluator.local_evaluations  # one block each
            if evaluator.screens:
                search_info["screen_inputs"] = evaluator.screen_inputs
            alloc.linear_fit_inputs = len(calib)  # surgery fits its linear maps on the search's inputs
        return {"search": search_info}

    def check_estimable(self) -> None:
        """One line when these settings cannot be estimated before running."""
        if self._settings["search"] != "tree":
            raise TmpbenchError("pruner 'tmp': --estimate predicts the tree search; the flat greedy's evaluations depend "
                                "on what it accepts (run it, or --set search=tree)")

    def estimate(self, tree: UnitTree, budget: Any, n_inputs: int) -> dict[str, Any]:
        """What the measured search will spend, before it runs (``tmpbench plan --estimate``): evaluations
        and denoiser forward-equivalents over ``n_inputs`` calibration inputs. Probes of block b cost the
        share of a forward from b on (block-local replay, blocks in tree order), over ``screen_inputs`` of the
        inputs when set; confirmations and the final measurement run on all of them; the fixed passes are
        the one teacher pass (outputs, replay records, linear-map inputs) and the unit scorers (activations,
        REAP for experts). ``forward_equivalents_low`` is the count when the refine pass meets the first
        pass's states again (scored once). An estimate, not a bound (docs/tmp.md §4a, Progress)."""
        self.check_estimable()
        n_inputs = min(n_inputs, self._settings["max_calib_inputs"])
        alloc = Allocation(tree, budget, round_to=self._settings["round_to"])
        allowed = self._allowed(tree)
        search = TreeSearch(alloc, ProxyEvaluator(alloc), allowed, self.mix, self.depth, self._settings["chunks"],
                            self._settings["refine"], local=self._settings["local_probes"],
                            width_probes=self._settings["width_probes"], fill=self._settings["fill"])
        has_linear = "linear_replace" in allowed and any("linear_replace" in b.policies for b in alloc.main_blocks)
        screen = self._settings["screen_inputs"]
        n_screen = min(screen, n_inputs) if screen is not None else n_inputs
        runs = 2 if self._settings["width_savings"] == "best" and savings_overlap(alloc) else 1
        probes, confirmations, repeatable = estimate_probes(search, can_linear=has_linear, screens=n_screen < n_inputs,
                                                            runs=runs)
        total = max(float(tree.flops), 1e-9)
        before, share, own = 0.0, {}, {}
        for slot in alloc.blocks.values():  # blocks in tree order: what runs before each, and each one's share
            share[slot.path], own[slot.path] = before / total, slot.flops / total
            before += slot.flops
        rest = 1.0 - before / total  # outside the blocks (embedders, final layer): every probe runs it
        local = self._settings["block_local"]

        def cost(entries: list[str]) -> float:
            # "@b": a local probe runs block b and what lies outside the blocks; "b": a forward from b on
            return sum(own.get(p[1:], 0.0) + rest if p.startswith("@")
                       else 1.0 - (share.get(p, 0.0) if local and p else 0.0) for p in entries)

        probe_fe = cost(probes)
        # one teacher pass (outputs, replay records, linear-map inputs), the activation scorer, REAP for experts
        fixed = 1 + 1 + (1 if "experts" in alloc.kinds() else 0)
        fixed_fe = n_inputs * (confirmations + fixed)
        # a refine pass whose later stages choose as before meets the states of the first pass again and the
        # evaluator scores none of them twice: its level 2 may cost nothing (the low end of the range)
        return {"search": "tree", "evaluations": len(probes) + confirmations, "calib_inputs": n_inputs,
                "screen_inputs": n_screen,
                "forward_equivalents": round(n_screen * probe_fe + fixed_fe, 1),
                "forward_equivalents_low": round(n_screen * (probe_fe - cost(repeatable)) + fixed_fe, 1),
                "evaluations_low": len(probes) - len(repeatable) + confirmations,
                "fixed_passes": fixed, "block_local": local}

    def _order_units(self, model: nn.Module, tree: UnitTree, alloc: Allocation, calib: Any) -> tuple[str, float]:
        """Within-component removal order: calibration activations / REAP saliency when there is
        data (:func:`pruners.tmp_search.order_units`, shared with ``best-of-n``), weight norms
        without, index order on a meta model. Also returns the denoiser forwards the scoring spent."""
        if calib is not None and not is_meta(model):
            return "activation+reap", order_units(model, tree, alloc, calib)
        scores = weight_magnitude(model, tree)
        for path, s in scores.items():
            if path in alloc.groups:
                alloc.set_order(path, s)
        for g in alloc.groups.values():
            if g.kind == "experts":
                g.similarity = expert_similarity(model, g.component)
        return ("weight_magnitude" if scores else "index_order (meta)"), 0.0
