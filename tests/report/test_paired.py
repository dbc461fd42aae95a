"""`compare --versus`: every pruner paired with a reference pruner at the same budget, Holm across the table,
checked against hand-computed McNemar and sign counts on synthetic run folders."""

from __future__ import annotations

import pytest

from tmpbench.errors import TmpbenchError
from tmpbench.report.paired import versus_table
from tmpbench.report.stats import holm, mcnemar_exact
from tmpbench.report.tables import load_run


def test_versus_pairs_each_budget_with_its_reference_and_holm_adjusts(small_sweep):
    from tests.synthetic_runs import BAD, GOOD

    runs = [load_run(p) for p in small_sweep.values()]
    table = versus_table(runs, "tmp", "geneval")
    assert list(table["budget"]) == ["25%", "50%"] and list(table["pruner"]) == ["random", "random"]
    # hand-computed: random minus tmp on the same items
    p25 = mcnemar_exact(GOOD, BAD).p_value
    p50 = mcnemar_exact(GOOD[:10] + BAD[10:], BAD).p_value
    assert list(table["p"]) == [f"{p25:.3g}", f"{p50:.3g}"]
    assert list(table["p (Holm)"]) == [f"{q:.3g}" for q in holm([p25, p50])]
    d25 = (sum(BAD) - sum(GOOD)) / 20
    assert table["Δ pruner − tmp [95% CI]"][0].startswith(f"{d25:.3f} [")
    for row in table.to_dict(orient="records"):
        q = float(row["p (Holm)"])
        assert row["verdict"] == ("tie" if q >= 0.05 else "tmp better")
    assert table.attrs["comparisons"] == 2 and table.attrs["tests"] == ["McNemar"]


def test_versus_on_a_continuous_metric_uses_the_paired_bootstrap(small_sweep):
    runs = [load_run(p) for p in small_sweep.values()]
    table = versus_table(runs, "tmp", "psnr_teacher")
    assert table.attrs["tests"] == ["paired bootstrap"]
    assert table["Δ pruner − tmp [95% CI]"][0].startswith("-10.000 [")  # 20+i%3 minus 30+i%3 on every item
    assert list(table["verdict"]) == ["tmp better", "tmp better"]


def test_versus_refuses_a_missing_reference(small_sweep):
    runs = [load_run(small_sweep["rnd25"]), load_run(small_sweep["teacher"])]
    with pytest.raises(TmpbenchError, match=r"--versus 'tmp': no run of that pruner .* they are by random"):
        versus_table(runs, "tmp", "geneval")


def test_versus_names_a_variant_of_the_reference_pruner_in_its_verdict(make_run):
    from tests.synthetic_runs import BAD, GOOD

    runs = [load_run(make_run("tmp-25pct", BAD, pruner="tmp", budget="25%", achieved=751)),
            load_run(make_run("tmp-wp-25pct", GOOD, pruner="tmp", budget="25%", achieved=751,
                              pruner_settings={"width_probes": 2}))]
    table = versus_table(runs, "tmp", "geneval")
    assert list(table["pruner"]) == ["tmp (width_probes=2)"]
    # the better side is the variant, named as its row is, not the bare pruner both runs share
    assert list(table["verdict"]) == ["tmp (width_probes=2) better"]
