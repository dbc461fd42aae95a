"""`tmpbench plan/prune --offload-folder`: the denoiser's blocks stay on disk (accelerate's disk offload)
while TMP's measured search runs and while the surgery reads the kept blocks one at a time. The folder
written is the one an in-memory prune writes; what cannot run offloaded says so in one line."""

from __future__ import annotations

import json

import pytest
import torch

from tmpbench.pruning.io import load_pruned

SMALL = ("--calib-prompts", "2", "--set", "max_calib_inputs=4")


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A small tiny-dit pipeline saved as a model folder (fp32)."""
    from tmpbench.models.reference import tiny_zimage as tz
    from tmpbench.models.zimage import ZImageGenerator

    cfg = tz.TinyZImageConfig(dim=64, n_layers=4, n_refiner_layers=1, n_heads=4, text_hidden=16, text_layers=2)
    gen = ZImageGenerator(tz.make_pipeline(tz.build_components(cfg)), name="tiny-dit", model="tiny-dit",
                          edit_fn=tz.edit_in_sequence, max_sequence_length=24,
                          save_fn=lambda p, d: tz.save_pipeline(p, d, cfg, dtype=torch.float32))
    folder = tmp_path_factory.mktemp("offload-base") / "base"
    gen.save(folder)
    return folder


@pytest.fixture(scope="module")
def pruned_both(base_dir, tmp_path_factory):
    """The saved tiny pipeline pruned by TMP in memory and with --offload-folder (same arguments)."""
    from tmpbench.cli import main

    root = tmp_path_factory.mktemp("offload-cli")
    for name, extra in (("memory", ()), ("disk", ("--offload-folder", str(root / "offload")))):
        try:
            main(["prune", "--model", str(base_dir), "--pruner", "tmp", "--budget", "30%", *SMALL,
                  "--out", str(root / name), "--quiet", *extra])
        except SystemExit as exc:
            assert not exc.code, f"prune ({name}) exited {exc.code}"
    return root


def test_prune_offloaded_writes_the_folder_an_in_memory_prune_writes(pruned_both):
    memory, disk = (json.loads((pruned_both / n / "plan.json").read_text()) for n in ("memory", "disk"))
    assert disk["decisions"] == memory["decisions"] and disk["achieved_params"] == memory["achieved_params"]
    search = disk["settings"]["search"]
    assert search["evaluator"] == "masked_output_error" and search["predicted_error"] == memory["settings"]["search"]["predicted_error"]
    assert search["prediction_gap"] < 1e-4  # the block-by-block surgery cut what the search scored
    assert any((pruned_both / "offload").iterdir())  # the blocks really were on disk
    a, b = (load_pruned(pruned_both / n).denoiser.state_dict() for n in ("memory", "disk"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ids = [json.loads((pruned_both / n / "pruned.json").read_text())["base"]["weights"] for n in ("memory", "disk")]
    assert ids[0] == ids[1]  # the same weights fingerprint, read block by block from disk


def test_what_cannot_run_offloaded_is_one_line(cli, base_dir, pruned_both, tmp_path):
    off = ("--offload-folder", str(tmp_path / "off"))
    code, _, err = cli("plan", "--model", "tiny-dit", "--pruner", "tmp", "--budget", "25%", "--meta", *off)
    assert code == 2 and err.strip() == "error: --offload-folder loads weights; --meta and --estimate load none"
    code, _, err = cli("plan", "--model", "hunyuanimage3", "--pruner", "tmp", "--budget", "20b", *off)
    assert code == 2 and err.strip() == ("error: model 'hunyuanimage3' cannot be loaded with --offload-folder (its loader "
                                         "has no disk offload); load it in memory, or plan it data-free with --meta")
    code, _, err = cli("plan", "--model", "tiny-hy3", "--pruner", "tmp", "--budget", "25%", *SMALL, "--quiet", *off)
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # (transformers' own loading bar aside)
    assert code == 2 and len(errors) == 1  # fused experts' channel masks would edit offloaded weights
    assert "masking fused experts' channels" in errors[0] and errors[0].endswith("prune experts only (policy_mix without prune_channels)")
    code, _, err = cli("plan", "--model", str(pruned_both / "memory"), "--pruner", "tmp", "--budget", "25%", *off)
    assert code == 2 and "is a pruned model folder, which loads in memory; --offload-folder applies to base models" in err
    code, _, err = cli("prune", "--model", str(base_dir), "--pruner", "magnitude", "--budget", "25%",
                       "--out", str(tmp_path / "mag"), *SMALL[:2], *off)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "accelerate offloads" in errors[0]
