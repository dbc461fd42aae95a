"""Calibration and recovery recipes: which data every pruner calibrates on, and how every pruned
model is recovered. Built once, handed unchanged to every pruner of a comparison, recorded everywhere.

"Identical calibration and recovery" is enforced by construction: a :class:`CalibrationSpec` and a
:class:`RecoveryRecipe` are small frozen dataclasses whose :meth:`identity` (with a hash) is written
into every Plan, PruneResult, saved folder and cache key (:mod:`tmpbench.pruning.runner`,
:mod:`tmpbench.pruning.cache`). Unset sampling settings resolve from the model's registry entry
(:func:`model_defaults`, :meth:`CalibrationSpec.resolved`).

Example::

    >>> spec = CalibrationSpec(n_prompts=2, steps=2, size=32)
    >>> spec.resolved(8, 1024, 0.0).guidance, len(spec.hash)
    (0.0, 16)
    >>> RecoveryRecipe(steps=3).hash == RecoveryRecipe(steps=3).hash != RecoveryRecipe(steps=4).hash
    True
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from typing import Any

from tmpbench.catalog import MODELS
from tmpbench.errors import TmpbenchError, did_you_mean


def settings_digest(obj: Any) -> str:
    """16 hex digits of the sha256 of ``obj``'s canonical JSON: how recipes and the pruned-model
    cache name a set of settings (same settings, same digest; any change, another)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


TASKS = ("t2i", "edit")
#: The suite split every calibration and recovery training set is drawn from (tmpbench.suites.core.SPLITS);
#: recovery's held-out loss is measured on :data:`HELD_OUT_SPLIT`. Evaluation defaults to ``test``.
CALIB_SPLIT = "calib"
HELD_OUT_SPLIT = "dev"


def mix_counts(mix: tuple[tuple[str, float], ...] | None, n: int) -> dict[str, int]:
    """``n`` items split by a task mix (None: T2I only); each task of a two-task mix gets at least one."""
    shares = dict(mix or (("t2i", 1.0),))
    if "edit" not in shares:
        n_edit = 0
    elif "t2i" not in shares:
        n_edit = n
    else:
        n_edit = min(max(1, round(n * shares["edit"])), n - 1)
    return {"t2i": n - n_edit, "edit": n_edit}


def parse_mix(value: Any) -> tuple[tuple[str, float], ...]:
    """A calibration task mix: ``"t2i=0.5,edit=0.5"``, a ``{task: share}`` mapping or pairs -> sorted
    ``((task, share), ...)``. Tasks are t2i and edit; shares are positive and sum to 1."""
    if isinstance(value, str):
        pairs = []
        for part in (p.strip() for p in value.split(",") if p.strip()):
            task, eq, share = part.partition("=")
            try:
                pairs.append((task.strip(), float(share)))
            except ValueError:
                pairs.append((task.strip(), float("nan")))
            if not eq:
                raise TmpbenchError(f"calibration mix {value!r}: {part!r} must look like task=share, e.g. t2i=0.5,edit=0.5")
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        pairs = [tuple(p) for p in value]
    if not pairs:
        raise TmpbenchError("calibration mix is empty; give e.g. t2i=0.5,edit=0.5")
    out: dict[str, float] = {}
    for task, share in pairs:
        if task not in TASKS:
            hint = did_you_mean(str(task), TASKS, n=1, cutoff=0.5) or f"; tasks: {', '.join(TASKS)}"
            raise TmpbenchError(f"calibration mix names unknown task {task!r}{hint}")
        if task in out:
            raise TmpbenchError(f"calibration mix names {task!r} twice")
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not share > 0 or share != share:
            raise TmpbenchError(f"calibration mix share of {task!r} must be a positive number, got {share!r}")
        out[task] = float(share)
    if abs(sum(out.values()) - 1.0) > 1e-6:
        listed = ", ".join(f"{t}={v:g}" for t, v in out.items())
        raise TmpbenchError(f"calibration mix shares sum to {sum(out.values()):g}, not 1 ({listed})")
    return tuple(sorted(out.items()))


