"""`tmpbench run` / `tmpbench generate` on the command line: outputs, and one error line for bad input."""

import json

import pytest


@pytest.fixture(scope="module")
def tiny_pipe(tmp_path_factory):
    import torch

    from tmpbench.models.reference import tiny_zimage as tz

    d = tmp_path_factory.mktemp("tinypipe")
    cfg = tz.TinyZImageConfig(dim=32, n_layers=2, n_refiner_layers=1, n_heads=2, text_hidden=16, text_layers=2)
    tz.save_pipeline(tz.make_pipeline(tz.build_components(cfg)), d, cfg, dtype=torch.float32)
    return d


def one_error_line(code, err):
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("Loading")]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_missing_suite_file(tmp_path, cli):
    code, _, err = cli(
        "run", "--suite", "oneig", "--source", str(tmp_path / "nope.csv"), "--model", "tiny-dit", "--out", str(tmp_path / "o")
    )
    assert "nope.csv not found; pass --source PATH" in one_error_line(code, err)


def test_csv_with_wrong_columns(tmp_path, cli):
    bad = tmp_path / "OneIG-Bench.csv"
    bad.write_text("category,identifier,text\nPortrait,000,a face\n")
    code, _, err = cli("run", "--suite", "oneig", "--source", str(bad), "--model", "tiny-dit", "--out", str(tmp_path / "o"))
    assert "missing columns id, prompt_en" in one_error_line(code, err)


def test_unknown_metric_and_mode(tmp_path, cli):
    code, _, err = cli("run", "--suite", "shapes-t2i", "--model", "tiny-dit", "--metrics", "fid:incepton", "--out", str(tmp_path / "o"))
    assert "unknown feature mode 'incepton'; did you mean 'inception'" in one_error_line(code, err)
    code, _, err = cli("run", "--suite", "shapes-t2i", "--model", "tiny-dit", "--metrics", "clipscor", "--out", str(tmp_path / "o"))
    assert "unknown metric 'clipscor'; did you mean 'clipscore'" in one_error_line(code, err)


def test_unknown_model_spec(tmp_path, cli):
    code, _, err = cli("generate", "--suite", "shapes-t2i", "--model", "tiny-dtt", "--out", str(tmp_path / "o"))
    assert "bad model spec 'tiny-dtt'" in one_error_line(code, err)


def test_generate_16_then_score_reads_them(tmp_path, cli, tiny_pipe):
    out = tmp_path / "gen"
    code, stdout, err = cli("generate", "--model", "tiny-dit", "--model-path", str(tiny_pipe), "--suite", "shapes-t2i", "--limit", "16",
                            "--steps", "2", "--out", str(out), "--quiet")
    assert code == 0, err
    assert "16 generated, 0 resumed" in stdout
    assert len(list(out.rglob("*.png"))) == 16
    code, stdout, err = cli("score", "--suite", "shapes-t2i", "--images", str(out), "--limit", "16", "--json")
    assert code == 0, err
    assert json.loads(stdout)["images"] == 16


def test_run_continues_when_scorer_weights_are_missing(tmp_path, cli, tiny_pipe, monkeypatch):
    monkeypatch.setenv("TMPBENCH_CLIP_WEIGHTS", str(tmp_path / "missing-clip.safetensors"))
    out = tmp_path / "run"
    code, stdout, err = cli("run", "--suite", "shapes-t2i", "--model", "tiny-dit", "--model-path", str(tiny_pipe), "--limit", "2",
                            "--steps", "2", "--metrics", "geneval,clipscore", "--out", str(out), "--quiet")
    assert code == 0, err
    assert "clipscore" in stdout and "not scored: $TMPBENCH_CLIP_WEIGHTS=" in stdout
    res = json.loads((out / "results.json").read_text())
    assert res["metrics"]["clipscore"].startswith("not scored: ")
    assert isinstance(res["metrics"]["geneval"]["value"], float)
    assert len((out / "samples.jsonl").read_text().splitlines()) == 2
