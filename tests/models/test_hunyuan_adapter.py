"""HunyuanImage-3.0 adapter: offline errors, the HunYuanMoEV1 stand-in, the meta-device count."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from PIL import Image

from tmpbench.catalog import MODELS
from tmpbench.errors import OfflineError, TmpbenchError
from tmpbench.loading import load_model
from tmpbench.models.hunyuan import (
    HUNYUANIMAGE3_CONFIG,
    HUNYUANIMAGE3_ENTRY,
    HUNYUANIMAGE3_INSTRUCT_ENTRY,
    PATH_ENV,
    HunyuanImage3Generator,
    build_hunyuan_moe_standin,
    build_hunyuanimage3_meta,
)
from tmpbench.models.moe import LAYOUT_FUSED_3D, find_moe_blocks
from tmpbench.models.spec import MARKER_FILE


@pytest.fixture(autouse=True)
def _no_env_path(monkeypatch):
    monkeypatch.delenv(PATH_ENV, raising=False)


@pytest.fixture(scope="module")
def standin_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hunyuan-standin")
    build_hunyuan_moe_standin(seed=3).save_pretrained(directory)
    return directory


def _logits(model):
    with torch.no_grad():
        return model(torch.arange(10).reshape(1, 10)).logits


# --- offline errors --------------------------------------------------------------------------
@pytest.mark.parametrize("name, hub_id", [("hunyuanimage3", "tencent/HunyuanImage-3.0"),
                                          ("hunyuanimage3-instruct", "tencent/HunyuanImage-3.0-Instruct")])
def test_no_local_weights_is_one_offline_line(name, hub_id):
    with pytest.raises(OfflineError) as info:
        load_model(name)
    message = str(info.value)
    assert "\n" not in message
    assert hub_id in message and "--model-path" in message and PATH_ENV in message


def test_missing_or_incomplete_directory_is_one_line(tmp_path):
    with pytest.raises(OfflineError, match=r"does not exist; .*--model-path DIR or set TMPBENCH_HUNYUAN_PATH"):
        HUNYUANIMAGE3_ENTRY.load(path=tmp_path / "nope")
    with pytest.raises(OfflineError, match=r"has no config\.json; download 'tencent/HunyuanImage-3\.0'"):
        HUNYUANIMAGE3_ENTRY.load(path=tmp_path)


def test_directory_name_with_a_dot_is_rejected_before_loading(tmp_path):
    directory = tmp_path / "HunyuanImage-3.0"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({"architectures": ["HunyuanImage3ForCausalMM"]}))
    with pytest.raises(TmpbenchError, match=r"'HunyuanImage-3\.0' contains a dot.*rename it"):
        HUNYUANIMAGE3_ENTRY.load(path=directory)


def test_registered_entries():
    assert MODELS.get("hunyuanimage3") is HUNYUANIMAGE3_ENTRY
    assert MODELS.get("hunyuanimage3-instruct") is HUNYUANIMAGE3_INSTRUCT_ENTRY
    assert HUNYUANIMAGE3_INSTRUCT_ENTRY.supports_edit and not HUNYUANIMAGE3_ENTRY.supports_edit


# --- the stand-in through the same adapter ---------------------------------------------------
def test_standin_loads_through_the_adapter(standin_dir, monkeypatch):
    original = build_hunyuan_moe_standin(seed=3)
    gen = load_model("hunyuanimage3", path=standin_dir)
    assert isinstance(gen, HunyuanImage3Generator) and gen.is_standin and not gen.supports_edit
    torch.testing.assert_close(_logits(gen.denoiser), _logits(original), rtol=1e-5, atol=1e-5)
    blocks = find_moe_blocks(gen.denoiser)
    assert [b.layout for b in blocks] == [LAYOUT_FUSED_3D] * 2
    assert (blocks[0].num_experts, blocks[0].top_k) == (4, 2)
    monkeypatch.setenv(PATH_ENV, str(standin_dir))  # the environment variable works the same way
    assert isinstance(load_model("hunyuanimage3").denoiser, type(original))


def test_standin_refuses_to_make_images_with_one_line(standin_dir):
    gen = HUNYUANIMAGE3_ENTRY.load(path=standin_dir)
    with pytest.raises(TmpbenchError, match=r"stand-in \(text-only MoE\) and cannot make images; pass --model-path"):
        gen.generate(["a red circle"], seeds=[0], steps=2, guidance=1.0, size=32)
    with pytest.raises(TmpbenchError, match="got 1 prompts but 2 seeds"):
        gen.generate(["a red circle"], seeds=[0, 1], steps=2, guidance=1.0, size=32)


def test_pruned_standin_saves_and_loads_back(standin_dir, tmp_path):
    gen = HUNYUANIMAGE3_ENTRY.load(path=standin_dir)
    for block in find_moe_blocks(gen.denoiser):
        block.keep_intermediate([0, 2, 4, 6, 8, 10, 12, 14])  # expert width 16 -> 8 in every layer
    gen.denoiser.config.intermediate_size = 8  # HunYuanMoEV1Config holds one width for all experts
    for layer in gen.denoiser.model.layers:
        shared = layer.mlp.shared_mlp
        with torch.no_grad():  # the stand-in's shared MLP reads the same config width
            for lin in (shared.gate_proj, shared.up_proj):
                lin.weight = torch.nn.Parameter(lin.weight[:8].clone())
                lin.out_features = 8
            shared.down_proj.weight = torch.nn.Parameter(shared.down_proj.weight[:, :8].clone())
            shared.down_proj.in_features = 8
    expected = _logits(gen.denoiser)
    out = tmp_path / "pruned"
    gen.save(out)
    assert json.loads((out / MARKER_FILE).read_text())["model"] == "hunyuanimage3"
    again = HUNYUANIMAGE3_ENTRY.load(path=out)
    assert find_moe_blocks(again.denoiser)[0].intermediate_size == 8
    torch.testing.assert_close(_logits(again.denoiser), expected, rtol=1e-5, atol=1e-5)


# --- the generate_image call, with a model object that records it ----------------------------
class _RecordingImageModel:
    """Answers like HunyuanImage-3.0-Instruct's generate_image: (cot_text, [images])."""

    def __init__(self):
        self.calls = []

    def generate_image(self, **kwargs):
        self.calls.append(kwargs)
        return "cot", [Image.new("RGB", (48, 40), (255, 0, 0))]


