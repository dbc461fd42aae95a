"""The scoring engine: metric lists, scorers built for a suite by its traits, one-line refusals, "not scored"."""

import types

import numpy as np
import pytest

from tmpbench.catalog import SCORERS
from tmpbench.errors import TmpbenchError, UnknownNameError
from tmpbench.scoring.base import NotScored, SampleScorer, SampleView
from tmpbench.scoring.engine import build_scorers, compute_set_metric, default_metrics, parse_metric_list, score_samples, summarise
from tmpbench.scoring.geneval.open_vocab import DETECTOR_ENV, OpenVocabGenEval
from tmpbench.scoring.shapes import ShapesGenEval
from tmpbench.suites.core import get_spec


def suite(**traits):
    base = dict(name="custom", kind="t2i", metrics=[], benchmark="custom", language="en", layout="geneval", world=None, items=[])
    return types.SimpleNamespace(**{**base, **traits})


def test_parse_metric_list():
    assert parse_metric_list("geneval, fid:inception") == [("geneval", None), ("fid", "inception")]
    with pytest.raises(UnknownNameError, match="unknown metric 'genevl'; did you mean 'geneval'"):
        parse_metric_list("genevl")
    with pytest.raises(TmpbenchError, match="names no metric"):
        parse_metric_list(" , ")


def test_every_registered_scorer_builds_for_a_suite_of_its_kind(monkeypatch):
    monkeypatch.delenv(DETECTOR_ENV, raising=False)
    t2i, edit = suite(world="shapes"), suite(kind="edit", world="shapes")
    oneig = suite(benchmark="oneig", layout="oneig")
    for name in SCORERS.names():
        target = oneig if name.startswith("oneig") else t2i
        scorer = SCORERS.get(name)(target, device="cpu")
        if target.kind not in scorer.kinds:
            scorer = SCORERS.get(name)(edit, device="cpu")
        assert len(scorer.available()) == 2 and scorer.identity()["name"] == name
        assert scorer.aggregation in ("mean", "category_mean", "set", "benchmark_formula")


def test_geneval_follows_the_world_trait_not_the_suite_name(monkeypatch):
    monkeypatch.delenv(DETECTOR_ENV, raising=False)
    assert isinstance(build_scorers(suite(name="geneval", world="shapes"), [("geneval", None)])["geneval"], ShapesGenEval)
    real = build_scorers(suite(name="shapes-t2i"), [("geneval", None)])["geneval"]
    assert isinstance(real, OpenVocabGenEval)
    ok, reason = real.available()
    assert not ok and f"set ${DETECTOR_ENV} to a local OWLv2 folder" in reason
    assert isinstance(build_scorers(get_spec("shapes-t2i"), [("geneval", None)])["geneval"], ShapesGenEval)


def test_refusals_are_one_line_and_name_the_trait():
    with pytest.raises(TmpbenchError, match=r"metric 'geneval' takes no mode \(got 'geneval:x'\); only fid:MODE and kid:MODE do"):
        build_scorers(suite(world="shapes"), [("geneval", "x")])
    with pytest.raises(TmpbenchError, match="metric 'oneig_style' belongs to OneIG-Bench; suite 'oneig-like' is not a OneIG suite"):
        build_scorers(suite(name="oneig-like"), [("oneig_style", None)])
    with pytest.raises(TmpbenchError, match="fid in tmpbench run needs ground-truth renders"):
        build_scorers(suite(), [("fid", None)])
    with pytest.raises(TmpbenchError, match="metric 'edit_success' scores edit suites; suite 'custom' is t2i"):
        build_scorers(suite(world="shapes"), [("edit_success", None)])
    with pytest.raises(TmpbenchError, match="compares a pruned model with its teacher"):
        build_scorers(suite(), [("ssim_teacher", None)])


def test_oneig_judges_read_the_language_trait():
    zh = build_scorers(suite(benchmark="oneig", language="zh"), [("oneig_text", None)])["oneig_text"]
    en = build_scorers(suite(name="oneig-zh", benchmark="oneig"), [("oneig_text", None)])["oneig_text"]
    assert zh.zh and not en.zh
    assert zh.aggregation == "benchmark_formula"


def test_default_metrics_add_fidelity_for_pruned_models():
    spec = get_spec("shapes-edit")
    assert default_metrics(spec, pruned=False) == [("edit_success", None), ("preservation_psnr", None), ("preservation_l1", None)]
    assert [n for n, _ in default_metrics(spec, pruned=True)][-3:] == ["psnr_teacher", "ssim_teacher", "lpips_teacher"]


class _Flaky(SampleScorer):
    name = "flaky"

    def score(self, samples):
        if len(samples) > 1:
            raise NotScored("needs one sample at a time")
        return [{self.name: 1.0}]


def test_not_scored_drops_partial_values_and_set_metrics_record_their_aggregation():
    item = types.SimpleNamespace(category="c", prompt="p", metadata={})
    views = [SampleView(item, n, None, np.zeros((8, 8, 3), np.uint8)) for n in range(3)]
    values, skipped, _ = score_samples({"flaky": _Flaky()}, views, batch_size=1)
    assert skipped == {} and [v["flaky"] for v in values] == [1.0, 1.0, 1.0]
    values, skipped, _ = score_samples({"flaky": _Flaky()}, views, batch_size=2)
    assert skipped == {"flaky": "not scored: needs one sample at a time"} and values == [{}, {}, {}]
    rows = [{"category": "c", "metrics": {"flaky": 1.0}, "extras": {}}] * 2
    assert summarise("flaky", _Flaky(), rows)["aggregation"] == "mean"
    fid = build_scorers(suite(), [("fid", "shapes")])["fid"]
    assert compute_set_metric(fid, views, suite()).startswith("not scored: fid needs reference images")
