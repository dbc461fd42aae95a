"""Calibration specs and recovery recipes: validation, defaults from the registry, stable identities."""

from __future__ import annotations

import pytest

from tmpbench.errors import TmpbenchError
from tmpbench.pruning.recipes import (
    CalibrationSpec,
    RecoveryRecipe,
    default_calibration,
    model_defaults,
    model_name_of,
    settings_digest,
)


def test_spec_validation():
    with pytest.raises(TmpbenchError, match="at least 1 prompt, got n_prompts=0"):
        CalibrationSpec(n_prompts=0)
    with pytest.raises(TmpbenchError, match="2 seeds for 3 prompts; give one per prompt"):
        CalibrationSpec(n_prompts=3, seeds=(1, 2))
    with pytest.raises(TmpbenchError, match="calibration steps must be >= 1, got 0"):
        CalibrationSpec(steps=0)
    with pytest.raises(TmpbenchError, match="fresh_fraction must lie in \\[0, 1\\], got 2"):
        RecoveryRecipe(fresh_fraction=2)
    with pytest.raises(TmpbenchError, match="call .resolved"):
        CalibrationSpec().collect(None)


def test_resolved_fills_only_what_is_unset():
    spec = CalibrationSpec(n_prompts=2, steps=4).resolved(8, 1024, 0.0)
    assert (spec.steps, spec.size, spec.guidance) == (4, 1024, 0.0)
    assert CalibrationSpec(seeds=[1] * 8).seeds == (1,) * 8  # seeds become a tuple (hashable, frozen)


def test_identities_hash_every_field():
    spec = CalibrationSpec(n_prompts=2)
    assert spec.identity()["hash"] == spec.hash == CalibrationSpec(n_prompts=2).hash
    assert spec.hash != CalibrationSpec(n_prompts=3).hash != CalibrationSpec(n_prompts=3, suite="geneval").hash
    recipe = RecoveryRecipe(steps=3)
    assert recipe.identity()["method"] == "kd-output-mse" and recipe.hash != RecoveryRecipe(steps=3, lr=1e-3).hash
    assert settings_digest({"a": 1, "b": 2}) == settings_digest({"b": 2, "a": 1}) != settings_digest({"a": 1})


def test_defaults_come_from_the_registry():
    assert default_calibration(None).suite == "shapes-t2i"
    assert default_calibration("tiny-dit").suite == "shapes-t2i"
    assert default_calibration("zimage").suite == "geneval"

    class Gen:
        model, name = "zimage", "ignored"

    class Unregistered:
        model, name = object(), "my-model"

    assert model_name_of(Gen()) == "zimage" and model_name_of(Unregistered()) == "my-model"
    assert model_defaults(Unregistered()) == (2, 32, 1.0)
    steps, size, guidance = model_defaults(Gen())
    assert (steps, size) != (2, 32) and isinstance(guidance, float)


def test_calibration_draws_are_disjoint_and_draw_zero_keeps_its_identity():
    base = CalibrationSpec(n_prompts=8, mix=(("edit", 0.5), ("t2i", 0.5)))
    # draw 0 is the spec as it was before draws existed: its identity has no "draw" key, so caches and
    # recorded runs keep their hashes
    assert "draw" not in base.identity() and CalibrationSpec(n_prompts=8, mix=(("edit", 0.5), ("t2i", 0.5)), draw=0).hash == base.hash
    ids = [CalibrationSpec(n_prompts=8, mix=(("edit", 0.5), ("t2i", 0.5)), draw=k).item_ids() for k in range(3)]
    for suite in ("shapes-t2i", "shapes-edit"):
        sets = [set(d[suite]) for d in ids]
        assert all(len(s) == 4 for s in sets)
        assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert len({CalibrationSpec(n_prompts=8, draw=k).hash for k in range(3)}) == 3
    # draw k is what a spec of (k + 1) x n items adds to one of k x n
    two = set(CalibrationSpec(n_prompts=8).item_ids()["shapes-t2i"]) | set(CalibrationSpec(n_prompts=8, draw=1).item_ids()["shapes-t2i"])
    assert two == set(CalibrationSpec(n_prompts=16).item_ids()["shapes-t2i"])
    # other splits ignore the draw (it chooses calibration items only)
    assert CalibrationSpec(n_prompts=2, draw=1).prompts(split="test") == CalibrationSpec(n_prompts=2).prompts(split="test")
    with pytest.raises(TmpbenchError, match="calibration draw 7 needs 64 calib items of 'shapes-t2i'"):
        CalibrationSpec(n_prompts=8, draw=7).prompts()
    with pytest.raises(TmpbenchError, match="calibration draw must be >= 0, got -1"):
        CalibrationSpec(draw=-1)
