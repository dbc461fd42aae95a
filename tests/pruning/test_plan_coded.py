"""Plan format 3: scattered kept ids as Rice-coded id sets ("rice<K>:<kept|drop><N>:<base64>").

A bit-by-bit reference coder written from plan.py's docstring checks the vectorised one; the writer
must pick the shortest form (ranges unless a coded form is strictly shorter); damaged coded sets are
refused in one line naming the decision; HunyuanImage-3.0's random 20B plan fits in 1 MB.
"""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tmpbench.errors import DataFormatError
from tmpbench.pruning import Decision, Plan
from tmpbench.pruning.plan import decode_keep, encode_ids, encode_keep

MB = 1_000_000


def reference_code(ids: list[int], count: int, k: int, which: str) -> str:
    """The coded form with parameter ``k`` of ``ids`` (``which`` = "kept") or of their complement
    ("drop"), bit by bit as the plan.py docstring specifies it."""
    coded = ids if which == "kept" else sorted(set(range(count)) - set(ids))
    gaps, prev = [], -1
    for x in coded:
        gaps.append(x - prev - 1)
        prev = x
    bits = "".join(format(d % (1 << k), f"0{k}b") if k else "" for d in gaps)
    bits += "".join("1" * (d >> k) + "0" for d in gaps)
    bits += "0" * (-len(bits) % 8)
    raw = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits), 8))
    return f"rice{k}:{which}{len(coded)}:" + base64.b64encode(raw).decode()


