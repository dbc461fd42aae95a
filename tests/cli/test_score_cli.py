"""`tmpbench score`: ground truth scores perfectly, damage is counted, bad folders get one error line, and the
values are the ones `tmpbench run` records for the same images (one scoring path)."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tmpbench.shapes.render import render_ground_truth
from tmpbench.suites.core import load_suite
from tmpbench.suites.layout import sample_path, write_item


def write_ground_truth(root, suite_name, limit, positions_of_full=False):
    """Write the suite's ground-truth images; with positions_of_full, at their full-suite positions."""
    suite = load_suite(suite_name, limit=limit)
    where = {}
    if positions_of_full:
        where = {(it.id, it.seed): it.index for it in load_suite(suite_name).items}
    for item in suite.items:
        index = where.get((item.id, item.seed), item.index)
        write_item(root, index, item.metadata, [render_ground_truth(suite.kind, item.metadata, item.seed)])
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
    # the mean over tags as `tmpbench run` computes it (sum of tag means / 6, so 1 - 1e-16 here)
    assert res["overall"] == pytest.approx(1.0, abs=1e-15)
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
    assert res["overall"] == pytest.approx(1.0, abs=1e-15)
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
    line = one_error_line(code, err)
    assert "cannot score geneval: GenEval on real images needs an open-vocabulary detector: set $TMPBENCH_GENEVAL_DETECTOR" in line

    code, _, err = cli("score", "--suite", "oneig", "--images", str(tmp_path))
    assert "suite 'oneig' is not a GenEval-style suite" in one_error_line(code, err)

    code, _, err = cli("score", "--suite", "imgedit", "--images", str(tmp_path))
    assert "suite 'imgedit' edits real images" in one_error_line(code, err)

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
    write_item(tmp_path, 2, meta, [render_ground_truth("t2i", suite.items[2].metadata, suite.items[2].seed)])
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


# ------------------------------------------------------------------------------------------------
# one scoring path: `tmpbench score` and `tmpbench run` score through the same scorers
def test_score_and_run_record_identical_geneval_values(tmp_path, tiny_pipe_dir, cli):
    from tmpbench.run import RunConfig, run_benchmark

    out = tmp_path / "run"
    suite = load_suite("shapes-t2i", limit=9)  # tags hold 2, 2, 2, 1, 1, 1 prompts: mean over tags != mean over images
    for item in suite.items:  # every third image blank: the run resumes these instead of generating
        image = np.zeros((32, 32, 3), np.uint8) if item.index % 3 == 0 else render_ground_truth("t2i", item.metadata, item.seed)
        write_item(out / "images", item.index, item.metadata, [image])
    torch.set_num_threads(1)
    res = run_benchmark(RunConfig(suite="shapes-t2i", model="tiny-dit", model_path=str(tiny_pipe_dir), limit=9, steps=1, size=32,
                                  metrics="geneval", out=out, progress=False, argv=["test"], split="all"))
    assert res["generation"]["generated_now"] == 0 and res["generation"]["resumed"] == 9
    code, stdout, err = cli("score", "--suite", "shapes-t2i", "--images", str(out / "images"), "--limit", "9", "--json")
    assert code == 0, err
    scored = json.loads(stdout)
    recorded = res["metrics"]["geneval"]
    assert 0 < recorded["value"] < 1 and recorded["aggregation"] == "category_mean"
    assert scored["metrics"]["geneval"] == recorded  # value, CI, n, per-tag values, aggregation: all identical
    assert scored["overall"] == recorded["value"] and scored["by_category"] == recorded["by_category"]
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [r["metrics"]["geneval"] for r in rows] == [float(s["correct"]) for s in scored["samples"]]
    assert [r["extras"]["geneval_reason"] for r in rows] == [s["reason"] for s in scored["samples"]]
    assert scored["scorers"]["geneval"] == res["scorers"]["geneval"]


class FakeDetector:
    """Finds one box of every asked-for class, side by side, with high confidence."""

    def detect(self, image, classes):
        return {c: [((40.0 * i, 0.0, 40.0 * i + 30.0, 30.0), 0.95)] for i, c in enumerate(classes)}

    def identity(self):
        return {"name": "fake-detector"}


class FakeClip:
    """Stands in for tmpbench's CLIP: every crop embeds as 'red'."""

    def __init__(self, device="cpu"):
        self.bundle = self

    def available(self):
        return True, ""

    def identity(self):
        return {"name": "fake-clip"}

    def embed_images(self, crops):
        return torch.eye(10)[[0] * len(crops)]

    def embed_texts(self, texts):
        return torch.eye(10)[: len(texts)]


def test_geneval_on_real_photos_scores_through_the_open_vocabulary_scorer(tmp_path, shared_data, monkeypatch):
    from tmpbench.cli.score_cmd import score_images
    from tmpbench.scoring.geneval import open_vocab

    source = str(shared_data / "geneval" / "evaluation_metadata.jsonl")
    suite = load_suite("geneval", source=source, limit=12)
    for item in suite.items:
        write_item(tmp_path, item.index, item.metadata, [np.zeros((64, 96, 3), np.uint8)])
    monkeypatch.setattr(open_vocab, "CLIPScore", FakeClip)
    res = score_images("geneval", tmp_path, limit=12, source=source, judges={"geneval": FakeDetector()})
    assert res["scorers"]["geneval"]["mode"] == "open-vocabulary" and res["scorers"]["geneval"]["detector"] == {"name": "fake-detector"}
    assert res["images"] == 12 and set(res["by_category"]) == set(suite.categories)
    verdicts = {s["tag"]: s["correct"] for s in res["samples"]}
    assert verdicts["single_object"] is True  # one box of the class: found
    assert verdicts["counting"] is False  # counting asks for two or more: one box
    assert res["metrics"]["geneval"]["aggregation"] == "category_mean"
