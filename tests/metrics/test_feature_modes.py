"""Feature modes: pinned weights, offline errors naming where weights go, and input validation."""

import dataclasses
import json
import shutil

import numpy as np
import pytest
import torch

from tmpbench.errors import DataFormatError, OfflineError, TmpbenchError, UnknownNameError
from tmpbench.metrics import not_scored
from tmpbench.metrics.backbones.shapes_net import box_downsample, cell_accuracy, cell_labels, random_scene
from tmpbench.metrics.features import (
    FEATURE_MODES,
    SHAPES_FEATURES_DIR,
    SHAPES_FEATURES_SHA256,
    build_extractor,
    get_mode,
    mode_available,
    resolve_weights,
)
from tmpbench.metrics.fid import FrechetDistance, KernelDistance
from tmpbench.metrics.images import as_uint8_images, resize_float
from tmpbench.provenance import sha256_file
from tmpbench.shapes.world import render


def test_modes_are_registered_and_pinned():
    assert {"shapes", "inception", "clip"} <= set(FEATURE_MODES.names())
    settings = get_mode("shapes").settings()
    assert settings["weights_sha256"] == SHAPES_FEATURES_SHA256
    assert settings["image_size"] == 32 and settings["feature_dim"] == 64
    with pytest.raises(UnknownNameError, match="unknown feature mode 'clp'; did you mean 'clip'"):
        get_mode("clp")


def test_committed_shapes_weights_match_the_pin_and_config():
    weights = SHAPES_FEATURES_DIR / "model.safetensors"
    assert weights.stat().st_size < 1_000_000
    digest = sha256_file(weights)
    assert digest == SHAPES_FEATURES_SHA256
    config = json.loads((SHAPES_FEATURES_DIR / "config.json").read_text())
    assert config["sha256"] == digest
    assert (SHAPES_FEATURES_DIR / "model.safetensors.sha256").read_text().split()[0] == digest
    assert config["evaluation"]["holdout_cell_accuracy_clean"] > 0.99


def test_shapes_extractor_classifies_fresh_renders():
    from tmpbench.metrics.backbones import shapes_net

    model = shapes_net.load(SHAPES_FEATURES_DIR / "model.safetensors")
    rng = np.random.default_rng(12345)  # scenes the training (seed 0) never drew in this order
    scenes = [random_scene(rng, 0.35) for _ in range(200)]
    x = torch.from_numpy(np.stack([render(s) for s in scenes])).permute(0, 3, 1, 2).float()
    y = torch.from_numpy(np.stack([cell_labels(s) for s in scenes]))
    assert cell_accuracy(model, x, y) > 0.99


def test_shapes_features_are_standardised_and_resize_is_consistent():
    ex = build_extractor("shapes")
    rng = np.random.default_rng(1)
    scenes = [random_scene(rng, 0.35) for _ in range(64)]
    small = ex([render(s, 32) for s in scenes])
    assert small.shape == (64, 64) and small.dtype == torch.float64
    assert abs(float(small.mean())) < 0.5 and 0.5 < float(small.std()) < 2.0
    # a 128-px render goes through the mode's box resize and lands near the 32-px render
    large = ex([render(s, 128) for s in scenes])
    assert float((large - small).norm(dim=1).mean()) < 0.25 * float(small.norm(dim=1).mean())
    np.testing.assert_allclose(resize_float(render(scenes[0], 64), 32, "box"), box_downsample(render(scenes[0], 64), 32), atol=1e-3)


def test_shapes_features_separate_scenes_from_noise():
    ex = build_extractor("shapes")
    rng = np.random.default_rng(2)
    a = ex([render(random_scene(rng, 0.35)) for _ in range(8)])
    b = ex([render(random_scene(rng, 0.35)) for _ in range(8)])
    noise = ex(rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8))
    assert (a.mean(0) - noise.mean(0)).norm() > 5 * (a.mean(0) - b.mean(0)).norm()


def _offline_inception(tmp_path):
    """The inception mode with its default locations moved under tmp_path (nothing there)."""
    return dataclasses.replace(get_mode("inception"), default_paths=lambda: [tmp_path / "inception-2015-12-05.pt"])


def test_missing_inception_weights_one_clear_line(tmp_path, no_weight_env):
    mode = _offline_inception(tmp_path)
    with pytest.raises(OfflineError) as info:
        resolve_weights(mode)
    msg = str(info.value)
    assert "\n" not in msg
    assert f"put inception-2015-12-05.pt at {tmp_path}/inception-2015-12-05.pt" in msg
    assert "TMPBENCH_INCEPTION_WEIGHTS=PATH" in msg and "--weights PATH" in msg and "no download" in msg