@st.composite
def id_sets(draw):
    """Sorted unique ids below a unit count: any set hypothesis likes, or a seeded one at a given density."""
    count = draw(st.integers(1, 600))
    if draw(st.booleans()):
        return sorted(draw(st.sets(st.integers(0, count - 1), max_size=count))), count
    density = draw(st.sampled_from([0.02, 0.25, 0.5, 0.75, 0.98]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return np.flatnonzero(rng.random(count) < density).tolist(), count


@given(id_sets())
def test_round_trip_and_the_writer_picks_the_shortest_form(case):
    ids, count = case
    text = encode_keep(ids, count)
    assert decode_keep(text, count, "keep") == ids
    ranges = encode_ids(ids)
    # past K = bit_length(count) every gap is a remainder and each K more costs one bit per id
    candidates = [reference_code(ids, count, k, w) for w in ("kept", "drop") for k in range(count.bit_length() + 1)]
    shortest = min(candidates, key=len)  # min keeps the first of equals: kept before drop, smaller K first
    if len(shortest) < len(ranges):
        assert text == shortest  # the vectorised coder writes the docstring's bits, and the shortest of them
    else:
        assert text == ranges  # a coded form only when strictly shorter


@given(id_sets(), st.integers(0, 12), st.sampled_from(["kept", "drop"]))
def test_every_coded_form_reads_back(case, k, which):
    ids, count = case
    assert decode_keep(reference_code(ids, count, k, which), count, "keep") == ids


def test_scattered_ids_are_coded_contiguous_ids_stay_ranges():
    rng = np.random.default_rng(0)
    scattered = sorted(rng.choice(3072, 727, replace=False).tolist())
    text = encode_keep(scattered, 3072)
    assert text.startswith("rice") and len(text) < len(encode_ids(scattered)) / 4
    assert encode_keep(list(range(727)), 3072) == "0-726"
    assert encode_keep(scattered, None) == encode_ids(scattered)  # no unit count: ranges only
    assert encode_keep([], 3072) == ""


def _v3_text(keep, original_count=16, version=3) -> str:
    decision = {"path": "layers.3.feed_forward", "policy": "prune_channels", "keep": keep, "original_count": original_count}
    return json.dumps({"model": {}, "budget": {}, "pruner": "x", "version": version,
                       "decisions": [{"path": "layers.0", "policy": "drop_block"}, decision]})


def test_a_coded_keep_reads_in_a_plan():
    plan = Plan.from_json(_v3_text("rice0:kept4:uA==", original_count=10))  # gaps 1, 3, 0, 0: bits 10 1110 0 0
    assert plan.decisions[1].keep == [1, 5, 6, 7]
    # the same ids as their 6 removed ones (0, 2, 3, 4, 8, 9: gaps 0, 1, 0, 0, 3, 0), in a file without "version"
    data = {k: v for k, v in json.loads(_v3_text("rice0:drop6:RwA=", original_count=10)).items() if k != "version"}
    assert Plan.from_dict(data) == plan
    assert plan.to_json() == plan.to_json(version=2)  # written back, these few ids are shortest as ranges: "1,5-7"


@pytest.mark.parametrize("keep, count, match", [
    ("rice1:keep3:AA==", 16, "is neither a range string nor a coded id set 'rice<K>:<kept\\|drop><N>:<base64>'"),
    ("rice0:kept1:A*==", 16, "is neither a range string nor a coded id set"),
    ("rice31:kept1:AA==", 16, "has Rice parameter K=31; K is at most 30"),
    ("rice0:kept17:AAAA", 16, "codes 17 ids of 16 units; at most 16"),
    ("rice0:kept1:AB==", 16, "is not canonical padded base64"),  # trailing bits set past the byte
    ("rice0:kept1:AA", 16, "is not canonical padded base64"),
    ("rice0:kept9:AA==", 16, "holds fewer than the 9 coded ids it announces"),
    ("rice4:kept2:AA==", 16, "holds fewer than the 2 coded ids it announces"),
    ("rice0:kept1:AAA=", 16, "has bits past its 1 coded ids"),  # a whole byte more
    ("rice0:kept1:QA==", 16, "has bits past its 1 coded ids \\(only zero padding to the byte may follow\\)"),
    ("rice0:kept1:+A==", 4, "codes id 5, out of bounds for 4 units \\(ids 0..3\\)"),  # 11111000: a gap of 5
    ("rice0:kept1:AA==", None, "is coded, which needs the decision's original_count; it has none"),
])
def test_damaged_coded_sets_are_refused_in_one_line(keep, count, match):
    prefix = "^plan decision 1 at 'layers.3.feed_forward': " + re.escape(f"keep {keep!r} ")
    with pytest.raises(DataFormatError, match=prefix + match) as exc:
        Plan.from_json(_v3_text(keep, original_count=count))
    assert "\n" not in str(exc.value)


def test_a_version_2_file_may_not_hold_a_coded_keep():
    with pytest.raises(DataFormatError, match="keep 'rice0:kept4:uA==' is a Rice-coded id set, which plan version 3 "
                                              "introduced; this file says \"version\": 2"):
        Plan.from_json(_v3_text("rice0:kept4:uA==", version=2))


def test_long_damaged_strings_are_clipped_in_the_message():
    with pytest.raises(DataFormatError, match="keep 'rice0:kept1:AAAAAAAAAAAAAAAAAAAAAAAAA...' has bits past"):
        Plan.from_json(_v3_text("rice0:kept1:" + "A" * 400))


# HunyuanImage-3.0's unit counts (tmpbench plan --model hunyuanimage3 --meta): 32 decoder layers, each with
# 8 KV-head groups, a 3072-channel shared expert and 64 routed experts of 3072 channels. The random pruner's
# 20B plan keeps 2 of 8 groups and 727 of 3072 channels in every expert (reports/plan-format/sizes.md).
HY3 = {"layers": 32, "groups": 8, "shared": 3072, "experts": 64, "channels": 3072}


def _random_hy3_plan(kept_groups: int = 2, kept_channels: int = 727, seed: int = 0) -> Plan:
    rng = np.random.default_rng(seed)
    c = HY3["channels"]
    decisions = []
    for i in range(HY3["layers"]):
        routed = np.concatenate([e * c + np.sort(rng.choice(c, kept_channels, replace=False)) for e in range(HY3["experts"])])
        decisions += [
            Decision(f"model.layers.{i}.self_attn", "prune_heads", original_count=HY3["groups"],
                     keep=sorted(rng.choice(HY3["groups"], kept_groups, replace=False).tolist())),
            Decision(f"model.layers.{i}.mlp.shared_mlp", "prune_channels", original_count=HY3["shared"],
                     keep=sorted(rng.choice(HY3["shared"], kept_channels, replace=False).tolist())),
            Decision(f"model.layers.{i}.mlp.experts", "prune_channels", original_count=HY3["experts"] * c,
                     keep=routed.tolist()),
        ]
    return Plan(model={"name": "hunyuanimage3", "class": "HunYuanMoEV1ForCausalLM"}, budget={"text": "20b"},
                pruner="random", decisions=decisions)


def test_a_scattered_plan_of_hunyuanimage3_20b_shape_fits_in_1_mb():
    plan = _random_hy3_plan()
    text = plan.to_json() + "\n"
    assert json.loads(text)["version"] == 3
    assert len(text.encode()) <= MB, len(text)
    assert len(plan.to_json(version=2)) > 8 * MB  # ranges alone: one run per ~1.3 kept ids
    assert Plan.from_json(text) == plan


@pytest.mark.slow
def test_the_random_20b_meta_plan_of_hunyuanimage3_fits_in_1_mb():
    from tmpbench.models.counting import build_meta
    from tmpbench.pruning.runner import plan_model

    outcome = plan_model(build_meta("hunyuanimage3"), "random", "20b", model_name="hunyuanimage3")
    text = outcome.plan.to_json() + "\n"
    assert len(text.encode()) <= MB, len(text)
    assert Plan.from_json(text) == outcome.plan