def test_generate_and_edit_translate_to_generate_image():
    model = _RecordingImageModel()
    gen = HunyuanImage3Generator(model, name="hunyuanimage3-instruct", supports_edit=True)
    images = gen.generate(["a red circle", "a blue square"], seeds=[1, 2], steps=7, guidance=3.5, size=32)
    assert [im.size for im in images] == [(32, 32), (32, 32)]
    first = model.calls[0]
    assert (first["prompt"], first["seed"], first["image_size"]) == ("a red circle", 1, "32x32")
    assert (first["diff_infer_steps"], first["diff_guidance_scale"], first["bot_task"]) == (7, 3.5, "image")
    edited = gen.edit([Image.new("RGB", (64, 64))], ["make it blue"], seeds=[5], steps=3, guidance=1.0, size=32)
    assert edited[0].size == (32, 32)
    call = model.calls[-1]
    assert call["prompt"] == "make it blue" and call["image"].endswith(".png") and call["infer_align_image_size"]
    t2i_only = HunyuanImage3Generator(_RecordingImageModel(), supports_edit=False)
    with pytest.raises(TmpbenchError, match="does not edit images; use hunyuanimage3-instruct"):
        t2i_only.edit([Image.new("RGB", (32, 32))], ["x"], seeds=[0], steps=1, guidance=1.0, size=32)


# --- meta-device construction ----------------------------------------------------------------
def _expected_params(cfg, layers):
    h, i, e = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_experts"]
    heads, kv, hd = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    attention = h * heads * hd + 2 * h * kv * hd + heads * hd * h + 2 * hd  # q, k, v, o, q/k norms
    expert = 3 * h * i
    layer = attention + e * expert + expert + h * e + 2 * h  # routed, shared, router, two norms
    return 2 * cfg["vocab_size"] * h + layers * layer + h  # embedding, untied head, final norm


def test_meta_build_allocates_nothing_and_counts_like_the_formula():
    entry = dataclasses.replace(HUNYUANIMAGE3_ENTRY, extra={"config_overrides": {"num_hidden_layers": 1}})
    model = build_hunyuanimage3_meta(entry)
    assert all(p.is_meta for p in model.parameters())
    assert sum(p.numel() for p in model.parameters()) == _expected_params(HUNYUANIMAGE3_CONFIG, 1)
    block = find_moe_blocks(model)[0]
    assert (block.num_experts, block.top_k, block.intermediate_size, block.hidden_size) == (64, 8, 3072, 4096)
    full = _expected_params(HUNYUANIMAGE3_CONFIG, HUNYUANIMAGE3_CONFIG["num_hidden_layers"])
    assert full == 80_958_730_240
    assert abs(full / 80e9 - 1) < 0.03
