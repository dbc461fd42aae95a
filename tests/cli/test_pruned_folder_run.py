"""`tmpbench prune` -> `tmpbench run --model DIR` -> `tmpbench compare`: a run on a pruned folder records
how the folder was made (base, pruner, requested and achieved budget, identities), exactly as a run on
the spec that would make it does, and the comparison table shows it as a pruned model, not a teacher."""

from __future__ import annotations

import json

import pytest

from tmpbench.suites.core import split_of

RUN_ARGS = ("--suite", "shapes-t2i", "--limit", "2", "--steps", "2", "--metrics", "geneval,psnr_teacher", "--quiet")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from tmpbench.cli import main

    def cli(*args):
        try:
            main(list(args))
        except SystemExit as exc:
            assert not exc.code, f"tmpbench {' '.join(args)} exited {exc.code}"

    root = tmp_path_factory.mktemp("folder-run")
    cli("prune", "--model", "tiny-dit", "--pruner", "magnitude", "--budget", "10%", "--out", str(root / "pruned"))
    cli("run", "--model", str(root / "pruned"), *RUN_ARGS, "--out", str(root / "from-folder"))
    cli("run", "--model", "tiny-dit-10%", "--pruner", "magnitude", *RUN_ARGS, "--out", str(root / "from-spec"),
        "--prune-cache", str(root / "cache"))
    cli("run", "--model", "tiny-dit", *RUN_ARGS[:-3], "--metrics", "geneval", "--quiet", "--out", str(root / "teacher"))
    return root


def model_of(run_dir):
    return json.loads((run_dir / "results.json").read_text())["model"]


def test_folder_run_records_what_the_spec_run_records(runs):
    folder, spec = model_of(runs / "from-folder"), model_of(runs / "from-spec")
    assert folder["pruner"] == spec["pruner"] == "magnitude"
    assert folder["budget"] == spec["budget"] == "10%"
    assert folder["base"] == spec["base"] == "tiny-dit"
    for key in ("original_params", "requested_params", "achieved_params"):
        assert folder[key] == spec[key], key
    assert folder["achieved_params"] < folder["original_params"]
    assert folder["requested_params"] == round(folder["original_params"] * 0.9)
    info = folder["prune_info"]
    assert info["path"] == str(runs / "pruned") and info["budget_check"]["ok"] is True
    assert info["plan_sha256"] and set(info["seconds"]) >= {"plan", "apply"}  # the pruning compute travels with it
    assert folder["recovery"]["steps"] == spec["recovery"]["steps"] == 0
    # the teacher's images were generated, so fidelity to the teacher is scored like any pruned run
    res = json.loads((runs / "from-folder" / "results.json").read_text())
    assert res["generation"]["teacher_generated_now"] == 2 and isinstance(res["metrics"]["psnr_teacher"], dict)


def test_compare_shows_pruner_and_budgets_with_distinct_labels(runs, cli):
    code, out, err = cli("compare", str(runs / "teacher"), str(runs / "from-folder"), str(runs / "from-spec"))
    assert code == 0, err
    rows = [line for line in out.splitlines() if line.startswith("| tiny-dit")]
    assert len(rows) == 3 and "| teacher" in rows[0]
    pruned_rows = rows[1:]
    for row in pruned_rows:
        assert "magnitude" in row and f"10% ({model_of(runs / 'from-spec')['requested_params']:,})" in row, row
        assert "0.00% removed" not in row and "teacher" not in row
    # same pruner and budget: the two rows say which is which (here the run folder's name)
    assert "magnitude (from-folder)" in pruned_rows[0] + pruned_rows[1]
    assert "magnitude (from-spec)" in pruned_rows[0] + pruned_rows[1]


def test_folder_run_refuses_a_teacher_with_other_weights(runs, tmp_path, cli, tiny_pipe_dir):
    code, _, err = cli("run", "--model", str(runs / "pruned"), "--model-path", str(tiny_pipe_dir), *RUN_ARGS,
                       "--out", str(tmp_path / "o"))
    errors = [line for line in err.splitlines() if line.startswith("error: ")]  # weight-loading bars may precede it
    assert code == 2 and len(errors) == 1 and err.rstrip().endswith(errors[0])
    err = errors[0]
    assert "was pruned from tiny-dit weights" in err and "pass --model-path with the weights it was pruned from" in err


def test_runs_evaluate_test_items_and_record_the_calibration_items_apart(runs):
    for name in ("from-folder", "from-spec"):
        res = json.loads((runs / name / "results.json").read_text())
        assert res["suite"]["split"] == "test"
        evaluated = {json.loads(line)["id"] for line in (runs / name / "samples.jsonl").read_text().splitlines()}
        calib = res["model"]["calibration"]["item_ids"]
        assert set(calib) == {"shapes-t2i", "shapes-edit"} and all(calib.values())  # tiny-dit's default mix
        assert {split_of("shapes-t2i", i) for i in evaluated} == {"test"}
        assert {split_of(s, i) for s, ids in calib.items() for i in ids} == {"calib"}
        assert not evaluated & set(calib["shapes-t2i"])
        assert res["model"]["recovery"]["item_ids"] == {}  # no recovery steps: nothing trained on
        cost = res["model"]["pruning_cost"]
        assert set(cost) == {"calibration", "planning", "apply", "recovery", "total"}
        # magnitude reads weight norms: no denoiser forward in planning, no recovery
        assert cost["planning"]["denoiser_forwards"] == 0 and cost["recovery"]["denoiser_forwards"] == 0
        assert cost["total"]["denoiser_forwards"] == cost["calibration"]["denoiser_forwards"]


def test_an_unknown_split_is_one_line(runs, cli, tmp_path):
    code, _, err = cli("run", "--model", "tiny-dit", *RUN_ARGS, "--split", "val", "--out", str(tmp_path / "r"))
    assert code == 2 and err.strip() == "error: --split 'val': suite 'shapes-t2i' has splits calib, dev, test (or all)"
    code, _, err = cli("compare", str(runs / "teacher"), "--split", "val")
    assert code == 2 and err.strip() == "error: --split 'val': suites have splits calib, dev, test (or all)"
