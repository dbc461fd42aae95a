"""The suite API: YAML specs with include/override, items, limit, and the content hash."""

import hashlib
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tmpbench.errors import DataFormatError, TmpbenchError, UnknownNameError
from tmpbench.shapes.edits import EDIT_TYPES, EditCase
from tmpbench.shapes.grammar import TAGS, sample_scene
from tmpbench.shapes.world import render
from tmpbench.suites.core import SuiteItem, SuiteSpec, get_spec, item_seed, limit_items, load_suite, suite_hash

# Pinned on purpose: if this changes, the shapes-t2i prompts changed, so bump `version` in
# suites/shapes-t2i.yaml and update the pin (results of different versions must not be compared). The hash
# also carries the split rule (all items, split "all"): a change of the rule changes it too.
SHAPES_T2I_V1_HASH = "721d3188c96148e8b80bc581f37e47d648965265d84aec1b2783a1cfd83d8680"


def test_shapes_t2i_is_balanced_geneval_records():
    suite = load_suite("shapes-t2i")
    assert (suite.name, suite.kind, suite.version) == ("shapes-t2i", "t2i", "1")
    assert len(suite.items) == 600
    assert suite.categories == {tag: 100 for tag in TAGS}
    assert [it.index for it in suite.items] == list(range(600))
    assert len({it.id for it in suite.items}) == 600
    assert len({it.seed for it in suite.items}) == 600  # each item has its own seed
    for it in suite.items:
        assert it.category == it.metadata["tag"]
        assert it.prompt == it.metadata["prompt"]
        assert (it.metadata["grid"], it.metadata["size"]) == (2, 32)
        assert it.metadata["include"]
    assert suite.hash == SHAPES_T2I_V1_HASH


def test_shapes_t2i_ground_truth_is_deterministic_and_satisfies_the_record():
    item = load_suite("shapes-t2i").items[250]  # a counting prompt
    assert item.category == "counting"
    scene_a = sample_scene(item.metadata, np.random.default_rng(item.seed), item.metadata["grid"])
    scene_b = sample_scene(item.metadata, np.random.default_rng(item.seed), item.metadata["grid"])
    assert scene_a == scene_b
    assert len(scene_a.objects) == item.metadata["include"][0]["count"]
    np.testing.assert_array_equal(render(scene_a, 32), render(scene_b, 32))


def test_shapes_edit_items_carry_the_edit_case():
    suite = load_suite("shapes-edit")
    assert (suite.kind, len(suite.items)) == ("edit", 300)
    assert suite.categories == {t: 60 for t in EDIT_TYPES}
    for it in suite.items:
        case = EditCase.from_dict(it.metadata)
        assert it.prompt == case.instruction == it.metadata["prompt"]
        assert it.category == case.tag
        assert case.source != case.target
        assert it.metadata["region_cells"]
        assert it.load_source_image() is None  # the source image is rendered from metadata["source"]


# The full ShapesWorld suites, pinned: a change to the grammar, the edit cases or the seeds changes
# what every run evaluates, and must come with a version bump in the suite's YAML.
PINNED_HASHES = {
    "shapes-t2i": "721d3188c96148e8b80bc581f37e47d648965265d84aec1b2783a1cfd83d8680",
    "shapes-edit": "2b073b14066c4468f4dcfc90ce2c16792771b4363986148314ec64c516476e53",
}


@pytest.mark.parametrize("name", sorted(PINNED_HASHES))
def test_shapes_suite_hash_is_pinned(name):
    assert load_suite(name).hash == PINNED_HASHES[name], f"{name} changed: bump its version in suites/{name}.yaml"


