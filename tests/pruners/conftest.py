"""Tiny random-init generators and calibration sets shared by the pruner tests.

The contracts' dim-32 tiny model cannot be pruned by 25%: its 296k-parameter timestep embedder
(fixed 256 -> 1024 -> dim MLP) is 80% of the model. These tests use dim 128 (dense) and dim 64
with 8 experts (MoE), where 50% is within reach of every pruner.
"""

import pytest
import torch

from tmpbench.models.reference import tiny_zimage as tz
from tmpbench.models.zimage import ZImageGenerator
from tmpbench.pruning import build_unit_tree
from tmpbench.pruning.calibration import collect_calibration

MOE = {"num_experts": 8, "moe_topk": 2, "moe_intermediate_size": 128, "num_shared_expert": 1}


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # the machine is shared; one thread avoids oversubscription stalls on tiny matmuls
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_generator(moe: dict | None = None) -> ZImageGenerator:
    cfg = tz.TinyZImageConfig(dim=64 if moe else 128, n_layers=4, n_refiner_layers=1, n_heads=4, text_hidden=16,
                              text_layers=2, moe=moe)
    pipe = tz.make_pipeline(tz.build_components(cfg))
    return ZImageGenerator(pipe, name="tiny-moe" if moe else "tiny-dit", model="tiny-moe" if moe else "tiny-dit",
                           edit_fn=tz.edit_in_sequence, max_sequence_length=24,
                           save_fn=lambda p, d: tz.save_pipeline(p, d, cfg))


class Case:
    def __init__(self, moe):
        self.gen = make_generator(moe)
        self.model = self.gen.denoiser
        self.tree = build_unit_tree(self.model, size=32)
        self.calib = collect_calibration(self.gen, ["a red circle", "two blue squares"], [0, 1], steps=2, size=32)


@pytest.fixture(scope="session")
def dense() -> Case:
    return Case(None)


@pytest.fixture(scope="session")
def moe() -> Case:
    return Case(MOE)
