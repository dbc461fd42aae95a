"""The tiny seeded Z-Image generators (dim 32, two layers; dense or 4-expert MoE) the pruning tests share."""

from __future__ import annotations

import torch

from tmpbench.models.reference import tiny_zimage as tz
from tmpbench.models.zimage import ZImageGenerator

MOE = {"num_experts": 4, "moe_topk": 2, "moe_intermediate_size": 16, "num_shared_expert": 1}


def tiny_generator(moe: bool = False, seed: int = 0) -> ZImageGenerator:
    """A random-init tiny-dit (or tiny-moe) generator that saves in float32 (the random-init text
    encoder is not fp16-representable; trained references are)."""
    cfg = tz.TinyZImageConfig(dim=32, n_layers=2, n_refiner_layers=1, n_heads=2, text_hidden=16, text_layers=2,
                              moe=MOE if moe else None, seed=seed)
    pipe = tz.make_pipeline(tz.build_components(cfg))
    name = "tiny-moe" if moe else "tiny-dit"
    return ZImageGenerator(pipe, name=name, model=name, edit_fn=tz.edit_in_sequence, max_sequence_length=24,
                           save_fn=lambda p, d: tz.save_pipeline(p, d, cfg, dtype=torch.float32))
