"""Calibration task mixes: T2I prompts and edit instructions in one calibration, recorded in its identity."""

from __future__ import annotations

import pytest
from tiny_generators import tiny_generator

from tmpbench.errors import TmpbenchError
from tmpbench.pruning.recipes import CalibrationSpec, default_calibration, parse_mix


def test_parse_mix_and_one_line_errors():
    assert parse_mix("t2i=0.5,edit=0.5") == (("edit", 0.5), ("t2i", 0.5))
    assert parse_mix({"t2i": 1}) == (("t2i", 1.0),)
    for bad, match in (("t2i=0.5,edti=0.5", r"unknown task 'edti'; did you mean 'edit'"),
                       ("t2i=0.6,edit=0.6", r"shares sum to 1.2, not 1"),
                       ("t2i", r"must look like task=share"),
                       ("t2i=0,edit=1", r"share of 't2i' must be a positive number"),
                       ("", r"calibration mix is empty")):
        with pytest.raises(TmpbenchError, match=match):
            parse_mix(bad)


def test_identity_records_the_mix_and_t2i_only_keeps_the_old_hash():
    plain = CalibrationSpec(n_prompts=4)
    assert CalibrationSpec(n_prompts=4, mix="t2i=1").hash == plain.hash and "mix" not in plain.identity()
    mixed = CalibrationSpec(n_prompts=4, mix="t2i=0.5,edit=0.5")
    assert mixed.identity()["mix"] == {"edit": 0.5, "t2i": 0.5} and mixed.hash != plain.hash
    assert mixed.counts == {"t2i": 2, "edit": 2} and CalibrationSpec(n_prompts=3, mix="t2i=0.9,edit=0.1").counts == {"t2i": 2, "edit": 1}


def test_edit_capable_references_default_to_a_mix():
    assert default_calibration("tiny-dit").mix == (("edit", 0.5), ("t2i", 0.5))
    assert default_calibration("tiny-hy3").edit_suite == "shapes-edit"
    assert default_calibration("zimage").mix is None  # Z-Image-Turbo is T2I only


def test_collect_captures_edit_calls():
    gen = tiny_generator()
    spec = CalibrationSpec(n_prompts=2, steps=2, size=32, mix="t2i=0.5,edit=0.5")
    calib = spec.collect(gen)
    assert calib.identity["n_edits"] == 1 and calib.identity["n_edit_calls"] == 2 and len(calib) == 4
    assert calib.identity["spec"]["mix"] == {"edit": 0.5, "t2i": 0.5} and calib.identity["edit_suite_hash"]
    # an edit call carries the clean source image beside the noisy one (omni mode)
    args, kwargs = calib.inputs[-1]
    assert kwargs.get("image_noise_mask") == [[0, 1]]


def test_an_edit_mix_on_a_model_without_edits_is_one_line():
    gen = tiny_generator()
    gen.supports_edit = False
    with pytest.raises(TmpbenchError, match=r"has edits, but model 'tiny-dit' does not support editing; use --calibration-mix t2i=1"):
        CalibrationSpec(n_prompts=2, steps=2, size=32, mix="t2i=0.5,edit=0.5").collect(gen)


@pytest.mark.parametrize("pruner", ["taylor", "tmp", "block-influence"])
def test_data_driven_pruners_take_a_mixed_calibration(pruner):
    """Edit calls (omni mode: a clean source latent beside the noisy one) feed every scorer, Taylor's loss included."""
    from tmpbench.pruning.runner import prune_generator

    spec = CalibrationSpec(n_prompts=2, steps=2, size=32, mix="t2i=0.5,edit=0.5")
    settings = {"chunks": 4, "max_calib_inputs": 4} if pruner == "tmp" else None
    result = prune_generator(tiny_generator(), pruner, "5%", calibration=spec, pruner_settings=settings, progress=False)
    assert result.budget_report.ok and result.calibration_identity["collected"]["n_edits"] == 1
