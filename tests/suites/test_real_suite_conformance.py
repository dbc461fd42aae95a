"""Conformance on the real benchmark files in ../shared/data, through `tmpbench suites show --json`.

Skips cleanly (the `shared_data` fixture) when the folder is absent.
"""

import json

from tmpbench.cli import main


def _show(capsys, *args):
    main(["suites", "show", *args, "--json"])
    return json.loads(capsys.readouterr().out)


def test_geneval_conformance(shared_data, capsys):
    out = _show(capsys, "geneval", "--source", str(shared_data / "geneval" / "evaluation_metadata.jsonl"))
    assert out["count"] == 553
    assert out["by_category"] == {
        "single_object": 80, "two_object": 99, "counting": 80, "colors": 94, "position": 100, "color_attr": 100,
    }
    assert (out["kind"], out["version"], len(out["hash"])) == ("t2i", "1", 64)


ONEIG_EN = {"Anime_Stylization": 245, "Portrait": 244, "General_Object": 206, "Text_Rendering": 200, "Knowledge_Reasoning": 225}


def test_oneig_en_conformance(shared_data, capsys):
    out = _show(capsys, "oneig", "--source", str(shared_data / "oneig" / "OneIG-Bench.csv"))
    assert out["count"] == 1120
    assert out["by_category"] == ONEIG_EN


def test_oneig_zh_conformance(shared_data, capsys):
    out = _show(capsys, "oneig-zh", "--source", str(shared_data / "oneig"))  # the folder works too
    assert out["count"] == 1320
    assert out["by_category"] == {**ONEIG_EN, "Multilingualism": 200}


def test_oneig_ids_are_strings(shared_data):
    from tmpbench.suites.core import load_suite

    suite = load_suite("oneig", source=shared_data / "oneig")
    assert suite.items[0].id == "000"
    assert all(isinstance(it.id, str) and len(it.id) == 3 for it in suite.items)


def test_imgedit_conformance(shared_data, capsys):
    out = _show(capsys, "imgedit", "--source", str(shared_data / "imgedit" / "basic_edit.json"))
    assert out["count"] == 737
    assert sorted(out["by_category"].values(), reverse=True) == [117, 100, 95, 94, 94, 92, 86, 36, 23]
    assert out["by_category"] == {
        "extract": 117, "style": 100, "add": 95, "adjust": 94, "background": 94, "replace": 92, "remove": 86,
        "action": 36, "compose": 23,
    }
    assert out["kind"] == "edit"
