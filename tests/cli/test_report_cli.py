"""`tmpbench compare` and `tmpbench gate` through the real CLI: tables, exit codes, one-line refusals."""

from __future__ import annotations

import pytest
from synthetic_runs import BAD, GOOD, write_run


@pytest.fixture
def runs(tmp_path):
    return {
        "teacher": write_run(tmp_path / "teacher", [1] * 20),
        "tmp": write_run(tmp_path / "tmp-25pct", GOOD, pruner="tmp", budget="25%", achieved=751),
        "random": write_run(tmp_path / "random-25pct", BAD, pruner="random", budget="25%", achieved=748),
        "other_suite": write_run(tmp_path / "other", GOOD, pruner="tmp", budget="25%", achieved=751, suite_hash="d" * 64),
        "other_seeds": write_run(tmp_path / "seeds", GOOD, pruner="tmp", budget="25%", achieved=751, seed_offset=5),
    }


def test_compare_prints_and_writes_tables(runs, tmp_path, cli):
    code, out, _ = cli("compare", str(runs["teacher"]), str(runs["tmp"]), str(runs["random"]))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("| model") and "teacher" in lines[2] and "25% (750)" in lines[3] and "24.90% removed" in lines[3]
    code, out, _ = cli("compare", str(runs["tmp"]), str(runs["random"]), "--format", "latex", "--out", str(tmp_path / "t.tex"),
                       "--report", str(tmp_path / "rep"), "--write-baseline", str(tmp_path / "b.json"))
    assert code == 0 and "\\begin{tabular}" in (tmp_path / "t.tex").read_text()
    assert (tmp_path / "rep" / "report.html").is_file() and (tmp_path / "b.json").is_file()


def test_compare_versus_prints_the_paired_table(runs, cli):
    code, out, _ = cli("compare", str(runs["teacher"]), str(runs["tmp"]), str(runs["random"]), "--versus", "tmp",
                       "--metrics", "geneval")
    assert code == 0
    assert "Paired comparisons with tmp on geneval" in out and "Holm-adjusted" in out
    row = next(line for line in out.splitlines() if line.startswith("| tiny-dit | 25%"))
    assert "random" in row and ("tie" in row or "better" in row)
    code, _, err = cli("compare", str(runs["random"]), "--versus", "tmp", "--metrics", "geneval")
    assert code == 2 and "--versus 'tmp': no run of that pruner" in err


@pytest.mark.parametrize("other, pattern", [("other_suite", "runs are not comparable: .*hash dddddddddddd"),
                                            ("other_seeds", "runs are not comparable: .*used different seeds")])
def test_compare_refuses_incomparable_runs_in_one_line(runs, other, pattern, cli):
    import re

    code, out, err = cli("compare", str(runs["tmp"]), str(runs[other]))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and re.match("error: compare: " + pattern, err.strip())


def test_gate_exit_codes(runs, tmp_path, cli):
    baseline = tmp_path / "reports" / "tiny.json"
    code, out, _ = cli("gate", "--write-baseline", "--baseline", str(baseline), "--run", str(runs["tmp"]))
    assert code == 0 and baseline.is_file()
    code, out, _ = cli("gate", "--baseline", str(baseline), "--run", str(runs["random"]))
    assert code == 1
    assert "REGRESSED" in out and "McNemar exact" in out and "lost 13 / gained 0" in out and "FAIL:" in out
    code, out, _ = cli("gate", "--baseline", str(baseline), "--run", str(runs["tmp"]))
    assert code == 0 and "PASS" in out
    code, out, _ = cli("gate", "--baseline", str(baseline), "--run", str(runs["random"]), "--max-drop", "geneval=0.9")
    assert code == 0


@pytest.mark.parametrize("args, message", [
    (["--baseline", "{tmp}/nope.json", "--run", "{tmp_run}"], "error: baseline file '.*nope.json' not found"),
    (["--baseline", "{base}", "--run", "{tmp_run}", "--max-drop", "clipp=0.1"], "error: --max-drop names unknown metric 'clipp'"),
    (["--baseline", "{base}", "--run", "{suite_run}"], "error: gate: .* is not comparable with the baseline: suite"),
    (["--baseline", "{base}", "--run", "{seed_run}"], "error: gate: .* is not comparable with the baseline: different seeds"),
])
def test_gate_refusals_are_one_line(runs, tmp_path, cli, args, message):
    import re

    from tmpbench.experiments.gate import write_baseline

    base = write_baseline([runs["tmp"]], tmp_path / "base.json")
    subst = {"tmp": str(tmp_path), "tmp_run": str(runs["tmp"]), "base": str(base), "suite_run": str(runs["other_suite"]),
             "seed_run": str(runs["other_seeds"])}
    code, out, err = cli("gate", *(a.format(**subst) for a in args))
    assert code == 2 and len(err.strip().splitlines()) == 1 and re.match(message, err.strip()), err


def test_ablate_and_sweep_validate_before_loading(cli):
    code, _, err = cli("ablate", "--axis", "depth", "--model", "tiny-dit")
    assert code == 2 and err.strip() == "error: unknown --axis 'depth'; use one of tree-depth, policy-mix, search-cost, arch-transfer"
    code, _, err = cli("sweep", "--model", "tiny-dit-50%", "--suite", "shapes-t2i")
    assert code == 2 and "must be a registered unpruned model name" in err
    code, _, err = cli("sweep", "--model", "tiny-dit", "--suite", "shapes-t2i", "--pruners", "tmp,rand")
    assert code == 2 and "did you mean" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli("sweep", "--model", "tiny-dit", "--suite", "shapes-t2i", "--budgets", "25%,25%")
    assert code == 2 and err.strip() == "error: --budgets lists '25%' twice; name each once"


def test_sweep_all_pruners_follow_the_model_family():
    from tmpbench.experiments.sweep import pruners_for

    dense, moe = pruners_for("tiny-dit"), pruners_for("tiny-moe")
    assert dense[0] == moe[0] == "tmp"
    assert "reap" in moe and "expert-frequency" in moe
    assert "reap" not in dense and "expert-frequency" not in dense
    assert {"random", "magnitude", "block-influence"} <= set(dense) & set(moe)
