"""TMP: Tree-structured Mixed-policy Pruning (our reading; design note in docs/tmp.md).

The model is its unit tree (model > stage > block > component > unit group). Six policies are
mixed across that tree under ONE budget: drop a block, replace a block by a fitted linear map,
prune heads, prune FFN / shared-expert channels, prune experts, merge experts. The search:

1. **Candidates down the tree, coarse to fine.** ``tree_depth=1``: block actions (drop, linear map);
   ``2``: + whole components (a component cut to its minimum in one step); ``3``/``"max"``: + unit
   chunks (``1/chunks`` of a group's heads / channels / experts at a time, the least important
   first by a cheap within-component scorer).
2. **Cost = quality lost, measured as a mask.** With calibration, an action's cost is the increase
   of the denoiser's relative output error ``E_t ||f(x_t) - f_a(x_t)||^2 / ||f(x_t)||^2`` over inputs
   captured along the teacher's own sampling trajectory (every timestep; optionally weighted),
   measured with hooks/swaps that mimic the cut exactly (:func:`pruners.importance.apply_masks`).
   Without calibration (meta size) a data-free proxy stands in (docs/tmp.md).
3. **Greedy on cost per saving** (parameters, or FLOPs for a FLOPs budget), each policy's cost
   multiplied by its ``policy_mix`` prior. After each accepted action the candidates in the same
   block are re-measured; every ``rescore_every`` acceptances all are. A chunk that would overshoot
   the target is shrunk to fit; a block action that would overshoot is skipped.
4. **Final fine adjustment** (:meth:`pruners.allocate.Allocation.settle`): single units removed or
   restored until the size is within the 0.5% tolerance (at ``tree_depth=1``: block policy swaps).

One code path serves DiT and MoE: only the tree's nodes, policies and constraints are read.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import nn

from pruners.allocate import UNIT_POLICY, Allocation, BlockSlot, UnitGroup
from pruners.base import Pruner
from pruners.importance import (
    activation_importance,
    apply_masks,
    expert_similarity,
    is_meta,
    masked_output_error,
    reap_saliency,
    weight_magnitude,
)
from tmpbench.errors import TmpbenchError, did_you_mean
from tmpbench.pruning.calibration import WEIGHTINGS, fit_block_maps, timestep_weights
from tmpbench.pruning.tree import POLICIES, UnitTree

BLOCK_POLICIES = ("drop_block", "linear_replace")
UNIT_POLICIES = {"heads": ("prune_heads",), "channels": ("prune_channels",), "experts": ("prune_experts", "merge_experts")}
DEPTH_POLICIES = {1: set(BLOCK_POLICIES), 2: set(POLICIES), 3: set(POLICIES)}
EPS = 1e-9

# data-free proxy (docs/tmp.md): role share of a component in its block's output, and the cost of
# a linear map relative to dropping the block
ROLE_SHARE = {"attention": 0.5, "ffn": 0.5, "moe": 0.4, "shared_expert": 0.2}
LINEAR_PROXY = 0.9


@dataclass(frozen=True)
class Action:
    """One candidate: a block policy (``n == 0``) or ``n`` more units of a group under ``policy``."""

    target: str  # block path or unit-group path
    policy: str
    n: int = 0
    whole: bool = False  # the whole-component action (to the constraint minimum), beside the chunk of depth 3

    @property
    def key(self) -> tuple[str, str, bool]:
        """Cost-cache key: one entry per target, policy and action kind (a chunk's cost scales with its size)."""
        return (self.target, self.policy, self.whole)

    @property
    def is_block(self) -> bool:
        return self.policy in BLOCK_POLICIES


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
        "tree_depth": "max",
        "policy_mix": None,
        "chunks": 8,
        "rescore_every": 8,
        "timestep_weighting": "uniform",
        "max_calib_inputs": 16,
        "round_to": None,
    }

    def _validate_settings(self) -> None:
        super()._validate_settings()
        s = self._settings
        self.depth = parse_depth(s["tree_depth"])
        self.mix = parse_policy_mix(s["policy_mix"])
        for key, lo in (("chunks", 1), ("rescore_every", 1), ("max_calib_inputs", 1)):
            v = s[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise TmpbenchError(f"pruner 'tmp': {key}={v!r} must be an integer >= {lo}")
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
        start = time.perf_counter()
        allowed = self._allowed(tree)
        calib = calibration.subset(self._settings["max_calib_inputs"]) if calibration is not None else None
        unit_scorer = self._order_units(model, tree, alloc, calib)
        if calib is not None and not is_meta(model):
            evaluator: _Evaluator = _MeasuredEvaluator(model, alloc, calib, allowed, self._settings["timestep_weighting"])
        else:
            evaluator = _ProxyEvaluator(alloc)
        search = _Search(alloc, evaluator, allowed, self.mix, self.depth, self._settings["chunks"],
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
        evaluator.accepted(None)
        predicted = evaluator.current()
        search_info = {
            "evaluator": evaluator.name,
            "unit_scorer": unit_scorer,
            "policies_used": sorted(allowed),
            "accepted": search.accepted,
            "evaluations": evaluator.evaluations,
            "final_error": predicted,
            "seconds": round(time.perf_counter() - start, 3),
        }
        if isinstance(evaluator, _MeasuredEvaluator):
            search_info.update(predicted_error=predicted, calib_inputs=len(calib),
                               timestep_weighting=self._settings["timestep_weighting"])
            alloc.linear_fit_inputs = len(calib)  # surgery fits its linear maps on the search's inputs
        return {"search": search_info}

    def _order_units(self, model: nn.Module, tree: UnitTree, alloc: Allocation, calib: Any) -> str:
        """Within-component removal order: calibration activations / REAP saliency when there is
        data, weight norms without, index order on a meta model."""
        if calib is not None and not is_meta(model):
            scores = activation_importance(model, tree, calib)
            if any(g.kind == "experts" for g in alloc.groups.values()):
                scores.update(reap_saliency(model, tree, calib))
            name = "activation+reap"
        else:
            scores = weight_magnitude(model, tree)
            name = "weight_magnitude" if scores else "index_order (meta)"
        for path, s in scores.items():
            if path in alloc.groups:
                alloc.set_order(path, s)
        for g in alloc.groups.values():
            if g.kind == "experts":
                g.similarity = expert_similarity(model, g.component)
        return name


# --------------------------------------------------------------------------------------------
# evaluators: what an allocation state costs in quality
# --------------------------------------------------------------------------------------------
class _Evaluator:
    name = "evaluator"

    def __init__(self, alloc: Allocation) -> None:
        self.alloc = alloc
        self.evaluations = 0
        self._current: float | None = None

    def error(self) -> float:  # quality lost by the current state
        raise NotImplementedError

    def current(self) -> float:
        if self._current is None:
            self._current = self.error()
        return self._current

    def accepted(self, value: float | None) -> None:
        self._current = value  # None: measure again on the next current()

    def can_linear(self, slot: BlockSlot) -> bool:
        return True

    def block_priority(self, slot: BlockSlot) -> float:
        return 0.0


def _depth_prior(i: int, n: int) -> float:
    """Data-free block importance by position: U-shaped (first and last blocks matter most)."""
    if n <= 1:
        return 1.0
    p = i / (n - 1)
    w = 0.4 + 0.6 * (2 * p - 1) ** 2
    return 2 * w if i in (0, n - 1) else w


class _ProxyEvaluator(_Evaluator):
    """Data-free quality proxy (docs/tmp.md): blocks weighted by a depth prior; removing a share f
    of a component's unit importance costs ``role_share * f^2`` of its block; dropping costs 1, a
    linear map ``LINEAR_PROXY``."""

    name = "data_free_proxy"

    def __init__(self, alloc: Allocation) -> None:
        super().__init__(alloc)
        main = alloc.main_blocks
        self.weight = {b.path: 1.0 for b in alloc.blocks.values()}
        for i, b in enumerate(main):
            self.weight[b.path] = _depth_prior(i, len(main))
        self.role = {}
        for node in alloc.tree.walk():
            if node.level == "unit":
                parent = node.constraints.get("moe") or node.module_path
                comp = alloc.tree[parent] if parent in alloc.tree else None
                self.role[node.path] = ROLE_SHARE.get(comp.kind if comp is not None else "", 0.3)
        self._totals = {g.path: (sum(g.scores) if g.scores else float(g.count)) for g in alloc.groups.values()}

    def removed_share(self, g: UnitGroup) -> float:
        if g.removed == 0:
            return 0.0
        if g.scores is None:
            return g.removed / g.count
        total = self._totals[g.path] or 1.0
        return sum(g.scores[u] for u in g.order[:g.removed]) / total

    def block_error(self, slot: BlockSlot) -> float:
        w = self.weight[slot.path]
        if slot.mode == "drop_block":
            return w
        if slot.mode == "linear_replace":
            return w * LINEAR_PROXY
        return w * sum(self.role[p] * self.removed_share(self.alloc.groups[p]) ** 2 for p in slot.groups)

    def error(self) -> float:
        self.evaluations += 1
        return sum(self.block_error(b) for b in self.alloc.blocks.values())

    def block_priority(self, slot: BlockSlot) -> float:
        return self.weight[slot.path]


class _MeasuredEvaluator(_Evaluator):
    """Relative output error of the masked denoiser on calibration inputs across timesteps."""

    name = "masked_output_error"

    def __init__(self, model: nn.Module, alloc: Allocation, calib: Any, allowed: set[str], weighting: str) -> None:
        super().__init__(alloc)
        self.model = model
        self.calib = calib
        self.reference = calib.outputs(model)
        self.weights = timestep_weights(calib.timesteps, weighting)
        self.merged_cache: dict = {}
        self.linear_maps: dict = {}
        if "linear_replace" in allowed:
            paths = [b.path for b in alloc.main_blocks if "linear_replace" in b.policies and b.dim]
            self.linear_maps = fit_block_maps(model, paths, calib)

    def can_linear(self, slot: BlockSlot) -> bool:
        return slot.path in self.linear_maps

    def error(self) -> float:
        self.evaluations += 1
        keep, merges, blocks = {}, {}, {}
        for b in self.alloc.blocks.values():
            if b.mode is not None:
                blocks[b.path] = b.mode
        for g in self.alloc.groups.values():
            if g.removed == 0 or self.alloc.blocks[g.block].mode is not None:
                continue
            if g.merge:
                from pruners.allocate import merge_groups

                merges[g.component] = merge_groups(g)
            else:
                keep[g.component] = (g.kind, g.kept_ids(), g.id_count)
        with apply_masks(self.model, keep=keep, merges=merges, blocks=blocks, linear_maps=self.linear_maps,
                         merged_cache=self.merged_cache):
            return masked_output_error(self.model, self.calib, self.reference, self.weights)


# --------------------------------------------------------------------------------------------
# the greedy search with re-scoring
# --------------------------------------------------------------------------------------------
class _Search:
    def __init__(self, alloc: Allocation, evaluator: _Evaluator, allowed: set[str], mix: dict[str, float],
                 depth: int, chunks: int, rescore_every: int) -> None:
        self.alloc = alloc
        self.ev = evaluator
        self.allowed = allowed
        self.mix = mix
        self.depth = depth
        self.chunks = chunks
        self.rescore_every = rescore_every
        self.cache: dict[tuple[str, str, bool], tuple[int, float, bool]] = {}  # Action.key -> (n, cost, fresh)
        self.accepted = 0
        self._touched: list[str] = []

    def touched_groups(self) -> list[str]:
        return list(dict.fromkeys(self._touched))

    # candidate actions at the current state, already shrunk to fit the remaining gap
    def candidates(self) -> list[tuple[Action, float]]:
        a = self.alloc
        room = a.gap() + 0.5 * a.tolerance  # saving allowed without going below target - tol/2
        out: list[tuple[Action, float]] = []
        for b in a.main_blocks:
            modes = []
            if b.mode is None:
                modes = [m for m in BLOCK_POLICIES if m in self.allowed and m in b.policies]
            elif b.mode == "linear_replace" and "drop_block" in self.allowed:
                modes = ["drop_block"]
            for m in modes:
                if m == "linear_replace" and not self.ev.can_linear(b):
                    continue
                saving = a.block_saving(b, mode=m) - a.block_saving(b)
                if 0 < saving <= room:
                    out.append((Action(b.path, m), saving))
        if self.depth < 2:
            return out
        for g in a.group_list():
            policies = [p for p in UNIT_POLICIES[g.kind] if p in self.allowed and p in g.policies]
            if g.removed > 0:  # a group sticks to the policy it started with
                policies = [p for p in policies if (p == "merge_experts") == g.merge]
            if g.link is not None and g.link.removed and g.kind == "experts":  # merged experts keep one width
                policies = [p for p in policies if p != "merge_experts"]
            if not policies or g.step_down() is None:
                continue
            # depth 2: the whole component (to its constraint minimum) in one step; depth 3 keeps that
            # action and adds coarse-to-fine chunks, so each depth contains every action of the ones above
            sizes = {g.max_removed() - g.removed}
            if self.depth >= 3:  # a chunk is shrunk to fit the remaining gap
                chunk = max(1, round(g.count / self.chunks))
                n = g.floor_removed(g.removed + chunk) - g.removed
                sizes.add(n if n > 0 else (g.step_down() or 0))
            whole = g.max_removed() - g.removed
            for p in policies:
                for n in sorted(s for s in sizes if s > 0):
                    is_whole = n == whole
                    n = self._fit(g, n, p, room)
                    if n > 0:
                        out.append((Action(g.path, p, n, whole=is_whole and n == whole), self._unit_saving(g, n, p)))
        return list(dict.fromkeys(out))

    def _unit_saving(self, g: UnitGroup, n: int, policy: str) -> float:
        merge = g.merge
        g.merge = policy == "merge_experts"
        try:
            return g.delta(n, self.alloc.kind)
        finally:
            g.merge = merge

    def _fit(self, g: UnitGroup, n: int, policy: str, room: float) -> int:
        while n > 0 and self._unit_saving(g, n, policy) > room:
            n = g.floor_removed(g.removed + n - 1) - g.removed
        return n

    def apply(self, action: Action) -> tuple:
        a = self.alloc
        if action.is_block:
            slot = a.blocks[action.target]
            undo = ("block", slot, slot.mode)
            slot.mode = action.policy
        else:
            g = a.groups[action.target]
            undo = ("group", g, g.removed, g.merge)
            g.merge = action.policy == "merge_experts"
            g.removed += action.n
        return undo

    @staticmethod
    def undo(state: tuple) -> None:
        if state[0] == "block":
            state[1].mode = state[2]
        else:
            state[1].removed, state[1].merge = state[2], state[3]

    def marginal(self, action: Action, measure: bool = True) -> tuple[float, bool]:
        """(marginal cost, fresh). A cached cost measured for another chunk size is scaled by the
        size ratio; costs invalidated by an acceptance stay usable as stale lower bounds (lazy
        greedy: pruning more of a block rarely gets cheaper), and are re-measured only when they
        would win."""
        key = action.key
        hit = self.cache.get(key)
        if hit is not None and not measure:
            n, cost, fresh = hit
            scale = action.n / n if n else 1.0
            return cost * scale, fresh and n == action.n
        base = self.ev.current()
        undo = self.apply(action)
        try:
            value = self.ev.error()
        finally:
            self.undo(undo)
        cost = value - base
        self.cache[key] = (action.n, cost, True)
        return cost, True

    def _block_of(self, action: Action) -> str:
        return action.target if action.is_block else self.alloc.groups[action.target].block

    def run(self) -> None:
        a = self.alloc
        limit = 100_000
        while a.gap() > 0.5 * a.tolerance and limit > 0:
            limit -= 1
            cands = self.candidates()
            if not cands:
                break
            while True:
                best = None
                for action, saving in cands:
                    cost, fresh = self.marginal(action, measure=action.key not in self.cache)
                    score = self.mix.get(action.policy, 1.0) * (max(cost, 0.0) + EPS) / saving
                    key = (score, -saving, action.target, action.policy)
                    if best is None or key < best[0]:
                        best = (key, action, fresh)
                if best[2]:
                    break
                self.marginal(best[1], measure=True)  # stale winner: re-measure, then compare again
            action = best[1]
            after = self.ev.current() + self.cache[action.key][1]
            self.apply(action)
            self.ev.accepted(after)
            self.accepted += 1
            if not action.is_block:
                self._touched.append(action.target)
            # re-score: candidates of the affected block go stale now; all are re-measured every K
            block = self._block_of(action)
            if self.accepted % self.rescore_every == 0:
                self.cache.clear()
                self.ev._current = None
            else:
                self.cache.pop(action.key, None)
                for key in [k for k in self.cache if self._key_block(k) == block]:
                    n, cost, _ = self.cache[key]
                    self.cache[key] = (n, cost, False)

    def _key_block(self, key: tuple[str, str, bool]) -> str:
        target, policy, _ = key
        return target if policy in BLOCK_POLICIES else self.alloc.groups[target].block
