"""Plans: JSON round trip, stable ordering, diffs, validation against a unit tree."""

from __future__ import annotations

import json

import pytest
import torch
from diffusers import ZImageTransformer2DModel

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.models.reference.tiny_moe import TinyMoETransformer, tiny_moe_config
from tmpbench.pruning import Budget, Decision, Plan, build_unit_tree, diff, model_identity, validate_plan

TINY = dict(
    all_patch_size=(2,), all_f_patch_size=(1,), in_channels=4, dim=16, n_layers=12, n_refiner_layers=1,
    n_heads=2, n_kv_heads=2, cap_feat_dim=8, axes_dims=[2, 2, 4], axes_lens=[64, 16, 16],
)


def _plan(**overrides) -> Plan:
    fields = dict(
        model={"name": "tiny-dit", "class": "ZImageTransformer2DModel", "config_sha256": "abc"},
        budget=Budget.parse("33%").to_dict(),
        pruner="magnitude",
        decisions=[
            Decision("layers.10", "drop_block"),
            Decision("layers.2.feed_forward", "prune_channels", keep=[0, 3, 4], original_count=42),
            Decision("layers.2.attention", "prune_heads", keep=[1], original_count=2),
            Decision("layers.9", "linear_replace", linear={"dim": 16, "fit": "lstsq", "samples": 512}),
        ],
        original_params=1000,
        achieved_params=670,
        settings={"seed": 0},
        calibration={"name": "shapes-calib", "n": 8, "sha256": "f00"},
    )
    fields.update(overrides)
    return Plan(**fields)


def test_json_round_trip_and_file(tmp_path):
    plan = _plan()
    again = Plan.from_json(plan.to_json())
    assert again == plan
    path = plan.save(tmp_path / "plan.json")
    assert Plan.load(path) == plan
    data = json.loads(path.read_text())
    assert data["decisions"][0]["keep"] == [1] and data["budget"]["is_ratio"] is True


def test_stable_natural_ordering():
    plan = _plan()
    assert [(d.path, d.policy) for d in plan.decisions] == [
        ("layers.2.attention", "prune_heads"),
        ("layers.2.feed_forward", "prune_channels"),
        ("layers.9", "linear_replace"),
        ("layers.10", "drop_block"),  # 10 after 9, not after 1
    ]
    shuffled = _plan(decisions=list(reversed(_plan().decisions)))
    assert shuffled.to_json() == plan.to_json()


def test_summary_line():
    text = _plan().summary()
    assert text.splitlines()[0] == (
        "plan by magnitude for tiny-dit under budget 33%: 1,000 -> 670 params (33.0% removed), 4 decisions"
    )
    assert "  layers.2.attention prune_heads keep 1/2" in text


def test_diff():
    a = _plan()
    assert diff(a, _plan()) == []
    b = _plan(
        decisions=[
            Decision("layers.2.attention", "prune_heads", keep=[0, 1], original_count=2),
            Decision("layers.2.feed_forward", "prune_channels", keep=[0, 3, 4], original_count=42),
            Decision("layers.11", "drop_block"),
            Decision("layers.9", "linear_replace", linear={"dim": 16, "fit": "lstsq", "samples": 512}),
        ],
        achieved_params=700,
    )
    assert diff(a, b) == [
        "~ achieved_params: 670 -> 700",
        "~ layers.2.attention prune_heads: keep 1 -> 2 (dropped [], added [0])",
        "- layers.10 drop_block",
        "+ layers.11 drop_block",
    ]


