"""tiny-hy3: HunyuanImage-3.0's decoder layout (one token sequence, timestep embedding, GQA, routed +
shared experts from transformers' HunYuan MoE layers) driven by the Z-Image pipeline, trainable and prunable."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tmpbench.catalog import MODELS
from tmpbench.errors import TmpbenchError
from tmpbench.models.counting import build_meta, count_params
from tmpbench.models.reference import tiny_zimage as tz
from tmpbench.models.reference.entries import TINY_HY3_ENTRY, TINY_MOE_ENTRY, load_reference
from tmpbench.models.reference.tiny_hy3 import TinyHY3Transformer
from tmpbench.pruning.families import layout, unit_tree

SMALL = dict(dim=32, n_layers=2, n_heads=4, text_hidden=16, text_layers=2,
             hy3={"n_kv_heads": 2, "num_experts": 4, "moe_topk": 2, "moe_intermediate_size": 16, "num_shared_expert": 1})


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    return tz.make_pipeline(tz.build_components(tz.TinyZImageConfig(**SMALL)))


def test_it_is_the_decoder_layout(pipe):
    tr = pipe.transformer
    assert isinstance(tr, TinyHY3Transformer) and layout(tr).name == "hunyuan-decoder"
    attn, mlp = tr.model.layers[0].self_attn, tr.model.layers[0].mlp
    assert type(attn).__name__ == "HunYuanMoEV1Attention" and (attn.k_proj.out_features, attn.q_proj.out_features) == (16, 32)
    assert type(mlp).__name__ == "HunYuanMoEV1Moe" and mlp.experts.gate_up_proj.shape == (4, 32, 32) and mlp.shared_mlp
    tree = unit_tree(tr)
    assert tree.params == sum(p.numel() for p in tr.parameters())
    assert tree["model.layers.0.self_attn#heads"].count == 2  # units are KV groups


def test_text_and_image_tokens_share_one_sequence(pipe):
    """A caption changes the image tokens' output (attention crosses modalities), padding does not."""
    import copy

    tr = copy.deepcopy(pipe.transformer).eval()
    torch.nn.init.normal_(tr.final_layer.weight, std=0.1)  # the output head starts at zero; open it up
    g = torch.Generator().manual_seed(0)
    x = [torch.randn(12, 1, 16, 16, generator=g)]
    cap_a, cap_b = torch.randn(5, 16, generator=g), torch.randn(5, 16, generator=g)
    t = torch.tensor([0.3])
    with torch.no_grad():
        a = tr(x, t, [cap_a], return_dict=False)[0][0]
        b = tr(x, t, [cap_b], return_dict=False)[0][0]
        batched = tr(x * 2, torch.tensor([0.3, 0.3]), [cap_a, torch.randn(9, 16, generator=g)], return_dict=False)[0][0]
    assert a.shape == (12, 1, 16, 16) and not torch.allclose(a, b)
    assert torch.allclose(a, batched, atol=1e-5)  # a longer neighbour only adds padding keys, which are masked


def test_generates_edits_and_trains(pipe):
    from tmpbench.training.reference import flow_loss_edit, flow_loss_t2i

    images = tz.generate_t2i(pipe, ["a red circle", "two blue squares"], [0, 1], steps=2)
    edited = tz.edit_in_sequence(pipe, list(images), ["remove the red circle", "make the square green"], [0, 1], steps=2)
    assert images.shape == edited.shape == (2, 32, 32, 3)
    tr = pipe.transformer.train()
    g = torch.Generator().manual_seed(0)
    loss = flow_loss_t2i(pipe, ["a red circle"] * 2, images, g, 0.1) + flow_loss_edit(pipe, ["remove"] * 2, images, edited, g, 0.1)
    loss = loss + 0.01 * tr.aux_loss
    loss.backward()
    assert torch.isfinite(loss) and tr.model.layers[0].mlp.gate.wg.weight.grad is not None
    tr.eval()


def test_registry_entry(tmp_path):
    assert MODELS.get("tiny-hy3") is TINY_HY3_ENTRY and TINY_HY3_ENTRY.supports_edit
    assert count_params(build_meta("tiny-hy3")) == TINY_HY3_ENTRY.nominal_params
    cfg = tz.TinyZImageConfig(**SMALL)
    tz.save_pipeline(tz.make_pipeline(tz.build_components(cfg)), tmp_path / "hy3", cfg, dtype=torch.float32)
    gen = load_reference(TINY_HY3_ENTRY, str(tmp_path / "hy3"))
    assert isinstance(gen.denoiser, TinyHY3Transformer)
    assert np.asarray(gen.generate(["a red circle"], seeds=[0], steps=2, guidance=1.0, size=32)[0]).shape == (32, 32, 3)
    with pytest.raises(TmpbenchError, match=r"holds a HunyuanImage-3.0 decoder transformer, which does not match model 'tiny-moe'"):
        load_reference(TINY_MOE_ENTRY, str(tmp_path / "hy3"))