@dataclass(frozen=True)
class CalibrationSpec:
    """Which data every pruner calibrates on: ``n_prompts`` items of the ``calib`` split of ``suite``
    (and of ``edit_suite`` for the edit share of ``mix``; round-robin over categories, as ``--limit``
    does), one seed each, sampled for ``steps`` steps at ``size`` px. Evaluation never sees them:
    runs evaluate ``test`` by default and compare/gate refuse runs whose items overlap them.

    ``seeds`` None uses the suite's own item seeds. ``steps``/``size``/``guidance`` None take the
    model's defaults when the spec is resolved (:meth:`resolved`).

    ``draw`` k > 0 takes the next items of the calib split instead of the first: the items a spec of
    ``(k + 1) x n`` prompts adds to one of ``k x n`` (disjoint from every other draw, still round-robin
    over categories). Repeating a comparison over draws measures how much a plan depends on the
    calibration data it saw (``benchmarks/calibration_draws.py``).
    """

    suite: str = "shapes-t2i"
    n_prompts: int = 8
    steps: int | None = None
    size: int | None = None
    guidance: float | None = None
    seeds: tuple[int, ...] | None = None
    max_inputs: int | None = None  # cap on captured denoiser calls (None: every step of every prompt)
    source: str | None = None  # suite source override (file / folder), as `tmpbench run --suite-source`
    # task mix: None = T2I only; e.g. (("edit", 0.5), ("t2i", 0.5)) draws half of n_prompts from edit_suite
    mix: tuple[tuple[str, float], ...] | None = None
    edit_suite: str = "shapes-edit"
    draw: int = 0

    def __post_init__(self) -> None:
        if self.mix is not None:
            object.__setattr__(self, "mix", parse_mix(self.mix))
            if self.mix == (("t2i", 1.0),):
                object.__setattr__(self, "mix", None)  # the same data as no mix, so the same identity
        if self.n_prompts < 1:
            raise TmpbenchError(f"calibration needs at least 1 prompt, got n_prompts={self.n_prompts}")
        if self.steps is not None and self.steps < 1:
            raise TmpbenchError(f"calibration steps must be >= 1, got {self.steps}")
        if self.size is not None and self.size < 1:
            raise TmpbenchError(f"calibration size must be positive, got {self.size}")
        if self.draw < 0:
            raise TmpbenchError(f"calibration draw must be >= 0, got {self.draw}")
        if self.seeds is not None:
            object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
            if len(self.seeds) != self.n_prompts:
                raise TmpbenchError(f"calibration has {len(self.seeds)} seeds for {self.n_prompts} prompts; give one per prompt")

    def resolved(self, steps: int, size: int, guidance: float) -> CalibrationSpec:
        """This spec with unset steps/size/guidance filled from a model's defaults."""
        return replace(
            self,
            steps=self.steps if self.steps is not None else int(steps),
            size=self.size if self.size is not None else int(size),
            guidance=self.guidance if self.guidance is not None else float(guidance),
        )

    @property
    def counts(self) -> dict[str, int]:
        """Calibration items per task: ``n_prompts`` split by the mix (each task of the mix gets at least one)."""
        return mix_counts(self.mix, self.n_prompts)

    @property
    def has_edits(self) -> bool:
        return self.counts["edit"] > 0

    def task_items(self, task: str, n: int, split: str = CALIB_SPLIT) -> tuple[Any, list[Any]]:
        """(suite, its first ``n`` items of ``split``) for ``task`` (``t2i``: ``suite``; ``edit``: ``edit_suite``)."""
        from tmpbench.suites.core import load_suite

        name, source, want = (self.suite, self.source, "t2i") if task == "t2i" else (self.edit_suite, None, "edit")
        k = self.draw if split == CALIB_SPLIT else 0
        suite = load_suite(name, source=source, limit=(k + 1) * n, split=split)
        if suite.kind != want:
            example = "shapes-t2i" if want == "t2i" else "shapes-edit"
            what = "calibration suite" if want == "t2i" else "calibration edit suite"
            raise TmpbenchError(f"{what} {name!r} is a {suite.kind} suite; use a{'n' if want == 'edit' else ''} "
                                f"{want} suite such as {example}")
        if k == 0:
            return suite, list(suite.items)[:n]
        if len(suite.items) < (k + 1) * n:
            raise TmpbenchError(f"calibration draw {k} needs {(k + 1) * n} {split} items of {name!r} ({n} per draw); "
                                f"it has {len(suite.items)}: use a lower --calib-draw or fewer --calib-prompts")
        earlier = {it.id for it in load_suite(name, source=source, limit=k * n, split=split).items}
        return suite, [it for it in suite.items if it.id not in earlier][:n]

    def edits(self, size: int, split: str = CALIB_SPLIT, n: int | None = None) -> tuple[list[Any], list[str], list[int], str]:
        """(source images, instructions, seeds, suite hash) of the edit share: the first items of
        ``split`` (``calib``) of ``edit_suite`` (round-robin over its edit types)."""
        from tmpbench.suites.core import edit_source

        n = self.counts["edit"] if n is None else n
        if n == 0:
            return [], [], [], ""
        suite, items = self.task_items("edit", n, split)
        return [edit_source(suite, it, size) for it in items], [it.prompt for it in items], [it.seed for it in items], suite.hash

    def prompts(self, split: str = CALIB_SPLIT, n: int | None = None) -> tuple[list[str], list[int], str]:
        """(prompts, seeds, suite hash) of the T2I share this spec names: the first items of ``split``
        (``calib``) of ``suite``. ``seeds`` overrides the items' seeds of the calibration share only."""
        n = self.counts["t2i"] if n is None else n
        if n == 0:
            return [], [], ""
        suite, items = self.task_items("t2i", n, split)
        own = self.seeds is not None and split == CALIB_SPLIT
        seeds = list(self.seeds)[:n] if own else [it.seed for it in items]
        return [it.prompt for it in items], seeds[: len(items)], suite.hash

    def item_ids(self, split: str = CALIB_SPLIT, counts: dict[str, int] | None = None) -> dict[str, list[str]]:
        """``{suite name: [item id, ...]}`` of the items this spec draws from ``split`` (``counts`` per task:
        default this spec's own). Recorded in results as ``model.calibration.item_ids``."""
        out: dict[str, list[str]] = {}
        for task, n in (counts or self.counts).items():
            if n > 0:
                suite, items = self.task_items(task, n, split)
                out.setdefault(suite.name, []).extend(it.id for it in items)
        return out

    def identity(self) -> dict[str, Any]:
        data = asdict(self)
        data["split"] = CALIB_SPLIT  # items come from the calib split (before splits: the suite's first items)
        data["seeds"] = list(self.seeds) if self.seeds is not None else None
        if not self.draw:  # the first draw keeps the identity it had before draws existed
            data.pop("draw")
        if self.mix is None:  # T2I only: no mix keys
            data.pop("mix")
            data.pop("edit_suite")
        else:
            data["mix"] = {t: v for t, v in self.mix}
        data["hash"] = settings_digest(data)
        return data

    @property
    def hash(self) -> str:
        return self.identity()["hash"]

    def collect(self, generator: Any) -> Any:
        """Run the generator's own sampling on these prompts and capture the denoiser's inputs."""
        from tmpbench.pruning.calibration import collect_calibration

        if self.steps is None or self.size is None:
            raise TmpbenchError("calibration spec has no steps/size; call .resolved(...) with the model's defaults first")
        prompts, seeds, suite_hash = self.prompts()
        edits = None
        if self.has_edits:
            if not getattr(generator, "supports_edit", False):
                raise TmpbenchError(
                    f"calibration mix {dict(self.mix or ())} has edits, but model {getattr(generator, 'name', '?')!r} does "
                    "not support editing; use --calibration-mix t2i=1"
                )
            images, instructions, edit_seeds, edit_hash = self.edits(self.size)
            edits = (images, instructions, edit_seeds)
        calib = collect_calibration(generator, prompts, seeds, self.steps, self.size,
                                    guidance=self.guidance if self.guidance is not None else 1.0,
                                    max_inputs=self.max_inputs, edits=edits)
        identity = dict(getattr(calib, "identity", {}) or {})
        identity.update(spec=self.identity(), suite_hash=suite_hash, item_ids=self.item_ids())
        if edits is not None:
            identity["edit_suite_hash"] = edit_hash
        calib.identity = identity
        return calib


