"""The committed ShapesWorld reference models load through the registry and match their recorded recipe."""

import dataclasses
import json

import numpy as np
import pytest

from tmpbench.catalog import MODELS
from tmpbench.loading import load_model
from tmpbench.models.assets import asset_dir
from tmpbench.models.reference.tiny_zimage import TinyZImageConfig
from tmpbench.training.reference import default_config


@pytest.mark.parametrize("name", ["tiny-dit", "tiny-moe", "tiny-hy3"])
def test_committed_reference_loads_and_matches_its_recipe(name):
    folder = asset_dir(name)
    meta = json.loads((folder / "tmpbench.json").read_text())
    # the architecture saved is the training recipe's, so nominal params and --meta agree with the weights
    # (fields added to the config later take their defaults when an older folder loads)
    saved = dataclasses.asdict(TinyZImageConfig(**meta["tiny_config"]))
    assert json.loads(json.dumps(saved)) == json.loads(json.dumps(dataclasses.asdict(default_config(name).arch)))
    assert meta["trained_steps"] == meta["train_config"]["steps"]
    weights = sum(p.stat().st_size for p in folder.rglob("*.safetensors"))
    assert weights <= 10 * 1024 * 1024, f"{name} weights are {weights} bytes; the limit is 10 MB"
    t2i, edit = meta["measured"]["shapes-t2i"], meta["measured"]["shapes-edit"]
    assert t2i["images"] == 600 and 0.0 <= t2i["overall"] <= 1.0 and len(t2i["overall_ci95"]) == 2
    assert 0.0 <= edit["success"] <= 1.0
    gen = load_model(name)
    entry = MODELS.get(name)
    assert sum(p.numel() for p in gen.denoiser.parameters()) == entry.nominal_params
    images = gen.generate(["a photo of a red circle"], [0], 4, 1.0, 32)
    arr = np.asarray(images[0])
    assert arr.shape == (32, 32, 3) and arr.std() > 0
