"""The pruner factory: names to strategies through the registry, the family check, the listing."""

from __future__ import annotations

import pytest
from tiny_generators import tiny_generator

from tmpbench.errors import TmpbenchError
from tmpbench.pruning.factory import check_family, make_pruner, pruner_list


def test_make_pruner_passes_seed_and_settings():
    pruner = make_pruner("magnitude", seed=3, settings={"round_to": 8})
    assert pruner.settings() == {"seed": 3, "round_to": 8}
    with pytest.raises(TmpbenchError, match="did you mean 'random'"):
        make_pruner("randon")


def test_check_family_refuses_in_one_line():
    dense = tiny_generator().denoiser
    assert check_family(make_pruner("random"), "random", dense) == "dit"
    with pytest.raises(TmpbenchError, match=r"pruner 'reap' works on moe models, but ZImageTransformer2DModel is a dit model; "
                                            r"pick a pruner for dit \(`tmpbench pruners list`\)"):
        check_family(make_pruner("reap"), "reap", dense)


def test_pruner_list_rows():
    rows = {r["name"]: r for r in pruner_list()}
    assert {"tmp", "random", "magnitude", "taylor", "block-influence", "late-drop", "expert-frequency", "reap"} <= set(rows)
    assert rows["reap"]["families"] == ["moe"] and rows["reap"]["needs_calibration"] is True
    assert rows["random"]["families"] == ["dit", "moe"] and rows["random"]["needs_calibration"] is False
    assert rows["random"]["description"]
