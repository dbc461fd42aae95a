"""Plans: JSON round trip, stable ordering, diffs, validation against a unit tree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from diffusers import ZImageTransformer2DModel

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.models.reference.tiny_moe import TinyMoETransformer, tiny_moe_config
from tmpbench.pruning import Budget, Decision, Plan, build_unit_tree, diff, model_identity, validate_plan
from tmpbench.pruning.plan import decode_ids, encode_ids

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
    assert data["version"] == 2 and data["budget"]["is_ratio"] is True
    assert [d["keep"] for d in data["decisions"]] == ["1", "0,3-4", None, None]


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
        ('{"model": {}, "budget": {}, "pruner": "x", "version": "2"}', "plan version 2 is not supported"),
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


# --- format version 2: kept ids as range strings ---------------------------------------------------------------------
DATA = Path(__file__).parents[1] / "data"
V1_PLAN = DATA / "plan-v1-tiny-hy3-tmp.json"  # a TMP plan on tiny-hy3, written before format 2
V2_PLAN = DATA / "plan-v2-tiny-hy3-tmp.json"  # the same plan as format 2 wrote it (ranges only)
V3_PLAN = DATA / "plan-v3-tiny-hy3-tmp.json"  # the same plan as save writes it now (scattered keeps Rice-coded)
PINNED_V2_SHA256 = "d1a09409cfd1223c28d22d3853183941e55de807cc25ade69df73080a41b4195"  # V2_PLAN's bytes
PINNED_V3_SHA256 = "d0121f016bec7c1f90e83bbea416ddcf0f6e3a019922ffa87b0518b9ac99acea"  # V3_PLAN's bytes


@pytest.mark.parametrize("ids, text", [
    ([], ""),
    ([7], "7"),
    ([0, 1, 2, 5, 7, 8], "0-2,5,7-8"),
    ([0, 2, 4], "0,2,4"),
    (list(range(130_000)) + list(range(131_000, 196_608)), "0-129999,131000-196607"),
])
def test_ids_round_trip_as_inclusive_ranges(ids, text):
    assert encode_ids(ids) == text
    assert decode_ids(text, 196_608, "keep") == ids


@pytest.mark.parametrize("ids, match", [
    ([3, 1], "keep must be sorted and unique to be written, got 3 then 1"),
    ([1, 1], "keep must be sorted and unique to be written, got 1 then 1"),
    ([-1, 0], "keep holds the negative id -1; ids count from 0"),
])
def test_ids_the_range_string_cannot_hold_are_refused_on_write(ids, match):
    plan = _plan(decisions=[Decision("layers.3.feed_forward", "prune_channels", keep=ids)])
    with pytest.raises(TmpbenchError, match=f"decision prune_channels at 'layers.3.feed_forward': {match}"):
        plan.to_json()


def _v2_text(keep, original_count=128, version=2) -> str:
    decision = {"path": "layers.3.feed_forward", "policy": "prune_channels", "keep": keep, "original_count": original_count}
    return json.dumps({"model": {}, "budget": {}, "pruner": "x", "version": version,
                       "decisions": [{"path": "layers.0", "policy": "drop_block"}, decision]})


@pytest.mark.parametrize("keep, match", [
    ("0-5,3-8", "keep range '3-8' overlaps or precedes '0-5'; ranges must ascend without overlap"),
    ("0-2,2", "keep range '2' overlaps or precedes '0-2'"),
    ("5-7,0-2", "keep range '0-2' overlaps or precedes '5-7'"),
    ("0-127,128", "keep range '128' is out of bounds for 128 units \\(ids 0..127\\)"),
    ("100-200", "keep range '100-200' is out of bounds for 128 units"),
    ("9-3", "keep range '9-3' starts after it stops; write it as '3-9'"),
    ("0-2,x", "keep range 'x' is not an integer id or an inclusive 'start-stop' of integer ids"),
    ("1.5", "keep range '1.5' is not an integer id"),
    ("-1", "keep range '-1' is not an integer id"),
    ("0-", "keep range '0-' is not an integer id"),
    ("0, 1", "keep range ' 1' is not an integer id"),
    ("0,,1", "keep range '' is not an integer id"),
    ("0-1-2", "keep range '0-1-2' is not an integer id"),
    (5, "'keep' must be a range string like '0-127,130-255' or null \\(version 2"),
    ([0, 1], "'keep' must be a range string .* a version 1 plan lists the ids and says \"version\": 1"),
])
def test_malformed_ranges_name_the_decision(keep, match):
    with pytest.raises(DataFormatError, match=f"^plan decision 1 at 'layers.3.feed_forward': {match}"):
        Plan.from_json(_v2_text(keep))


def test_ranges_without_original_count_are_bounded_by_validate_plan():
    plan = Plan.from_json(_v2_text("0-1,40", original_count=None))
    assert plan.decisions[1].keep == [0, 1, 40]
    with pytest.raises(DataFormatError, match="out of bounds for 8 units"):
        Plan.from_json(_v2_text("0-1,40", original_count=8))


def test_committed_v1_plan_reads_and_survives_a_round_trip(tmp_path):
    v1_text = V1_PLAN.read_text()
    assert json.loads(v1_text)["version"] == 1
    plan = Plan.load(V1_PLAN)
    assert {d.policy for d in plan.decisions} == {"prune_experts", "prune_channels"}
    experts = plan.by_path()[("model.layers.0.mlp.experts", "prune_channels")]
    assert experts.keep == json.loads(v1_text)["decisions"][1]["keep"] and len(experts.keep) == 712
    again = Plan.load(plan.save(tmp_path / "plan.json"))
    assert again == plan
    # activation-ordered channels are scattered: their coded form is shorter than ranges, so the plan saves as version 3
    assert json.loads((tmp_path / "plan.json").read_text())["version"] == 3
    # the version-1 writer kept for comparisons reproduces the committed file byte for byte
    assert plan.to_json(version=1) + "\n" == v1_text
    assert len(plan.to_json()) < len(plan.to_json(version=2)) < len(v1_text) / 3


def test_committed_v2_plan_reads_and_the_v2_writer_reproduces_it():
    v2_text = V2_PLAN.read_text()
    assert json.loads(v2_text)["version"] == 2
    plan = Plan.load(V2_PLAN)
    assert plan == Plan.load(V1_PLAN)
    assert plan.to_json(version=2) + "\n" == v2_text  # the ranges-only writer is unchanged


def test_contiguous_plans_still_save_as_version_2():
    """A plan whose every keep is shortest as ranges keeps the text (and hash) format 2 gave it."""
    plan = _plan(decisions=[Decision("layers.2.feed_forward", "prune_channels", keep=list(range(0, 30)) + [33],
                                     original_count=42)])
    assert json.loads(plan.to_json())["version"] == 2
    assert plan.to_json() == plan.to_json(version=2)
    assert json.loads(plan.to_json(version=3))["version"] == 3  # asked for: said, though nothing is coded


def test_plan_hash_is_the_hash_of_the_canonical_text(tmp_path):
    import hashlib

    from tmpbench.provenance import sha256_file

    plan = Plan.load(V1_PLAN)
    path = plan.save(tmp_path / "a.json")
    text = plan.to_json() + "\n"
    assert path.read_text() == text and sha256_file(path) == hashlib.sha256(text.encode()).hexdigest()
    assert Plan.load(path).save(tmp_path / "b.json").read_bytes() == path.read_bytes()  # re-saving changes nothing
    shuffled = Plan(**{**vars(plan), "decisions": list(reversed(plan.decisions))})
    assert shuffled.to_json() == plan.to_json()
    # pinned: a change here changes every plan_sha256 recorded from now on, so it needs a new plan version
    assert text == V3_PLAN.read_text()
    assert hashlib.sha256(text.encode()).hexdigest() == PINNED_V3_SHA256
    assert hashlib.sha256((plan.to_json(version=2) + "\n").encode()).hexdigest() == PINNED_V2_SHA256


def test_unknown_write_version():
    with pytest.raises(TmpbenchError, match="plan version 4 cannot be written; choose one of \\[1, 2, 3\\]"):
        _plan().to_json(version=4)
