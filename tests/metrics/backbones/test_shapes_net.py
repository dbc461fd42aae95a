"""The ShapesWorld extractor's training script: deterministic, learns, and saves/loads losslessly."""

import json

import numpy as np
import torch

from tmpbench.metrics.backbones import shapes_net as sf
from tmpbench.provenance import sha256_file
from tmpbench.shapes.world import Scene, ShapeObject


def _tiny_cfg():
    return sf.TrainConfig(n_train=256, n_holdout=64, epochs=2, batch_size=64)


def test_cell_labels():
    scene = Scene((ShapeObject("square", "blue", 0, 1), ShapeObject("circle", "red", 1, 0)))
    labels = sf.cell_labels(scene)
    assert labels.tolist() == [0, sf.CELL_CLASSES.index("blue square"), sf.CELL_CLASSES.index("red circle"), 0]


def test_tiny_training_is_deterministic_and_learns(tmp_path):
    logs = []
    m1, e1 = sf.train(_tiny_cfg(), log=logs.append)
    m2, _ = sf.train(_tiny_cfg(), log=lambda _: None)
    for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a, b), k
    untrained = sf.ShapesFeatureNet()
    x, y = sf.make_dataset(64, np.random.default_rng(99), _tiny_cfg())
    assert sf.cell_accuracy(m1, x, y) > sf.cell_accuracy(untrained, x, y)
    assert e1["final_train_loss"] < np.log(len(sf.CELL_CLASSES))  # below chance-level cross-entropy
    assert any("epoch 2/2" in line for line in logs)


def test_save_load_roundtrip(tmp_path):
    model, evaluation = sf.train(sf.TrainConfig(n_train=64, n_holdout=16, epochs=1, batch_size=32), log=lambda _: None)
    digest = sf.save(model, tmp_path, sf.TrainConfig(n_train=64), evaluation)
    assert digest == sha256_file(tmp_path / sf.WEIGHTS_NAME)
    config = json.loads((tmp_path / sf.CONFIG_NAME).read_text())
    assert config["sha256"] == digest and config["train"]["n_train"] == 64
    loaded = sf.load(tmp_path / sf.WEIGHTS_NAME)
    x = torch.rand(4, 3, 32, 32) * 255
    assert torch.equal(loaded.features(x), model.features(x))
    assert not torch.equal(model.feature_std, torch.ones_like(model.feature_std))  # standardisation was fitted
