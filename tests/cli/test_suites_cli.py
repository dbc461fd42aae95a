"""`tmpbench suites list/show/render`, and their one-line errors."""

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from suites.shapes import render_ground_truth
from tmpbench.shapes.edits import EditCase
from tmpbench.shapes.world import render
from tmpbench.suites.core import load_suite
from tmpbench.suites.layout import load_image, read_folder


def test_list_json_and_text(cli):
    code, out, _ = cli("suites", "list", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0
    assert set(rows) >= {"shapes-t2i", "shapes-edit", "geneval", "oneig", "oneig-zh", "imgedit", "gedit"}
    assert (rows["shapes-edit"]["kind"], rows["oneig"]["source"]) == ("edit", "OneIG-Bench/OneIG-Bench")
    code, out, _ = cli("suites", "list")
    assert code == 0 and any(line.startswith("imgedit ") for line in out.splitlines())


def test_show_prints_count_categories_and_hash(cli):
    code, out, _ = cli("suites", "show", "shapes-edit", "--json")
    summary = json.loads(out)
    assert code == 0
    assert summary["count"] == 300
    assert summary["by_category"] == {"recolor": 60, "remove": 60, "add": 60, "move": 60, "replace": 60}
    assert summary["hash"] == load_suite("shapes-edit").hash
    code, out, _ = cli("suites", "show", "shapes-t2i", "--limit", "12")
    assert code == 0
    assert "count: 12" in out.splitlines() and "  counting: 2" in out.splitlines()
    assert f"hash: {load_suite('shapes-t2i', limit=12).hash}" in out.splitlines()


def test_render_t2i_ground_truth_layout(tmp_path, cli):
    code, out, _ = cli("suites", "render", "shapes-t2i", "--out", str(tmp_path), "--limit", "12", "--size", "16")
    assert code == 0 and out.startswith("rendered 12 ground-truth images of shapes-t2i")
    folders = read_folder(tmp_path, expected_items=12, samples_per_item=1)
    suite = load_suite("shapes-t2i", limit=12)
    for folder, item in zip(folders, suite.items):
        assert folder.metadata == item.metadata
        image = load_image(folder.samples[0])
        assert image.shape == (16, 16, 3)
        np.testing.assert_array_equal(image, render_ground_truth("t2i", item, 16))


def test_render_refuses_a_folder_with_stale_items(tmp_path, cli):
    assert cli("suites", "render", "shapes-t2i", "--out", str(tmp_path), "--limit", "8")[0] == 0
    assert cli("suites", "render", "shapes-t2i", "--out", str(tmp_path), "--limit", "8")[0] == 0  # same: fine
    code, _, err = cli("suites", "render", "shapes-t2i", "--out", str(tmp_path), "--limit", "6")
    assert code == 2
    assert err.strip() == f"error: --out {tmp_path} already holds item 00006 beyond this suite's 6 items; use an empty folder"


def test_render_edit_writes_the_exact_target(tmp_path, cli):
    code, _, _ = cli("suites", "render", "shapes-edit", "--out", str(tmp_path), "--limit", "5")
    assert code == 0
    folders = read_folder(tmp_path, expected_items=5)
    assert sorted(f.metadata["tag"] for f in folders) == ["add", "move", "recolor", "remove", "replace"]
    for folder in folders:
        case = EditCase.from_dict(folder.metadata)  # metadata keeps source and target
        np.testing.assert_array_equal(load_image(folder.samples[0]), render(case.target, 32))
        assert not np.array_equal(load_image(folder.samples[0]), render(case.source, 32))


@pytest.mark.parametrize(
    "args, message",
    [
        (["suites", "show", "shapes-t2"], r"^error: unknown suite 'shapes-t2'; did you mean 'shapes-t2i'"),
        (["suites", "render", "geneval", "--out", "OUT"], r"^error: suite 'geneval' has no exact ground truth to render"),
        (["suites", "render", "shapes-t2i", "--out", "OUT", "--size", "4"], r"^error: --size 4 is too small"),
        (["suites", "show", "geneval", "--source", "MISSING"], r"^error: geneval: .*not found; pass --source PATH"),
        (["suites", "show", "shapes-t2i", "--limit", "0"], r"^error: limit must be a positive number of items, got 0"),
    ],
)
def test_errors_are_one_line(tmp_path, cli, args, message):
    args = [a.replace("OUT", str(tmp_path / "out")).replace("MISSING", str(tmp_path / "none.jsonl")) for a in args]
    code, out, err = cli(*args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert re.match(message, err.strip()), err
    assert "Traceback" not in err and out == ""


def test_bad_data_errors_are_one_line(tmp_path, cli):
    bad = tmp_path / "evaluation_metadata.jsonl"
    bad.write_text('{"tag": "colors", "prompt": "a photo of a red car", "include": [{"class": "car", "count": 1}]}\n{oops\n')
    code, _, err = cli("suites", "show", "geneval", "--source", str(bad))
    expected = f"error: {bad}:2: malformed JSON (Expecting property name enclosed in double quotes at column 2)"
    assert code == 2 and err.strip().splitlines() == [expected]
    csv = tmp_path / "OneIG-Bench.csv"
    csv.write_text("category,id,prompt,class\nPortrait,000,a face,\n")
    code, _, err = cli("suites", "show", "oneig", "--source", str(csv))
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "missing columns prompt_en, type, prompt_length" in err


def test_unknown_suite_in_a_fresh_process():
    proc = subprocess.run(
        [sys.executable, "-m", "tmpbench", "suites", "show", "onieg"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: unknown suite 'onieg'; did you mean 'oneig' or 'oneig-zh'? (known: gedit, ")