@dataclass(frozen=True)
class RecoveryRecipe:
    """How every pruned model is recovered: knowledge distillation from the unpruned teacher.

    ``steps`` optimiser steps of AdamW at ``lr`` on batches of ``batch`` states; the loss is
    ``output_weight * MSE(student, teacher)`` on the denoiser output plus ``feature_weight *
    MSE`` on the hidden state entering the final layer. States are the teacher's own sampling
    trajectory (``1 - fresh_fraction`` of each batch) and fresh re-noisings of the teacher's
    samples at uniformly random t (``fresh_fraction``). Prompts come from the CalibrationSpec.
    """

    steps: int = 0
    lr: float = 1e-4
    batch: int = 4
    output_weight: float = 1.0
    feature_weight: float = 0.0
    fresh_fraction: float = 0.5
    grad_clip: float | None = 1.0
    weight_decay: float = 0.0
    seed: int = 0
    held_out: int = 4  # dev-split items whose teacher trajectories make the held-out loss

    def __post_init__(self) -> None:
        if self.held_out < 1:
            raise TmpbenchError(f"recovery held_out must be >= 1 dev item, got {self.held_out}")
        if self.steps < 0:
            raise TmpbenchError(f"recovery steps must be >= 0, got {self.steps}")
        if not self.lr > 0:
            raise TmpbenchError(f"recovery lr must be positive, got {self.lr}")
        if self.batch < 1:
            raise TmpbenchError(f"recovery batch must be >= 1, got {self.batch}")
        if self.output_weight < 0 or self.feature_weight < 0 or self.output_weight + self.feature_weight == 0:
            raise TmpbenchError(
                f"recovery loss weights must be >= 0 and not both 0 (output {self.output_weight}, feature {self.feature_weight})"
            )
        if not 0.0 <= self.fresh_fraction <= 1.0:
            raise TmpbenchError(f"fresh_fraction must lie in [0, 1], got {self.fresh_fraction}")

    def identity(self) -> dict[str, Any]:
        data = asdict(self)
        data["method"] = "kd-output-mse"
        data["hash"] = settings_digest(data)
        return data

    @property
    def hash(self) -> str:
        return self.identity()["hash"]