@pytest.mark.parametrize(
    "text, match",
    [
        ("{", "plan is not valid JSON"),
        ("[]", "a plan must be a JSON object, got list"),
        ('{"model": {}, "budget": {}, "pruner": "x", "colour": 1}', "unknown fields \\['colour'\\]"),
        ('{"model": {}, "budget": {}}', "lacks required fields \\['pruner'\\]"),
        ('{"model": {}, "budget": {}, "pruner": "x", "version": 9}', "plan version 9 is not supported"),
        (
            '{"model": {}, "budget": {}, "pruner": "x", "decisions": [{"path": "layers.0", "policy": "drop_blocks"}]}',
            "unknown policy 'drop_blocks'; did you mean 'drop_block'",
        ),
        (
            '{"model": {}, "budget": {}, "pruner": "x", "decisions": [{"path": "a", "policy": "prune_heads"}]}',
            "needs keep=\\[...\\]",
        ),
        (
            '{"model": {}, "budget": {}, "pruner": "x", "decisions": [{"path": "a", "policy": "drop_block", "x": 1}]}',
            "decision 0 has unknown fields \\['x'\\]",
        ),
    ],
)
def test_from_json_errors(text, match):
    with pytest.raises(TmpbenchError, match=match):
        Plan.from_json(text)


def test_load_missing_and_bad_file(tmp_path):
    with pytest.raises(TmpbenchError, match="does not exist"):
        Plan.load(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(DataFormatError, match="bad.json: plan is not valid JSON"):
        Plan.load(bad)


def test_model_identity_on_meta_tracks_config():
    with torch.device("meta"):
        a = ZImageTransformer2DModel(**TINY)
        b = ZImageTransformer2DModel(**{**TINY, "n_layers": 3})
    ia, ib = model_identity(a, "tiny-dit"), model_identity(b, "tiny-dit")
    assert ia["class"] == "ZImageTransformer2DModel" and ia["name"] == "tiny-dit"
    assert ia["config_sha256"] != ib["config_sha256"] and len(ia["config_sha256"]) == 16
    assert model_identity(a, "tiny-dit") == ia


def test_validate_plan_against_trees():
    with torch.device("meta"):
        dense = ZImageTransformer2DModel(**TINY)
        moe = TinyMoETransformer(**tiny_moe_config(n_layers=2, num_experts=4, moe_topk=2))
    tree = build_unit_tree(dense, size=32)
    validate_plan(_plan(), tree)  # every decision is admitted and in range
    with pytest.raises(TmpbenchError, match="two decisions \\(prune_heads and prune_heads\\)"):
        validate_plan(_plan(decisions=[Decision("layers.0.attention", "prune_heads", keep=[0])] * 2), tree)
    with pytest.raises(TmpbenchError, match="index 42 is out of range for 42 units"):
        validate_plan(_plan(decisions=[Decision("layers.0.feed_forward", "prune_channels", keep=[0, 42])]), tree)

    mtree = build_unit_tree(moe, size=32, vae_factor=2)
    mplan = dict(model={"class": "TinyMoETransformer"}, budget={}, pruner="x")
    validate_plan(Plan(**mplan, decisions=[Decision("layers.0.feed_forward", "merge_experts", groups=[[0, 3], [1], [2]])]), mtree)
    with pytest.raises(TmpbenchError, match="keeps 1 experts but top_k is 2"):
        validate_plan(Plan(**mplan, decisions=[Decision("layers.0.feed_forward", "prune_experts", keep=[2])]), mtree)
    with pytest.raises(TmpbenchError, match="leaves 1 experts but top_k is 2"):
        validate_plan(Plan(**mplan, decisions=[Decision("layers.0.feed_forward", "merge_experts", groups=[[0, 1, 2, 3]])]), mtree)
    with pytest.raises(TmpbenchError, match="missing \\[3\\]"):
        validate_plan(Plan(**mplan, decisions=[Decision("layers.0.feed_forward", "merge_experts", groups=[[0, 1], [2]])]), mtree)
    with pytest.raises(TmpbenchError, match="policy 'prune_channels' is not admitted at 'layers.0.feed_forward' \\(moe\\)"):
        validate_plan(Plan(**mplan, decisions=[Decision("layers.0.feed_forward", "prune_channels", keep=[0])]), mtree)