def test_hash_is_stable_and_sensitive():
    items = load_suite("shapes-t2i", limit=24).items
    h = suite_hash("shapes-t2i", "1", items)
    assert h == suite_hash("shapes-t2i", "1", list(items))
    # the documented definition, computed independently: sha256 of the canonical JSON
    payload = {
        "name": "shapes-t2i",
        "version": "1",
        "items": [{"id": it.id, "prompt": it.prompt, "metadata": it.metadata, "seed": it.seed} for it in items],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert h == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert suite_hash("shapes-t2i", "2", items) != h
    assert suite_hash("shapes-t2i", "1", [replace(items[0], seed=items[0].seed + 1), *items[1:]]) != h
    assert suite_hash("shapes-t2i", "1", [replace(items[0], prompt="a photo of a cat"), *items[1:]]) != h
    changed_meta = replace(items[3], metadata={**items[3].metadata, "size": 64})
    assert suite_hash("shapes-t2i", "1", [*items[:3], changed_meta, *items[4:]]) != h
    # the source-image location is not content and does not enter the hash
    assert suite_hash("shapes-t2i", "1", [replace(items[0], source_image="/elsewhere.png"), *items[1:]]) == h


def test_hash_is_identical_in_another_process():
    code = "from tmpbench.suites.core import load_suite; print(load_suite('shapes-t2i').hash, load_suite('shapes-edit').hash)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [load_suite("shapes-t2i").hash, load_suite("shapes-edit").hash]


def test_limit_is_round_robin_over_categories_and_keeps_seeds():
    full = load_suite("shapes-t2i")
    part = load_suite("shapes-t2i", limit=14)
    assert len(part.items) == 14
    assert part.categories == {"single_object": 3, "two_object": 3, "counting": 2, "colors": 2, "position": 2, "color_attr": 2}
    assert [it.index for it in part.items] == list(range(14))
    by_id = {it.id: it for it in full.items}
    for it in part.items:
        assert (it.seed, it.prompt, it.metadata) == (by_id[it.id].seed, by_id[it.id].prompt, by_id[it.id].metadata)
    assert part.hash != full.hash
    assert load_suite("shapes-t2i", limit=10_000).hash == full.hash
    with pytest.raises(TmpbenchError, match="limit must be a positive number of items, got 0"):
        load_suite("shapes-t2i", limit=0)


def test_limit_items_small_categories_run_out_first():
    mk = lambda i, c: SuiteItem(i, str(i), c, "p", {}, i)  # noqa: E731
    items = [mk(0, "a"), mk(1, "a"), mk(2, "a"), mk(3, "b")]
    assert [it.id for it in limit_items(items, 3)] == ["0", "1", "3"]


def test_item_seed_is_deterministic_and_distinct():
    assert item_seed(7, 3) == item_seed(7, 3)
    assert len({item_seed(7, i) for i in range(1000)}) == 1000
    assert item_seed(7, 3) != item_seed(8, 3)
    assert 0 <= item_seed(2**40, 10**9) < 2**31


def test_unknown_suite_says_did_you_mean():
    with pytest.raises(UnknownNameError, match=r"unknown suite 'shapes-t2'; did you mean 'shapes-t2i'"):
        load_suite("shapes-t2")


def test_generated_suite_refuses_a_source(tmp_path):
    with pytest.raises(TmpbenchError, match=r"'shapes-t2i' is generated in code and takes no --source"):
        load_suite("shapes-t2i", source=tmp_path)


def test_registered_yamls_parse_and_variants_override():
    oneig, zh = get_spec("oneig"), get_spec("oneig-zh")
    assert zh.name == "oneig-zh" and zh.kind == oneig.kind == "t2i"
    assert zh.loader == oneig.loader and zh.metrics == oneig.metrics
    assert (oneig.option("prompt_field"), zh.option("prompt_field")) == ("prompt_en", "prompt_cn")
    assert (oneig.option("filename"), zh.option("filename")) == ("OneIG-Bench.csv", "OneIG-Bench-ZH.csv")
    assert get_spec("gedit-cn").language == "cn" and get_spec("gedit").language == "en"


def test_traits_come_from_the_yaml_not_the_name(tmp_path):
    oneig_zh, shapes, geneval = get_spec("oneig-zh"), get_spec("shapes-edit"), get_spec("geneval")
    assert (oneig_zh.benchmark, oneig_zh.language, oneig_zh.layout, oneig_zh.world) == ("oneig", "zh", "oneig", None)
    assert (shapes.benchmark, shapes.layout, shapes.world) == ("shapes", "geneval", "shapes")
    assert (geneval.benchmark, geneval.language, geneval.layout) == ("geneval", "en", "geneval")
    # a renamed copy keeps its traits: nothing is read from the name
    renamed = tmp_path / "my-oneig.yaml"
    renamed.write_text(f"include: {Path(get_spec('oneig-zh').path).resolve()}\nname: my-copy\n")
    spec = get_spec(str(renamed))
    assert (spec.name, spec.benchmark, spec.language, spec.layout) == ("my-copy", "oneig", "zh", "oneig")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: b\nversion: '1'\nkind: t2i\nloader: m:f\nlayout: tiles\n")
    with pytest.raises(DataFormatError, match="layout 'tiles' is not one of geneval, oneig"):
        get_spec(str(bad))


def _write(path, text):
    path.write_text(text)
    return path


def test_yaml_include_override_and_path_lookup(tmp_path):
    _write(tmp_path / "base.yaml", "name: base\nversion: '3'\nkind: t2i\nloader: suites.shapes:load_t2i\n"
           "seed: 5\nn_per_category: 2\ngrid: 2\nsize: 32\nmetrics: [geneval]\n")
    variant = _write(tmp_path / "variant.yaml", "include: base.yaml\nname: small\nn_per_category: 1\nsize: 16\n")
    spec = SuiteSpec.from_yaml(variant)
    assert (spec.name, spec.version, spec.seed, spec.metrics) == ("small", "3", 5, ("geneval",))
    assert spec.options == {"n_per_category": 1, "grid": 2, "size": 16}
    suite = load_suite(str(variant))  # a YAML path works as a suite name
    assert suite.name == "small" and len(suite.items) == 6
    assert all(it.metadata["size"] == 16 for it in suite.items)
    bigger = load_suite(str(variant), overrides={"n_per_category": 2})
    assert len(bigger.items) == 12


def test_yaml_errors_are_one_line(tmp_path):
    with pytest.raises(DataFormatError, match=r"lacks version, loader"):
        SuiteSpec.from_yaml(_write(tmp_path / "a.yaml", "name: a\nkind: t2i\n"))
    with pytest.raises(DataFormatError, match=r"kind 'video' is not one of t2i, edit"):
        SuiteSpec.from_yaml(_write(tmp_path / "b.yaml", "name: b\nversion: 1\nkind: video\nloader: m:f\n"))
    with pytest.raises(DataFormatError, match=r"c\.yaml:3: malformed YAML \(mapping values are not allowed here\)"):
        SuiteSpec.from_yaml(_write(tmp_path / "c.yaml", "name: c\nversion: 1\nkind: t2i: x\n"))
    _write(tmp_path / "d.yaml", "include: e.yaml\nname: d\n")
    _write(tmp_path / "e.yaml", "include: d.yaml\nname: e\n")
    with pytest.raises(DataFormatError, match=r"include cycle"):
        SuiteSpec.from_yaml(tmp_path / "d.yaml")
    with pytest.raises(TmpbenchError, match=r"suite file .*missing\.yaml not found"):
        SuiteSpec.from_yaml(tmp_path / "missing.yaml")
    bad_loader = _write(tmp_path / "f.yaml", "name: f\nversion: 1\nkind: t2i\nloader: suites.nowhere:load\n")
    with pytest.raises(TmpbenchError, match=r"loader 'suites.nowhere:load' of suite 'f' cannot be imported"):
        load_suite(str(bad_loader))
    with pytest.raises(TmpbenchError, match=r"cannot override version of suite 'shapes-t2i'"):
        load_suite("shapes-t2i", overrides={"version": "9"})