DEFAULT_EDIT_SHARE = 0.5


def default_calibration(model_name: str | None) -> CalibrationSpec:
    """The suite the model's registry entry names (``calibration_suite``: shapes-t2i for the
    ShapesWorld references, GenEval prompts for the real models); shapes-t2i when no model is named.

    A model that edits and names a ``calibration_edit_suite`` calibrates on both tasks: half of the
    prompts are edit instructions from that suite (:data:`DEFAULT_EDIT_SHARE`), since the pruned model
    will be asked to do both."""
    if not model_name:
        return CalibrationSpec(suite="shapes-t2i")
    base = model_name.split("/")[-1]
    entry = MODELS.get(base) if base in MODELS else None
    spec = CalibrationSpec(suite=getattr(entry, "calibration_suite", "geneval"))
    edit_suite = getattr(entry, "calibration_edit_suite", None)
    if edit_suite and getattr(entry, "supports_edit", False):
        spec = replace(spec, mix=(("edit", DEFAULT_EDIT_SHARE), ("t2i", 1 - DEFAULT_EDIT_SHARE)), edit_suite=edit_suite)
    return spec


def model_name_of(generator: Any) -> str | None:
    """The registered model name a generator was loaded as (``generator.model`` when it is a name, else ``generator.name``)."""
    model = getattr(generator, "model", None)
    return model if isinstance(model, str) else getattr(generator, "name", None)


def model_defaults(generator: Any) -> tuple[int, int, float]:
    """(steps, size, guidance) defaults for calibration: the registered entry's, else tiny ones."""
    name = model_name_of(generator)
    if isinstance(name, str) and name in MODELS:
        entry = MODELS.get(name)
        return int(entry.default_steps), int(entry.default_size), float(entry.default_guidance)
    return 2, 32, 1.0
