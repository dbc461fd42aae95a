"""`tmpbench pruners list`, `tree`, `plan` and `prune`: outputs and one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from typer.testing import CliRunner

from tmpbench.models.reference import tiny_zimage as tz
from tmpbench.models.zimage import ZImageGenerator
from tmpbench.pruning import Plan

RUN = CliRunner()


@pytest.fixture(scope="module")
def app():
    from tmpbench.cli.prune_cmd import register

    app = typer.Typer()
    register(app)
    return app


def invoke(app, *args):
    return RUN.invoke(app, list(args), catch_exceptions=True)


def test_pruners_list_json(app):
    out = invoke(app, "pruners", "list", "--json")
    assert out.exit_code == 0
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert "random" in rows and set(rows["random"]["families"]) == {"dit", "moe"}


def test_tree_meta_json(app):
    out = invoke(app, "tree", "--model", "zimage", "--meta", "--depth", "1", "--json")
    assert out.exit_code == 0, out.output
    tree = json.loads(out.stdout)
    assert tree["root"]["params"] == 6_154_908_736
    assert all("children" not in s for s in tree["root"]["children"])
    text = invoke(app, "tree", "--model", "hunyuanimage3", "--meta", "--depth", "0")
    assert text.exit_code == 0 and "HunYuanMoEV1ForCausalLM: 81G params" in text.stdout


def test_plan_json_fields(app):
    out = invoke(app, "plan", "--model", "tiny-dit", "--meta", "--pruner", "random", "--budget", "20%", "--json")
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["requested"]["budget"] == "20%"
    assert abs(data["achieved_params"] - data["requested"]["target"]) / data["requested"]["target"] <= 0.005
    assert data["budget_check"]["ok"] is True and data["decisions"] and data["data_free"] is True
    # random ids are scattered: the decisions use format 3 (Rice-coded where shorter than range strings)
    assert data["plan_version"] == 3
    keeps = [d["keep"] for d in data["decisions"] if d["keep"] is not None]
    assert keeps and all(isinstance(k, str) and k for k in keeps) and any(k.startswith("rice") for k in keeps)
    plan = Plan.from_dict({"model": data["model"], "budget": {}, "pruner": "random", "version": 3,
                           "decisions": data["decisions"]})
    assert all(d.keep for d in plan.decisions if d.keep is not None)


@pytest.mark.parametrize("args,match", [
    (("--pruner", "randm", "--budget", "20%"), "did you mean 'random'"),
    (("--pruner", "random", "--budget", "100%"), "strictly between 0% and 100%"),
    (("--pruner", "random", "--budget", "1k"), "smallest feasible model keeps"),
    (("--pruner", "random", "--budget", "20%", "--set", "nonsense"), "must look like key=value"),
])
def test_plan_errors_are_one_line(app, args, match, capsys):
    import tmpbench.cli as cli
    from tmpbench.cli import main

    if "plan" not in {c.name or c.callback.__name__ for c in cli.app.registered_commands}:
        from tmpbench.cli.prune_cmd import register

        register(cli.app)
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", "--model", "tiny-dit", "--meta", *args])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and match in err


def test_plan_error_messages(app, capsys):
    out = invoke(app, "plan", "--model", "tiny-dit", "--meta", "--pruner", "randm", "--budget", "20%")
    assert out.exit_code != 0 and "did you mean 'random'" in str(out.exception)
    out = invoke(app, "plan", "--model", "tiny-dit-20%", "--meta", "--pruner", "random", "--budget", "20%")
    assert "already names a size" in str(out.exception)


def test_prune_writes_loadable_folder(app, tmp_path):
    from tmpbench.pruning.io import load_pruned

    cfg = tz.TinyZImageConfig(dim=32, n_layers=2, n_refiner_layers=1, n_heads=2, text_hidden=16, text_layers=2)
    gen = ZImageGenerator(tz.make_pipeline(tz.build_components(cfg)), name="tiny-dit", model="tiny-dit",
                          edit_fn=tz.edit_in_sequence, max_sequence_length=24,
                          save_fn=lambda p, d: tz.save_pipeline(p, d, cfg, dtype=torch.float32))
    gen.save(tmp_path / "base")
    out = invoke(app, "prune", "--model", str(tmp_path / "base"), "--pruner", "random", "--budget", "10%",
                 "--out", str(tmp_path / "out"), "--calib-prompts", "2")
    assert out.exit_code == 0, out.output
    assert "meets the budget" in out.stdout
    loaded = load_pruned(tmp_path / "out")
    assert loaded.generate(["a photo of a circle"], [0], 2, 1.0, 32)[0].size == (32, 32)
    again = invoke(app, "prune", "--model", str(tmp_path / "base"), "--pruner", "random", "--budget", "10%",
                   "--out", str(tmp_path / "out"))
    assert "exists and is not empty" in str(again.exception)


def test_estimate_refuses_what_it_cannot_predict_in_one_line(cli):
    code, _, err = cli("plan", "--model", "tiny-dit", "--pruner", "magnitude", "--budget", "25%", "--estimate")
    assert code == 2 and err.strip() == ("error: pruner 'magnitude' has no search to estimate; --estimate applies to "
                                         "measured searches (tmp)")
    code, _, err = cli("plan", "--model", "tiny-dit", "--pruner", "tmp", "--budget", "25%", "--estimate",
                       "--set", "search=flat")
    assert code == 2 and "the flat greedy's evaluations depend on what it accepts" in err and len(err.strip().splitlines()) == 1


def test_estimate_counts_the_calls_calibration_makes(cli):
    """A calibration input is one denoiser call: the diffusers pipelines run each task's prompts as one
    batch per step, so tiny-dit's default calibration (4 shapes-t2i + 4 shapes-edit prompts, 16 steps)
    makes 32 calls of 4 samples, which is what the prune runner counts when it collects it."""
    from tmpbench.loading import load_model
    from tmpbench.pruning.recipes import default_calibration, model_defaults

    code, out, _ = cli("plan", "--model", "tiny-dit", "--pruner", "tmp", "--budget", "25%", "--estimate", "--json")
    assert code == 0
    est = json.loads(out)
    assert est["tasks"] == {"edit": 4, "t2i": 4} and est["batched"] is True
    gen = load_model("tiny-dit")
    calib = default_calibration("tiny-dit").resolved(*model_defaults(gen)).collect(gen)
    assert est["calibration_forwards"] == calib.identity["n_calls"] == 32
    # TMP keeps max_calib_inputs (16) of the 32, spread over the trajectory
    assert est["samples_per_call"] == 4 and est["calib_inputs"] == len(calib.subset(16)) == 16
    # the sequences the calls carry, as the FLOPs assume: a t2i call guides at guidance 1 (ZImagePipeline:
    # guidance > 0), 4 prompts x 2; an edit call does not (the reference's edit path: guidance > 1)
    sizes = [len(a[0]) if a else len(next(iter(k.values()))) for a, k in calib.inputs]
    assert sorted(set(sizes)) == [4, 8] and est["batch_per_call"] == sum(sizes) / len(sizes) == 6
    # HunyuanImage-3.0 runs generate_image once per prompt: one sample per call
    code, out, _ = cli("plan", "--model", "hunyuanimage3", "--meta", "--pruner", "tmp", "--budget", "20b", "--estimate",
                       "--json")
    hy = json.loads(out)
    assert hy["batched"] is False and hy["samples_per_call"] == 1 and hy["calibration_forwards"] == 8 * 50
