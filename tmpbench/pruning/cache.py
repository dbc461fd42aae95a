"""The pruned-model cache of ``tmpbench run``: a spec such as ``tiny-dit-50%`` is pruned once and
loaded from disk afterwards.

A cached folder is keyed by every setting that shaped it (:func:`pruned_cache_key`): the base
spec, pruner, budget, pruner settings, the calibration spec and recovery recipe identities, and a
fingerprint of the base weights. Change any of them and the key, hence the folder, changes. A
folder is written under a ``.partial`` name and renamed when complete, so a crash leaves no folder
that looks finished. A recovered model whose unrecovered twin (same key but 0 recovery steps) is
cached starts from that twin's plan instead of planning again, and carries its planning cost.

Example::

    >>> gen, info = get_or_prune("tiny-dit-10%", pruner="random", cache_dir="runs/pruned-cache")  # doctest: +SKIP
    >>> info["cached"], info["path"]                                                          # doctest: +SKIP
    (False, 'runs/pruned-cache/tiny-dit-10pct-random-3f2a...')
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

from tmpbench.errors import TmpbenchError
from tmpbench.models.spec import ModelSpec, parse_spec, resolve_entry
from tmpbench.pruning.factory import default_drift
from tmpbench.pruning.io import PLAN_FILE, PRUNED_FILE, folder_provenance, load_pruned, save_pruned
from tmpbench.pruning.plan import Plan
from tmpbench.pruning.recipes import CalibrationSpec, RecoveryRecipe, default_calibration, settings_digest
from tmpbench.pruning.runner import prune_generator, weights_fingerprint


def pruned_cache_key(
    spec_text: str,
    pruner: str,
    budget: str,
    pruner_settings: dict | None,
    calibration_spec: CalibrationSpec | dict | None,
    recovery_recipe: RecoveryRecipe | dict | None,
    base_model_hash: str,
) -> str:
    """Key of a cached pruned model: every setting that shaped it."""
    def ident(x: Any) -> Any:
        return x.identity() if hasattr(x, "identity") else x

    return settings_digest({
        "spec": spec_text, "pruner": pruner, "budget": budget, "settings": pruner_settings or {},
        "calibration": ident(calibration_spec), "recovery": ident(recovery_recipe), "base": base_model_hash,
    })


def get_or_prune(
    spec: Any,
    *,
    pruner: str | None,
    cache_dir: str | Path,
    recover_steps: int = 0,
    budget: str | None = None,
    device: str = "cpu",
    model_path: str | None = None,
    pruner_settings: dict | None = None,
    calibration: CalibrationSpec | None = None,
    recovery: RecoveryRecipe | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[Any, dict[str, Any]]:
    """The pruned generator a spec names (``tiny-dit-50%`` / ``--pruner``), from ``cache_dir`` when a
    folder with the same key exists, else pruned now and saved there. Returns ``(generator, info)``;
    ``info`` holds the key, folder, whether it was cached, the budget check and the identities."""
    parsed = spec if isinstance(spec, ModelSpec) else parse_spec(str(spec), pruner=pruner if budget is None else None)
    budget_text = budget or parsed.budget
    if budget_text is None:
        raise TmpbenchError(f"model spec {str(parsed)!r} names no budget; give a size such as {parsed.base}-50%")
    pruner_name = pruner or parsed.pruner or "tmp"
    entry = resolve_entry(parsed)
    base = entry.load(path=model_path if model_path is not None else parsed.path, device=device)
    spec_cal = (calibration or default_calibration(entry.name)).resolved(entry.default_steps, entry.default_size,
                                                                         entry.default_guidance)
    recipe = recovery if recovery is not None else RecoveryRecipe(steps=int(recover_steps), seed=seed)
    fingerprint = weights_fingerprint(base.denoiser)

    keyed = {**default_drift(pruner_name, pruner_settings), **(pruner_settings or {})}

    def folder_for(rec: RecoveryRecipe) -> tuple[str, Path]:
        key = pruned_cache_key(parsed.base, pruner_name, budget_text, keyed, spec_cal, rec, fingerprint)
        return key, Path(cache_dir) / f"{parsed.base}-{budget_text.replace('%', 'pct')}-{pruner_name}-{key[:12]}"

    key, folder = folder_for(recipe)
    if (folder / PRUNED_FILE).is_file():
        gen = load_pruned(folder, device=device)
        return gen, {**folder_provenance(folder), "cache_key": key, "cached": True}
    reuse = None
    if recipe.steps > 0:  # a recovery curve: the unrecovered model of the same plan, when cached, gives the plan
        _, folder0 = folder_for(dataclasses.replace(recipe, steps=0))
        if (folder0 / PRUNED_FILE).is_file():
            meta = json.loads((folder0 / PRUNED_FILE).read_text())
            reuse = (Plan.load(folder0 / PLAN_FILE), meta.get("pruning_cost") or {})
    result = prune_generator(base, pruner_name, budget_text, pruner_settings=pruner_settings, calibration=spec_cal,
                             recovery=recipe, seed=seed, progress=progress, reuse=reuse)
    tmp = folder.with_name(folder.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    save_pruned(result, tmp, spec_text=str(parsed))
    if folder.exists():
        shutil.rmtree(folder)
    tmp.rename(folder)
    # read back like any folder (one code path with `--model DIR`); the pruning seconds are this run's
    return load_pruned(folder, device=device), {**folder_provenance(folder), "cache_key": key, "cached": False}
