"""TMP's progress bar: forward-equivalents against the estimate, on stderr, off unless asked, and never
a change to the plan."""

import sys

import pytest

from pruners.tmp_search import SearchProgress
from tmpbench.catalog import PRUNERS
from tmpbench.pruning.budget import Budget
from tmpbench.pruning.runner import plan_model

SETTINGS = {"chunks": 4, "max_calib_inputs": 2}


@pytest.fixture
def bars(monkeypatch):
    """Every tqdm bar made while the test runs, with the total it started from."""
    import tqdm.auto

    made = []

    class Recording(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.first_total = self.total
            self.file_given = kwargs.get("file")
            self.shown = not self.disable  # (close() disables a bar)
            made.append(self)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    return made


def _without_time(plan) -> str:
    search = plan.settings["search"]
    plan.settings["search"] = {k: v for k, v in search.items() if k != "seconds"}
    try:
        return plan.to_json()
    finally:
        plan.settings["search"] = search


@pytest.mark.parametrize("case", ["dense", "moe"])
def test_the_bar_counts_forward_equivalents_against_the_estimate(case, bars, request):
    case = request.getfixturevalue(case)
    shown = plan_model(case.model, "tmp", "25%", pruner_settings=SETTINGS, calibration=case.calib, progress=True)
    # what `tmpbench plan --estimate` predicts for the search (its search_forward_equivalents): same tree, same inputs
    est = PRUNERS.get("tmp")(**SETTINGS).estimate(shown.tree, Budget.parse("25%"), len(case.calib))
    assert len(bars) == 1
    bar = bars[0]
    assert bar.first_total == est["forward_equivalents"] > 0
    assert bar.n == pytest.approx(shown.plan.settings["search"]["forward_equivalents"], abs=0.01)
    assert bar.n <= bar.total == bar.first_total  # the tree search stays within its estimate
    assert bar.file_given is sys.stderr and bar.shown and bar.desc == "tmp tree search"
    quiet = plan_model(case.model, "tmp", "25%", pruner_settings=SETTINGS, calibration=case.calib, progress=False)
    assert len(bars) == 1  # no bar when progress is off
    assert _without_time(shown.plan) == _without_time(quiet.plan)  # the bar changes nothing


def test_progress_is_off_by_default_and_without_a_measured_search(dense, bars):
    plan_model(dense.model, "tmp", "25%", pruner_settings=SETTINGS, calibration=dense.calib)
    plan_model(dense.model, "tmp", "25%", pruner_settings=SETTINGS, progress=True)  # data-free proxy: instant
    assert bars == []


def test_the_flat_search_counts_without_a_total(dense, bars):
    settings = {**SETTINGS, "search": "flat", "rescore_every": 50}
    shown = plan_model(dense.model, "tmp", "25%", pruner_settings=settings, calibration=dense.calib, progress=True)
    assert len(bars) == 1 and bars[0].first_total is None and bars[0].desc == "tmp flat search"
    assert bars[0].n == pytest.approx(shown.plan.settings["search"]["forward_equivalents"], abs=0.01)


def test_past_the_estimate_the_total_grows_instead_of_overflowing(bars):
    with SearchProgress(10.0, "test") as progress:
        progress.advance(4.0)
        progress.advance(0.0)
        assert (progress.bar.n, progress.bar.total) == (4.0, 10.0)
        progress.advance(8.5)
        assert (progress.bar.n, progress.bar.total) == (12.5, 12.5)
    assert bars[0].first_total == 10.0
