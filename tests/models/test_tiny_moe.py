"""tiny-moe: the Z-Image DiT with HunyuanImage-3.0-layout MoE FFNs."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers import ZImageTransformer2DModel

from tmpbench.errors import TmpbenchError
from tmpbench.models.reference.tiny_moe import (
    TinyMoEBlock,
    TinyMoETransformer,
    build_tiny_moe,
    tiny_moe_config,
)

SMALL = dict(dim=32, n_layers=2, n_heads=2, n_kv_heads=2, axes_dims=[4, 6, 6], num_experts=4, moe_topk=2,
             moe_intermediate_size=8, in_channels=4, cap_feat_dim=16)


def _model(**kw):
    return build_tiny_moe(seed=0, **{**SMALL, **kw}).eval()


def _latents(seed, n=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(4, 1, 8, 8, generator=g) for _ in range(n)]


def _caps(seed, lengths):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, 16, generator=g) for n in lengths]


def test_default_config_is_the_documented_size():
    model = TinyMoETransformer(**tiny_moe_config())
    n = sum(p.numel() for p in model.parameters())
    assert 1_500_000 <= n <= 3_000_000
    assert isinstance(model, ZImageTransformer2DModel)
    assert all(isinstance(layer.feed_forward, TinyMoEBlock) for layer in model.layers)
    # refiners keep Z-Image's dense FFN
    assert not isinstance(model.noise_refiner[0].feed_forward, TinyMoEBlock)
    block = model.layers[0].feed_forward
    assert (block.gate.wg.in_features, block.gate.wg.out_features, block.gate.moe_topk) == (128, 8, 2)
    assert block.gate.wg.bias is None
    assert block.experts[0].gate_and_up_proj.weight.shape == (192, 128)
    assert block.experts[0].down_proj.weight.shape == (128, 96)
    assert block.shared_mlp.down_proj.weight.shape == (128, 96)


def test_standard_forward_shapes_aux_loss_and_counts():
    model = _model()
    x = _latents(0, 2)
    out = model(x=x, t=torch.tensor([0.2, 0.9]), cap_feats=_caps(1, [5, 11])).sample
    assert [o.shape for o in out] == [(4, 1, 8, 8)] * 2
    assert model.aux_loss.shape == () and model.aux_loss.requires_grad
    for block in model.moe_blocks:
        # Z-Image pads every segment to 32 tokens: [x (16 -> 32), cap (-> 32)] per item, batch 2
        assert int(block.expert_counts.sum()) == 2 * 64 * block.gate.moe_topk
        assert 0.0 < float(block.aux_loss.detach()) <= block.num_experts
    grads = torch.autograd.grad(model.aux_loss, model.layers[0].feed_forward.gate.wg.weight)
    assert grads[0].abs().sum() > 0  # the balancing loss trains the router


def test_block_matches_a_per_token_reference():
    torch.manual_seed(0)
    block = TinyMoEBlock(dim=12, num_experts=5, moe_topk=3, intermediate_size=7, num_shared_expert=1)
    h = torch.randn(2, 6, 12)
    got = block(h)
    expected = torch.zeros_like(h)
    for b in range(2):
        for s in range(6):
            tok = h[b, s]
            probs = F.softmax(block.gate.wg(tok), dim=-1)
            top = torch.topk(probs, 3)
            weights = top.values / top.values.sum()
            for w, j in zip(weights, top.indices):
                up, gate = block.experts[int(j)].gate_and_up_proj(tok).chunk(2)
                expected[b, s] += w * block.experts[int(j)].down_proj(up * F.silu(gate))
            up, gate = block.shared_mlp.gate_and_up_proj(tok).chunk(2)
            expected[b, s] += block.shared_mlp.down_proj(up * F.silu(gate))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_omni_forward_uses_the_clean_condition_image():
    model = _model()
    target = _latents(2)[0]
    caps = [_caps(3, [6, 4])]
    t = torch.tensor([0.5])

    def run(cond):
        with torch.no_grad():
            return model(x=[[cond, target]], t=t, cap_feats=caps, siglip_feats=[None], image_noise_mask=[[0, 1]]).sample[0]

    a = run(_latents(4)[0])
    b = run(_latents(5)[0])
    assert a.shape == (4, 1, 8, 8)  # only the noisy target comes back
    assert (a - b).abs().max() > 1e-4  # a different source image changes the prediction
    torch.testing.assert_close(run(_latents(4)[0]), a, rtol=0, atol=0)


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    model = _model(num_experts=[4, 3], moe_topk=[2, 1], moe_intermediate_size=[8, 6])
    model.save_pretrained(tmp_path)
    loaded = TinyMoETransformer.from_pretrained(tmp_path).eval()
    assert loaded.config.num_experts == [4, 3] and loaded.config.moe_topk == [2, 1]
    assert loaded.layers[1].feed_forward.gate.wg.out_features == 3
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    assert all(torch.equal(state[k], loaded_state[k]) for k in state)
    kwargs = dict(x=_latents(6), t=torch.tensor([0.3]), cap_feats=_caps(7, [9]))
    with torch.no_grad():
        expected = model(**kwargs).sample[0]
        # safetensors hands back 8-byte-aligned memory, which sends BLAS down a differently
        # rounded path (~1e-7); the same weights in fresh memory give bit-identical outputs
        torch.testing.assert_close(loaded(**kwargs).sample[0], expected, rtol=1e-5, atol=1e-5)
        for p in loaded.parameters():
            p.data = p.data.clone()
        torch.testing.assert_close(loaded(**kwargs).sample[0], expected, rtol=0, atol=0)


def test_bad_moe_config_fails_with_one_line():
    with pytest.raises(TmpbenchError, match=r"top_k=9 is invalid for tiny-moe layer 0 \(moe_topk\) with 4 experts"):
        _model(moe_topk=9)
    with pytest.raises(TmpbenchError, match=r"top_k=3 is invalid for tiny-moe layer 1 .* with 2 experts"):
        _model(num_experts=[4, 2], moe_topk=3)
    with pytest.raises(TmpbenchError, match="num_experts has 3 entries but n_layers=2"):
        _model(num_experts=[4, 4, 4])
    with pytest.raises(TmpbenchError, match=r"axes_dims=\[4, 4, 4\] must sum to the head dim"):
        _model(axes_dims=[4, 4, 4])
    with pytest.raises(TmpbenchError, match="unknown tiny-moe config keys"):
        tiny_moe_config(n_expert=3)


def test_top_k_raised_above_experts_after_surgery_is_caught_at_forward():
    model = _model()
    model.layers[0].feed_forward.gate.moe_topk = 7
    with pytest.raises(TmpbenchError, match="top_k=7 is invalid"):
        model(x=_latents(0), t=torch.tensor([0.5]), cap_feats=_caps(0, [4]))


def test_registry_entry_loads_a_saved_pipeline_and_generates(tmp_path, monkeypatch):
    from PIL import Image

    from tmpbench.errors import OfflineError
    from tmpbench.loading import load_model
    from tmpbench.models import assets
    from tmpbench.models.reference import tiny_zimage as tz

    monkeypatch.delenv("TMPBENCH_TINY_MOE_PATH", raising=False)
    monkeypatch.setattr(assets, "ASSETS", tmp_path / "no-assets")  # as on a checkout without the trained model
    with pytest.raises(OfflineError, match=r"no trained tiny-moe weights in .*TMPBENCH_TINY_MOE_PATH=DIR"):
        load_model("tiny-moe")
    moe = {"num_experts": 4, "moe_topk": 2, "moe_intermediate_size": 8, "num_shared_expert": 1}
    cfg = tz.TinyZImageConfig(dim=32, n_layers=2, n_heads=2, text_hidden=16, text_layers=2, moe=moe)
    tz.save_pipeline(tz.make_pipeline(tz.build_components(cfg)), tmp_path / "ref", cfg)
    gen = load_model("tiny-moe", path=tmp_path / "ref")
    assert isinstance(gen.denoiser, TinyMoETransformer)
    a = gen.generate(["a red circle"], seeds=[0], steps=2, guidance=1.0, size=32)[0]
    b = gen.generate(["a red circle"], seeds=[0], steps=2, guidance=1.0, size=32)[0]
    assert a.size == (32, 32) and a.tobytes() == b.tobytes()
    edited = gen.edit([Image.new("RGB", (32, 32))], ["make it blue"], seeds=[0], steps=2, guidance=1.0, size=32)
    assert edited[0].size == (32, 32)
    gen.save(tmp_path / "again")
    assert isinstance(load_model(str(tmp_path / "again")).denoiser, TinyMoETransformer)
