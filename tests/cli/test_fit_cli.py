"""`tmpbench fit`: the report and its one-line errors through the CLI."""

from __future__ import annotations

import json


def test_fit_json_on_tiny_dit(cli):
    code, out, err = cli("fit", "--model", "tiny-dit", "--gpu", "rtx4090", "--size", "32", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["gpu"]["name"] == "rtx4090" and report["cheapest"]["strategy"] == "none"
    assert [v["strategy"] for v in report["verdicts"]] == ["none", "model", "group"]


def test_fit_unknown_gpu_is_one_line(cli):
    code, out, err = cli("fit", "--model", "tiny-dit", "--gpu", "a100", "--size", "32")
    assert code == 2
    assert err.strip().count("\n") == 0 and "unknown --gpu 'a100'; did you mean" in err
