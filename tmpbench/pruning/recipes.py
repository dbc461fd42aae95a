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
from tmpbench.errors import TmpbenchError


def settings_digest(obj: Any) -> str:
    """16 hex digits of the sha256 of ``obj``'s canonical JSON: how recipes and the pruned-model
    cache name a set of settings (same settings, same digest; any change, another)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CalibrationSpec:
    """Which data every pruner calibrates on: ``n_prompts`` prompts of ``suite`` (round-robin over its
    categories, as ``--limit`` does), one seed each, sampled for ``steps`` steps at ``size`` px.

    ``seeds`` None uses the suite's own item seeds. ``steps``/``size``/``guidance`` None take the
    model's defaults when the spec is resolved (:meth:`resolved`).
    """

    suite: str = "shapes-t2i"
    n_prompts: int = 8
    steps: int | None = None
    size: int | None = None
    guidance: float | None = None
    seeds: tuple[int, ...] | None = None
    max_inputs: int | None = None  # cap on captured denoiser calls (None: every step of every prompt)
    source: str | None = None  # suite source override (file / folder), as `tmpbench run --suite-source`

    def __post_init__(self) -> None:
        if self.n_prompts < 1:
            raise TmpbenchError(f"calibration needs at least 1 prompt, got n_prompts={self.n_prompts}")
        if self.steps is not None and self.steps < 1:
            raise TmpbenchError(f"calibration steps must be >= 1, got {self.steps}")
        if self.size is not None and self.size < 1:
            raise TmpbenchError(f"calibration size must be positive, got {self.size}")
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

    def prompts(self) -> tuple[list[str], list[int], str]:
        """(prompts, seeds, suite hash) this spec names."""
        from tmpbench.suites.core import load_suite

        suite = load_suite(self.suite, source=self.source, limit=self.n_prompts)
        if suite.kind != "t2i":
            raise TmpbenchError(f"calibration suite {self.suite!r} is a {suite.kind} suite; use a T2I suite such as shapes-t2i")
        items = list(suite.items)[: self.n_prompts]
        seeds = list(self.seeds) if self.seeds is not None else [it.seed for it in items]
        return [it.prompt for it in items], seeds[: len(items)], suite.hash

    def identity(self) -> dict[str, Any]:
        data = asdict(self)
        data["seeds"] = list(self.seeds) if self.seeds is not None else None
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
        calib = collect_calibration(generator, prompts, seeds, self.steps, self.size,
                                    guidance=self.guidance if self.guidance is not None else 1.0,
                                    max_inputs=self.max_inputs)
        identity = dict(getattr(calib, "identity", {}) or {})
        identity.update(spec=self.identity(), suite_hash=suite_hash)
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

    def __post_init__(self) -> None:
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


def default_calibration(model_name: str | None) -> CalibrationSpec:
    """The suite the model's registry entry names (``calibration_suite``: shapes-t2i for the
    ShapesWorld references, GenEval prompts for the real models); shapes-t2i when no model is named."""
    if not model_name:
        return CalibrationSpec(suite="shapes-t2i")
    base = model_name.split("/")[-1]
    entry = MODELS.get(base) if base in MODELS else None
    return CalibrationSpec(suite=getattr(entry, "calibration_suite", "geneval"))


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
