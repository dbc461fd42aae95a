"""The pruned-model cache of `tmpbench run`: the key covers every setting, a second call loads the same model."""

from __future__ import annotations

import numpy as np
from tiny_generators import tiny_generator

from tmpbench.pruning.cache import get_or_prune, pruned_cache_key
from tmpbench.pruning.recipes import CalibrationSpec, RecoveryRecipe

SPEC = CalibrationSpec(n_prompts=2, steps=2, size=32)


def test_cache_key_covers_every_setting():
    base = dict(spec_text="tiny-dit", pruner="random", budget="10%", pruner_settings={}, calibration_spec=SPEC,
                recovery_recipe=RecoveryRecipe(), base_model_hash="abc")
    key = pruned_cache_key(**base)
    assert len(key) == 16 and int(key, 16) >= 0
    changes = ({"spec_text": "tiny-moe"}, {"pruner": "magnitude"}, {"budget": "20%"}, {"pruner_settings": {"x": 1}},
               {"recovery_recipe": RecoveryRecipe(lr=1e-3)}, {"calibration_spec": CalibrationSpec(n_prompts=3)},
               {"base_model_hash": "abd"})
    keys = {pruned_cache_key(**{**base, **change}) for change in changes}
    assert key not in keys and len(keys) == len(changes)
    # a recipe and its identity dict name the same settings
    assert pruned_cache_key(**{**base, "calibration_spec": SPEC.identity(), "recovery_recipe": RecoveryRecipe().identity()}) == key


def test_get_or_prune_caches(tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    tiny_generator().save(ref)
    monkeypatch.setenv("TMPBENCH_TINY_DIT_PATH", str(ref))
    gen1, info1 = get_or_prune("tiny-dit-10%", pruner="random", cache_dir=tmp_path / "cache", progress=False,
                               calibration=SPEC)
    gen2, info2 = get_or_prune("tiny-dit-10%", pruner="random", cache_dir=tmp_path / "cache", progress=False,
                               calibration=SPEC)
    assert (info1["cached"], info2["cached"]) == (False, True)
    assert info1["cache_key"] == info2["cache_key"] and info1["path"] == info2["path"]
    assert info1["path"].endswith(f"tiny-dit-10pct-random-{info1['cache_key'][:12]}")
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [info1["path"].rsplit("/", 1)[-1]]  # no .partial left
    assert info2["budget_check"]["ok"] is True
    a = np.asarray(gen1.generate(["a photo of a circle"], [3], 2, 1.0, 32)[0])
    b = np.asarray(gen2.generate(["a photo of a circle"], [3], 2, 1.0, 32)[0])
    assert np.array_equal(a, b)


def test_a_changed_pruner_default_keys_cached_plans_apart(monkeypatch):
    """``Pruner.KEYED_DEFAULTS`` is the snapshot prune-cache keys are relative to. TMP's ``fill`` default moved
    from "measured" to "lazy" (session 12): a default TMP plan now keys as if ``fill="lazy"`` were set, so a
    plan cached under the old default is not taken for it; every other default and pruner keys as before."""
    from tmpbench.catalog import PRUNERS
    from tmpbench.pruning.factory import default_drift

    assert {name: default_drift(name) for name in PRUNERS.names() if default_drift(name)} == {"tmp": {"fill": "lazy"}}
    assert default_drift("tmp", {"fill": "measured"}) == {}  # an explicit value keys as it always did
    assert default_drift("tmp", {"chunks": 4}) == {"fill": "lazy"}
    base = dict(spec_text="tiny-dit", pruner="tmp", budget="25%", calibration_spec=None, recovery_recipe=None,
                base_model_hash="x")
    assert pruned_cache_key(**base, pruner_settings=default_drift("tmp")) == pruned_cache_key(
        **base, pruner_settings={"fill": "lazy"}) != pruned_cache_key(**base, pruner_settings={})
    tmp = PRUNERS.get("tmp")
    monkeypatch.setattr(tmp, "SETTINGS", {**tmp.SETTINGS, "new_knob": 3})  # added later: its default is the old behaviour
    assert "new_knob" not in default_drift("tmp")
