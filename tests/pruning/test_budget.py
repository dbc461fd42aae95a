"""Budgets: parsing, targets, the achieved-size check and its errors."""

from __future__ import annotations

import pytest
from diffusers import ZImageTransformer2DModel

from tmpbench.errors import TmpbenchError
from tmpbench.pruning import Budget, build_unit_tree, check_achieved, original_for_tree


@pytest.mark.parametrize(
    "text, kind, value, is_ratio, resolution",
    [
        ("4b", "params", 4e9, False, None),
        ("500m", "params", 5e8, False, None),
        ("2e10", "params", 2e10, False, None),
        ("1.5B", "params", 1.5e9, False, None),
        ("33%", "params", 0.33, True, None),
        ("params:250k", "params", 2.5e5, False, None),
        ("flops@1024:50%", "flops", 0.5, True, 1024),
        ("flops@512:2e13", "flops", 2e13, False, 512),
        ("latency:25%", "latency", 0.25, True, None),
        ("latency:120ms", "latency", 0.12, False, None),
        ("latency:1.5s", "latency", 1.5, False, None),
    ],
)
def test_parse(text, kind, value, is_ratio, resolution):
    b = Budget.parse(text)
    assert (b.kind, b.is_ratio, b.resolution, b.text) == (kind, is_ratio, resolution, text)
    assert b.value == pytest.approx(value)
    assert Budget.from_dict(b.to_dict()) == b


def test_kind_given_separately():
    assert Budget.parse("50%", kind="flops@256").label == "flops@256"
    with pytest.raises(TmpbenchError, match="says kind 'params' but kind 'latency' was also given"):
        Budget.parse("params:50%", kind="latency")


def test_targets():
    assert Budget.parse("33%").target(6e9) == pytest.approx(4.02e9)
    assert Budget.parse("4b").target(6.15e9) == 4e9
    assert Budget.parse("latency:25%").target(2.0) == pytest.approx(1.5)
    assert Budget.parse("latency:120ms").target(0.2) == pytest.approx(0.12)


@pytest.mark.parametrize(
    "text, match",
    [
        ("100%", "strictly between 0% and 100%"),
        ("150%", "strictly between 0% and 100%"),
        ("0%", "strictly between 0% and 100%"),
        ("-5%", "not understood"),
        ("", "not understood"),
        ("four billion", "amount 'four billion' is not understood"),
        ("12ms", "a time amount needs a latency budget, e.g. latency:12ms"),
        ("latency:5", "needs a unit \\(ms or s\\)"),
        ("flops:50%", "must name a resolution, e.g. flops@1024"),
        ("bytes:4b", "budget kind 'bytes' is unknown; expected params, flops@SIZE or latency"),
        ("0", "must be positive"),
    ],
)
def test_parse_errors(text, match):
    with pytest.raises(TmpbenchError, match=match):
        Budget.parse(text)


def test_flops_kind_needs_resolution():
    with pytest.raises(TmpbenchError, match="must name a resolution, e.g. flops@1024"):
        Budget.parse("50%", kind="flops")


def test_target_errors():
    with pytest.raises(TmpbenchError, match="asks for 7,000,000,000 params, not below the model's 6,000,000,000 params"):
        Budget.parse("7b").target(6e9)
    with pytest.raises(TmpbenchError, match="not below"):
        Budget.parse("6b").target(6e9)
    with pytest.raises(TmpbenchError, match="smallest feasible model keeps 2,000,000 params; give at least that much"):
        Budget.parse("1m").target(6e9, minimum=2e6)
    with pytest.raises(TmpbenchError, match="smallest feasible"):
        Budget.parse("99.99%").target(6e9, minimum=2e6)


def test_check_achieved_tolerance():
    b = Budget.parse("50%")
    ok = check_achieved(1_000_000, 502_000, b)
    assert ok.ok and not ok.rounded and ok.relative_error == pytest.approx(0.004)
    bad = check_achieved(1_000_000, 503_000, b)
    assert not bad.ok
    assert "achieved 503,000 params vs target 500,000 params (+0.60%, tolerance 0.50%) misses" in bad.message
    with pytest.raises(TmpbenchError, match="misses the budget"):
        bad.require()
    assert ok.require() is ok


def test_check_achieved_with_rounding():
    b = Budget.parse("50%")
    # rounding widths to 64 channels moves size in steps of 64 * 3 * 100 = 19,200: 1.92% of target
    report = check_achieved(1_000_000, 515_000, b, rounding_multiple=64, step=19_200)
    assert report.ok and report.rounded and report.tolerance == pytest.approx(0.0384)
    assert "widths rounded to multiples of 64 (step 19,200 params)" in report.message
    assert not check_achieved(1_000_000, 540_000, b, rounding_multiple=64, step=19_200).ok
    with pytest.raises(TmpbenchError, match="rounding_multiple needs step"):
        check_achieved(1_000_000, 515_000, b, rounding_multiple=64)


def test_original_for_tree():
    model = ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=4, dim=16, n_layers=2, n_refiner_layers=1,
        n_heads=2, n_kv_heads=2, cap_feat_dim=8, axes_dims=[2, 2, 4], axes_lens=[64, 16, 16],
    )
    tree = build_unit_tree(model, size=64)
    original, minimum = original_for_tree(Budget.parse("33%"), tree)
    assert (original, minimum) == (tree.params, tree.min_params)
    assert original_for_tree(Budget.parse("flops@64:33%"), tree) == (tree.flops, tree.min_flops)
    with pytest.raises(TmpbenchError, match="counts FLOPs at 512px but the unit tree was built at 64px"):
        original_for_tree(Budget.parse("flops@512:33%"), tree)
    with pytest.raises(TmpbenchError, match="latency budget"):
        original_for_tree(Budget.parse("latency:10%"), tree)
    # a budget below what must stay (fixed embedders, refiners at one head/channel) is refused
    with pytest.raises(TmpbenchError, match="smallest feasible model keeps"):
        Budget.parse("99%").target(original, minimum=minimum)
