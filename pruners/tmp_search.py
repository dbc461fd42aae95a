"""TMP's search machinery: what a state of the allocation costs (evaluators) and the flat greedy.

* :class:`MeasuredEvaluator`: the relative output error of the masked denoiser on calibration inputs
  along the teacher's trajectory (docs/tmp.md section 3). Blocks that run before the first block a
  state touches are *replayed* from the teacher's recorded block outputs
  (:class:`tmpbench.pruning.calibration.BlockReplay`), so a probe of block i costs only the FLOPs
  share of a forward from block i on; the cost is counted in ``forward_equivalents``.
* :class:`ProxyEvaluator`: the data-free proxy for meta-size models (docs/tmp.md section 6).
* :class:`FlatSearch`: greedy on cost per saving over every action of the tree at once, with
  re-scoring (the ``search="flat"`` ablation row; docs/tmp.md section 4).
* :class:`SearchProgress`: the progress bar of a measured search, in forward-equivalents (the unit
  ``plan --estimate`` predicts), so its ETA reads against the estimate.

The top-down tree allocation (the default) lives in :mod:`pruners.tmp_tree`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from torch import nn

from pruners.allocate import Allocation, BlockSlot, UnitGroup, merge_groups
from pruners.base import order_groups
from pruners.importance import (
    activation_importance,
    apply_masks,
    expert_similarity,
    masked_output_error,
    reap_saliency,
)
from tmpbench.pruning.calibration import (
    capture_blocks,
    capture_replay,
    fit_recorded_maps,
    flatten_output,
    relative_block_error,
    spread_indices,
    timestep_weights,
)
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



# --------------------------------------------------------------------------------------------
# progress: a bar over the forward-equivalents a measured search spends
# --------------------------------------------------------------------------------------------
class SearchProgress:
    """A tqdm bar on stderr whose unit is the denoiser forward-equivalent: ``total`` is what the search
    is predicted to spend (:meth:`pruners.tmp.TMPPruner.estimate`; None when there is no estimate, as for
    the flat greedy: then the bar counts without an ETA), and :meth:`advance` moves it by what each pass
    or evaluation spends, so tqdm's rate and ETA are in the estimate's own unit. Past the estimate the
    total grows to the count instead of overflowing. It only reports: nothing in a search reads it.

        >>> with SearchProgress(120.0, "tmp tree search") as bar:  # doctest: +SKIP
        ...     bar.advance(2.5)
    """

    def __init__(self, total: float | None, desc: str) -> None:
        from tqdm.auto import tqdm

        self.estimate = total
        self.bar = tqdm(total=total, desc=desc, unit="fwd", unit_scale=True, file=sys.stderr, leave=False,
                        dynamic_ncols=True)

    def advance(self, forward_equivalents: float) -> None:
        if forward_equivalents <= 0:
            return
        if self.bar.total is not None and self.bar.n + forward_equivalents > self.bar.total:
            self.bar.total = self.bar.n + forward_equivalents  # past the estimate: grow, never overflow
        self.bar.update(forward_equivalents)

    def close(self) -> None:
        self.bar.close()

    def __enter__(self) -> SearchProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# evaluators: what an allocation state costs in quality
# --------------------------------------------------------------------------------------------
class Evaluator:
    name = "evaluator"

    screens = False  # True when probes are scored on a subset of the inputs and confirmed on all of them

    def __init__(self, alloc: Allocation, progress: SearchProgress | None = None) -> None:
        self.alloc = alloc
        self.evaluations = 0
        self.forward_equivalents = 0.0  # denoiser forwards spent, a partial forward by its FLOPs share
        self.by_phase: dict[str, float] = {}  # the same, per phase of the search (settings.search.phases)
        self.phase = "setup"
        self.progress = progress  # a bar to advance by what is spent (None: no bar)
        self._current: float | None = None

    def spend(self, forward_equivalents: float) -> None:
        """Count denoiser forward-equivalents spent (and move the progress bar by them)."""
        self.forward_equivalents += forward_equivalents
        self.by_phase[self.phase] = self.by_phase.get(self.phase, 0.0) + forward_equivalents
        if self.progress is not None:
            self.progress.advance(forward_equivalents)

    @contextmanager
    def confirm(self) -> Iterator[None]:
        """While active, :meth:`error` scores on every calibration input (global confirmation of a
        candidate screened on a subset); a no-op for an evaluator that does not screen."""
        yield

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

    def can_local(self, slot: BlockSlot) -> bool:
        """Whether :meth:`local_error` can score ``slot`` (only a measured evaluator with replay can)."""
        return False

    def local_error(self, block: str) -> float:
        raise NotImplementedError(f"{type(self).__name__} has no local error")

    def block_priority(self, slot: BlockSlot) -> float:
        return 0.0


def _depth_prior(i: int, n: int) -> float:
    """Data-free block importance by position: U-shaped (first and last blocks matter most)."""
    if n <= 1:
        return 1.0
    p = i / (n - 1)
    w = 0.4 + 0.6 * (2 * p - 1) ** 2
    return 2 * w if i in (0, n - 1) else w


class ProxyEvaluator(Evaluator):
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


class MeasuredEvaluator(Evaluator):
    """Relative output error of the masked denoiser on calibration inputs across timesteps.

    With ``block_local`` (the default), blocks that run before the first block the state touches are
    replayed from the teacher's recorded outputs: the result is the same number (their inputs are
    the teacher's), for the FLOPs share of a forward from that block on.

    With ``screen_inputs`` = k below the number of inputs, :meth:`error` scores a state on k inputs
    spread over the set (:func:`tmpbench.pruning.calibration.spread_indices`: both ends of the
    trajectory and, in a mixed calibration, both t2i and edit calls) for k/n of the cost, and on all
    of them inside :meth:`confirm` (docs/tmp.md §4d, screening and confirmation).

    The teacher's outputs, the replay records and the linear maps' block inputs/outputs come from one
    pass over the inputs."""

    name = "masked_output_error"

    def __init__(self, model: nn.Module, alloc: Allocation, calib: Any, allowed: set[str], weighting: str,
                 *, block_local: bool = True, progress: SearchProgress | None = None,
                 screen_inputs: int | None = None) -> None:
        super().__init__(alloc, progress)
        self.model = model
        self.calib = calib
        self.phase = "teacher pass"
        lin_paths = []
        if "linear_replace" in allowed:
            lin_paths = [b.path for b in alloc.main_blocks if "linear_replace" in b.policies and b.dim]
        self.replay = None
        with capture_blocks(model, lin_paths) as records:
            if block_local:
                flops = {b.path: b.flops for b in alloc.blocks.values()}
                self.replay = capture_replay(model, list(alloc.blocks), calib, flops, alloc.tree.flops)
                self.reference = self.replay.final
            else:
                self.reference = calib.outputs(model)
        self.spend(len(calib))
        self.linear_maps = fit_recorded_maps(model, lin_paths, records) if lin_paths else {}
        del records
        self.weights = timestep_weights(calib.timesteps, weighting)
        self.merged_cache: dict = {}
        self._order = {p: i for i, p in enumerate(self.replay.order)} if self.replay else {}
        self._all = list(range(len(calib)))
        self._screen = self._all
        if screen_inputs is not None and screen_inputs < len(calib):
            self._screen = spread_indices(len(calib), screen_inputs)
        self.screens = self._screen != self._all
        self.screen_inputs = len(self._screen)
        self._active = self._screen
        self._views: dict[tuple[int, ...], tuple[Any, list, list[float]]] = {}
        self._memo: dict[tuple, float] = {}
        self.memo_hits = 0
        self.local_evaluations = 0  # local_error() scorings (one block each), beside ``evaluations``
        self._block_refs: dict[str, list] = {}  # block -> the teacher's flat outputs of it, per input
        self.phase = "search"

    @contextmanager
    def confirm(self) -> Iterator[None]:
        if not self.screens:
            yield
            return
        saved, cur, phase = self._active, self._current, self.phase
        self._active, self._current = self._all, None
        self.phase = "final" if phase == "final" else "confirm"
        try:
            yield
        finally:
            self._active, self._current, self.phase = saved, cur, phase

    def _view(self) -> tuple[Any, list, list[float]]:
        """(calibration, teacher outputs, weights) of the active inputs."""
        key = tuple(self._active)
        if key not in self._views:
            idx = list(key)
            calib = self.calib if idx == self._all else self.calib.select(idx)
            self._views[key] = (calib, [self.reference[i] for i in idx], [self.weights[i] for i in idx])
        return self._views[key]

    def can_linear(self, slot: BlockSlot) -> bool:
        return slot.path in self.linear_maps

    def _replayed(self, touched: set[str]) -> list[str]:
        """Blocks that run before every touched block (none without replay)."""
        if self.replay is None:
            return []
        first = min(touched, key=lambda p: self._order.get(p, -1), default=None)
        if first is not None and first not in self._order:
            return []  # a touched block replay does not cover: run everything
        return self.replay.prefix(first)

    def _state_key(self) -> tuple:
        """What the error depends on: the inputs scored, each block's policy and each live group's cut
        (a group inside a dropped or linear-mapped block does not count; unit orders are fixed by then)."""
        blocks = self.alloc.blocks
        return (tuple(self._active),
                tuple(b.mode for b in blocks.values()),
                tuple((g.removed, g.merge) if blocks[g.block].mode is None else (0, False)
                      for g in self.alloc.groups.values()))

    def error(self) -> float:
        # a state scored before is not scored again: the error is a deterministic function of the state,
        # and the tree search meets the same states again (a refine pass whose later stages chose as
        # before probes the earlier stages in the same context)
        key = self._state_key()
        if key in self._memo:
            self.memo_hits += 1
            return self._memo[key]
        value = self._error()
        self._memo[key] = value
        return value

    def _masks(self, groups: list[UnitGroup]) -> tuple[dict, dict, set[str]]:
        """(keep, merges, touched blocks) of the live cuts among ``groups``."""
        keep, merges, touched = {}, {}, set()
        for g in groups:
            if g.removed == 0 or self.alloc.blocks[g.block].mode is not None:
                continue
            touched.add(g.block)
            if g.merge:
                merges[g.component] = merge_groups(g)
            else:
                keep[g.component] = (g.kind, g.kept_ids(), g.id_count)
        return keep, merges, touched

    def can_local(self, slot: BlockSlot) -> bool:
        """Whether :meth:`local_error` can score ``slot`` (its inputs are replayable: block-local on, and
        the block is called once per denoiser call)."""
        return self.replay is not None and slot.path in self._order

    def local_error(self, block: str) -> float:
        """The relative error of ``block``'s own output under the cuts inside it (its groups' current
        state; the block itself must be kept), on the teacher's inputs to it: the blocks before it are
        replayed and nothing after it runs, so it costs that block's FLOPs share of a forward per input
        (the tree search's local probes, docs/tmp.md §4d). It does not see the cuts of other blocks; the
        caller turns it into output error with a gain measured globally. Memoised by the block's state."""
        slot = self.alloc.blocks[block]
        if not self.can_local(slot) or slot.mode is not None:
            raise ValueError(f"local_error: block {block!r} cannot be scored locally")
        groups = [self.alloc.groups[p] for p in slot.groups]
        key = ("local", tuple(self._active), block, tuple((g.removed, g.merge) for g in groups))
        if key in self._memo:
            self.memo_hits += 1
            return self._memo[key]
        keep, merges, touched = self._masks(groups)
        if not touched:
            self._memo[key] = 0.0
            return 0.0
        self.local_evaluations += 1
        calib, _reference, weights = self._view()
        replayed = self.replay.prefix(block)
        after = self.replay.order[len(replayed) + 1:]
        self.spend(len(calib) * max(0.0, self.replay.cost(replayed) - sum(self.replay.share[p] for p in after)))
        if block not in self._block_refs:
            self._block_refs[block] = [flatten_output(o).cpu() for o in self.replay.outputs[block]]
        reference = [self._block_refs[block][i] for i in self._active]
        replay = {p: [self.replay.outputs[p][i] for i in self._active] for p in replayed} if replayed else None
        with apply_masks(self.model, keep=keep, merges=merges, merged_cache=self.merged_cache, replay=replay):
            value = relative_block_error(self.model, block, calib, reference, weights)
        self._memo[key] = value
        return value

    def _error(self) -> float:
        self.evaluations += 1
        blocks = {b.path: b.mode for b in self.alloc.blocks.values() if b.mode is not None}
        keep, merges, touched = self._masks(list(self.alloc.groups.values()))
        touched |= set(blocks)
        replayed = self._replayed(touched)
        if self.replay is not None and len(replayed) == len(self.replay.order) and not touched:
            return 0.0  # nothing touched: the teacher itself
        calib, reference, weights = self._view()
        self.spend(len(calib) * (self.replay.cost(replayed) if self.replay else 1.0))
        replay = {p: [self.replay.outputs[p][i] for i in self._active] for p in replayed} if replayed else None
        with apply_masks(self.model, keep=keep, merges=merges, blocks=blocks, linear_maps=self.linear_maps,
                         merged_cache=self.merged_cache, replay=replay):
            return masked_output_error(self.model, calib, reference, weights)


# --------------------------------------------------------------------------------------------
# the greedy search with re-scoring
# --------------------------------------------------------------------------------------------
class FlatSearch:
    def __init__(self, alloc: Allocation, evaluator: Evaluator, allowed: set[str], mix: dict[str, float],
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


def order_units(model: nn.Module, tree: UnitTree, alloc: Allocation, calib: Any) -> float:
    """The within-component removal order a measured search uses: heads and channels by calibration
    activation norm, experts by REAP saliency, merge partners by weight similarity. Returns the
    denoiser forwards the scorers spent (one pass over the calibration inputs each)."""
    order_groups(alloc, activation_importance(model, tree, calib))
    forwards = float(len(calib))
    if any(g.kind == "experts" for g in alloc.groups.values()):
        order_groups(alloc, reap_saliency(model, tree, calib))
        forwards += len(calib)
    for g in alloc.groups.values():
        if g.kind == "experts":
            g.similarity = expert_similarity(model, g.component)
    return forwards