def test_metric_reports_unavailable_and_never_a_number(tmp_path, no_weight_env):
    mode = _offline_inception(tmp_path)
    for metric in (FrechetDistance(mode=mode), KernelDistance(mode=mode)):
        ok, reason = metric.available()
        assert not ok and "inception-2015-12-05.pt" in reason
        assert not_scored(reason).startswith("not scored: ")
        ident = metric.identity()
        assert ident["weights_sha256"] is None and ident["unavailable"] == reason
        with pytest.raises(OfflineError, match="not found offline"):
            metric.update(np.zeros((2, 32, 32, 3), np.uint8), real=True)


def test_weights_from_flag_and_env(tmp_path, monkeypatch, no_weight_env):
    with pytest.raises(OfflineError, match=r"not found at .*nope\.pt: pass an existing file"):
        resolve_weights("inception", tmp_path / "nope.pt")
    monkeypatch.setenv("TMPBENCH_INCEPTION_WEIGHTS", str(tmp_path / "gone.pt"))
    with pytest.raises(OfflineError, match=r"\$TMPBENCH_INCEPTION_WEIGHTS=.*gone\.pt does not exist"):
        resolve_weights("inception")
    copy = tmp_path / "shapes.safetensors"
    shutil.copy(SHAPES_FEATURES_DIR / "model.safetensors", copy)
    monkeypatch.setenv("TMPBENCH_SHAPES_FEATURES", str(copy))
    assert resolve_weights("shapes") == copy
    assert mode_available("shapes") == (True, "")


def test_weights_that_differ_from_the_pin_are_refused(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes((SHAPES_FEATURES_DIR / "model.safetensors").read_bytes() + b"\0")
    ok, reason = mode_available("shapes", bad)
    assert not ok and "pins" in reason
    with pytest.raises(DataFormatError, match=r"has sha256 .* but feature mode 'shapes' pins"):
        build_extractor("shapes", bad)


def test_image_inputs_are_validated():
    assert len(as_uint8_images(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))) == 2
    assert as_uint8_images(np.zeros((3, 8, 8, 3), np.uint8))[0].shape == (8, 8, 3)
    with pytest.raises(TmpbenchError, match=r"expected a uint8 image tensor \(N, 3, H, W\), got torch.float32"):
        as_uint8_images(torch.zeros(2, 3, 8, 8))
    with pytest.raises(TmpbenchError, match=r"expected \(H, W, 3\) uint8 images, got float64"):
        as_uint8_images([np.zeros((8, 8, 3))])


def test_inception_mode_runs_clean_fids_network_from_a_local_file(tmp_path):
    """Wiring only: a stand-in TorchScript file with clean-fid's interface (``.layers`` -> 2048 x 1 x 1)."""

    class Layers(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Conv2d(3, 2048, 1)

        def forward(self, x):
            return self.proj(torch.nn.functional.adaptive_avg_pool2d(x, 1))

    class Base(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = Layers()

        def forward(self, x):
            return self.layers(x)

    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.script(Base()).save(str(path))
    ex = build_extractor("inception", path)
    images = np.random.default_rng(0).integers(0, 256, (2, 40, 40, 3), dtype=np.uint8)
    feats = ex(images)
    assert feats.shape == (2, 2048)
    # clean-fid's "clean" mode: float bicubic resize to 299, then (x - 128) / 128 inside the network
    x = torch.from_numpy(np.stack([resize_float(i, 299, "bicubic") for i in images])).permute(0, 3, 1, 2)
    expected = torch.jit.load(str(path)).layers((x - 128) / 128).view(2, 2048)
    torch.testing.assert_close(feats, expected.double(), rtol=1e-5, atol=1e-5)
    assert ex.identity()["weights_sha256"] == sha256_file(path)
    wrong_name = tmp_path / "inception.pt"
    shutil.copy(path, wrong_name)
    with pytest.raises(OfflineError, match="rename .*inception.pt to inception-2015-12-05.pt"):
        build_extractor("inception", wrong_name)


@pytest.mark.weights
def test_inception_mode_with_real_weights():
    ok, reason = mode_available("inception")
    if not ok:
        pytest.skip(reason)
    ex = build_extractor("inception")
    feats = ex(np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8))
    assert feats.shape == (2, 2048) and bool(torch.isfinite(feats).all())
