"""Evaluation splits: deterministic, disjoint, covering every item, part of the suite hash."""

from __future__ import annotations

import dataclasses

import pytest

from tmpbench.errors import DataFormatError, TmpbenchError
from tmpbench.pruning.recipes import CalibrationSpec
from tmpbench.suites.core import SPLITS, SuiteSpec, get_spec, load_suite, split_bucket, split_of, split_rule

# the sizes the docs quote (README, tmpbench/suites/core.py): test keeps >= 400 / >= 200 items
SIZES = {"shapes-t2i": {"calib": 58, "dev": 64, "test": 478}, "shapes-edit": {"calib": 29, "dev": 26, "test": 245}}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_splits_are_disjoint_cover_the_suite_and_keep_seeds(name):
    full = load_suite(name)
    parts = {s: load_suite(name, split=s) for s in SPLITS}
    assert {s: len(p) for s, p in parts.items()} == SIZES[name]
    ids = {s: [it.id for it in p.items] for s, p in parts.items()}
    assert sorted(i for v in ids.values() for i in v) == sorted(it.id for it in full.items)  # each item in exactly one
    seeds = {it.id: it.seed for it in full.items}
    for s, p in parts.items():
        assert [it.index for it in p.items] == list(range(len(p)))  # re-indexed: folder names stay 00000..
        assert all(it.seed == seeds[it.id] and split_of(name, it.id) == s for it in p.items)
        assert p.split == s and len(p.categories) == len(full.categories)  # every category in every split


def test_split_of_is_a_pure_function_of_suite_and_id():
    # the documented rule computed independently: sha256("<suite>/<id>") mod 100 -> calib < 10 <= dev < 20 <= test
    import hashlib

    for item_id in ("00000", "00001", "00042", "abc"):
        bucket = int.from_bytes(hashlib.sha256(f"shapes-t2i/{item_id}".encode()).digest()[:8], "big") % 100
        assert split_bucket("shapes-t2i", item_id) == bucket
        assert split_of("shapes-t2i", item_id) == ("calib" if bucket < 10 else "dev" if bucket < 20 else "test")
    assert [split_of("shapes-t2i", f"{i:05d}") for i in range(50)] == [split_of("shapes-t2i", f"{i:05d}") for i in range(50)]


def test_limit_applies_within_the_split():
    test = load_suite("shapes-t2i", split="test", limit=12)
    assert len(test) == 12 and test.categories["counting"] == 2
    assert {split_of("shapes-t2i", it.id) for it in test.items} == {"test"}


def test_the_hash_changes_with_the_split_and_the_rule():
    t = load_suite("shapes-t2i", split="test")
    assert t.hash == load_suite("shapes-t2i", split="test").hash
    assert len({t.hash, load_suite("shapes-t2i", split="dev").hash, load_suite("shapes-t2i").hash}) == 3
    other_rule = dataclasses.replace(t, split_rule=split_rule((("calib", 5), ("dev", 15))))
    other_rule.__dict__.pop("hash", None)
    assert other_rule.hash != t.hash  # same items, another rule: another hash


def test_a_yaml_may_set_its_percentages(tmp_path):
    base = get_spec("shapes-t2i").path.read_text()
    path = tmp_path / "mine.yaml"
    path.write_text(base.replace("name: shapes-t2i", "name: mine") + "splits: {calib: 30, dev: 20}\n")
    spec = SuiteSpec.from_yaml(path)
    assert spec.split_rule["ranges"] == {"calib": [0, 30], "dev": [30, 50], "test": [50, 100]}
    assert len(load_suite(str(path), split="calib")) > len(load_suite("shapes-t2i", split="calib"))
    path.write_text(base + "splits: {calib: 60, dev: 40}\n")
    with pytest.raises(DataFormatError, match="leave some for test"):
        SuiteSpec.from_yaml(path)


def test_unknown_split_is_one_line():
    with pytest.raises(TmpbenchError, match=r"^--split 'train': suite 'shapes-t2i' has splits calib, dev, test \(or all\)$"):
        load_suite("shapes-t2i", split="train")


def test_calibration_draws_only_from_calib():
    spec = CalibrationSpec(n_prompts=8, mix="t2i=0.5,edit=0.5")
    ids = spec.item_ids()
    assert {k: len(v) for k, v in ids.items()} == {"shapes-t2i": 4, "shapes-edit": 4}
    for suite, items in ids.items():
        assert {split_of(suite, i) for i in items} == {"calib"}
    prompts, _, _ = spec.prompts()
    calib = {it.prompt for it in load_suite("shapes-t2i", split="calib").items}
    assert set(prompts) <= calib
    assert spec.identity()["split"] == "calib"
