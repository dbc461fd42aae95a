"""User errors are one clear line: unsupported model, impossible budgets, missing calibration, bad settings."""

import pytest

from tmpbench.catalog import PRUNERS
from tmpbench.errors import TmpbenchError
from tmpbench.pruning import Budget


@pytest.mark.parametrize("name", ["expert-frequency", "reap"])
def test_moe_only_pruner_refuses_a_dense_model(dense, name):
    with pytest.raises(TmpbenchError, match=rf"pruner '{name}' works on MoE models only, but ZImageTransformer2DModel is a dense DiT"):
        PRUNERS.get(name)().plan(dense.model, dense.tree, Budget.parse("25%"), dense.calib)


@pytest.mark.parametrize("name", ["tmp", "magnitude", "late-drop", "random"])
def test_impossible_budgets(dense, name):
    pruner = PRUNERS.get(name)()
    with pytest.raises(TmpbenchError, match=r"not below the model's"):
        pruner.plan(dense.model, dense.tree, Budget.parse(str(dense.tree.params + 1)), None)
    with pytest.raises(TmpbenchError, match=r"smallest feasible model keeps"):
        pruner.plan(dense.model, dense.tree, Budget.parse("90%"), None)
    with pytest.raises(TmpbenchError, match=r"strictly between 0% and 100%"):
        Budget.parse("100%")
    with pytest.raises(TmpbenchError, match=r"latency budget; plan with a params or flops"):
        pruner.plan(dense.model, dense.tree, Budget.parse("latency:25%"), None)


def test_width_pruner_beyond_its_reach_names_the_nearest_size(dense):
    with pytest.raises(TmpbenchError, match=r"magnitude \(heads/channels only\) cannot land budget '70%'.*nearest size it reaches"):
        PRUNERS.get("magnitude")().plan(dense.model, dense.tree, Budget.parse("70%"), None)


@pytest.mark.parametrize("name", ["taylor", "block-influence"])
def test_data_pruners_need_calibration(dense, name):
    with pytest.raises(TmpbenchError, match=rf"pruner '{name}' scores with calibration data and none was given"):
        PRUNERS.get(name)().plan(dense.model, dense.tree, Budget.parse("25%"), None)


def test_unknown_setting_and_seed():
    with pytest.raises(TmpbenchError, match=r"pruner 'magnitude' has no setting 'round'; did you mean 'round_to'"):
        PRUNERS.get("magnitude")(round=8)
    with pytest.raises(TmpbenchError, match=r"seed must be an integer"):
        PRUNERS.get("random")(seed="x")
    with pytest.raises(TmpbenchError, match=r"method 'fisher' is unknown"):
        PRUNERS.get("taylor")(method="fisher")


def test_every_pruner_is_registered_with_its_families():
    names = ["tmp", "random", "magnitude", "taylor", "block-influence", "late-drop", "expert-frequency", "reap", "best-of-n"]
    for n in names:
        cls = PRUNERS.get(n)
        assert cls.name == n
        assert cls().settings()["seed"] == 0
    assert PRUNERS.get("reap").families == frozenset({"moe"})
    assert PRUNERS.get("tmp").families == frozenset({"dit", "moe"})
