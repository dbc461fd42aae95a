"""`tmpbench score`: ground truth scores perfectly, damage is counted, bad folders get one error line."""

import json
import subprocess
import sys

import numpy as np
import pytest

from suites.shapes import render_ground_truth
from tmpbench.suites.layout import sample_path, write_item
from tmpbench.suites.core import load_suite


def write_ground_truth(root, suite_name, limit, positions_of_full=False):
    """Write the suite's ground-truth images; with positions_of_full, at their full-suite positions."""
    suite = load_suite(suite_name, limit=limit)
    where = {}
    if positions_of_full:
        where = {(it.id, it.seed): it.index for it in load_suite(suite_name).items}
    for item in suite.items:
        index = where.get((item.id, item.seed), item.index)
        write_item(root, index, item.metadata, [render_ground_truth(suite.kind, item)])
    return suite


def one_error_line(code, err):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_t2i_ground_truth_scores_one(tmp_path, cli):
    suite = write_ground_truth(tmp_path, "shapes-t2i", 12)
    code, out, err = cli("score", "--suite", "shapes-t2i", "--images", str(tmp_path), "--limit", "12", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["overall"] == 1.0
    assert res["by_category"] == {tag: 1.0 for tag in suite.categories}
    assert res["suite_hash"] == suite.hash and res["items"] == 12 and res["images"] == 12


def test_t2i_damage_is_counted_and_table_printed(tmp_path, cli):
    suite = write_ground_truth(tmp_path, "shapes-t2i", 12)
    first = suite.items[0]
    write_item(tmp_path, 0, first.metadata, [np.zeros((32, 32, 3), np.uint8)])  # a blank image
    code, out, err = cli("score", "--suite", "shapes-t2i", "--images", str(tmp_path), "--limit", "12")
    assert code == 0, err
    lines = out.splitlines()
    expected = (0.5 + 5.0) / 6  # one tag at 1/2, five at 2/2: mean over tags
    assert f"overall  {expected:.4f}  (mean over tags)" in lines
    assert f"  {first.category:<13}  0.5000  (1/2)" in lines


def test_edit_targets_succeed_and_preserve(tmp_path, cli):
    write_ground_truth(tmp_path, "shapes-edit", 10)
    code, out, err = cli("score", "--suite", "shapes-edit", "--images", str(tmp_path), "--limit", "10", "--json")
    assert code == 0, err
    res = json.loads(out)
    assert res["overall"] == 1.0
    assert set(res["by_category"]) == {"recolor", "remove", "add", "move", "replace"}
    assert res["preservation"]["overall"] == {"psnr_source": 100.0, "psnr_target": 100.0, "l1_source": 0.0, "l1_target": 0.0}


def test_limit_on_a_full_render_finds_items_at_full_positions(tmp_path, cli):
    write_ground_truth(tmp_path, "shapes-edit", 5, positions_of_full=True)
    code, out, err = cli("score", "--suite", "shapes-edit", "--images", str(tmp_path), "--limit", "5")
    assert code == 0, err
    assert "overall  1.0000  (edit success, mean over edit types)" in out.splitlines()


def test_errors_are_one_line(tmp_path, cli):
    write_ground_truth(tmp_path, "shapes-t2i", 12)

    code, _, err = cli("score", "--suite", "shapes-tti", "--images", str(tmp_path))
    assert "did you mean 'shapes-t2i'" in one_error_line(code, err)

    code, _, err = cli("score", "--suite", "geneval", "--images", str(tmp_path))
    assert "needs an open-vocabulary detector" in one_error_line(code, err)

    # rendered with --limit 12, scored as the whole suite: incomplete
    code, _, err = cli("score", "--suite", "shapes-t2i", "--images", str(tmp_path))
    assert "is incomplete: 588 of 600 items missing (first: 00012)" in one_error_line(code, err)

    # a t2i folder scored as an edit suite: the prompts do not match
    code, _, err = cli("score", "--suite", "shapes-edit", "--images", str(tmp_path), "--limit", "12")
    assert "does not match suite 'shapes-edit' item 0" in one_error_line(code, err)

    code, _, err = cli("score", "--suite", "shapes-t2i", "--images", str(tmp_path), "--limit", "0")
    assert "--limit must be a positive number of items, got 0" in one_error_line(code, err)


def test_missing_sample_and_wrong_layout(tmp_path, cli):
    write_ground_truth(tmp_path, "shapes-t2i", 6)
    sample_path(tmp_path, 3, 0).unlink()
    code, _, err = cli("score", "--suite", "shapes-t2i", "--images", str(tmp_path), "--limit", "6")
    assert "00003 has no samples/*.png" in one_error_line(code, err)
    (tmp_path / "00003").rename(tmp_path / "item3")
    code, _, err = cli("score", "--suite", "shapes-t2i", "--images", str(tmp_path), "--limit", "6")
    assert "is not in GenEval layout" in one_error_line(code, err)


def test_mismatched_prompt_names_the_file(tmp_path, cli):
    suite = write_ground_truth(tmp_path, "shapes-t2i", 6)
    meta = dict(suite.items[2].metadata, prompt="a photo of a banana")
    write_item(tmp_path, 2, meta, [render_ground_truth("t2i", suite.items[2])])
    code, _, err = cli("score", "--suite", "shapes-t2i", "--images", str(tmp_path), "--limit", "6")
    line = one_error_line(code, err)
    assert "00002/metadata.jsonl: prompt 'a photo of a banana' does not match" in line


@pytest.mark.parametrize("args", [["--suite", "geneval"], ["--suite", "shapes-t2i", "--limit", "3"]])
def test_subprocess_exit_code_without_traceback(tmp_path, args):
    proc = subprocess.run(
        [sys.executable, "-m", "tmpbench", "score", *args, "--images", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert len(proc.stderr.strip().splitlines()) == 1
