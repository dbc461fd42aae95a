"""The FLUX adapter on a tiny random-init FluxPipeline (32 px, 2 steps, 1+1-block MM-DiT)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("diffusers")

from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel  # noqa: E402

from tmpbench.errors import OfflineError, TmpbenchError  # noqa: E402
from tmpbench.loading import load_model  # noqa: E402
from tmpbench.models.flux import FLUX_ENTRY, FluxGenerator  # noqa: E402

WORDS = "a red green blue circle square triangle left of right above below make it".split()


def word_tokenizer(max_length: int):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "</s>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", eos_token="</s>")
    fast.model_max_length = max_length
    return fast


def tiny_flux_pipeline(seed: int = 0, guidance_embeds: bool = False) -> FluxPipeline:
    from transformers import CLIPTextConfig, CLIPTextModel, T5Config, T5EncoderModel

    torch.manual_seed(seed)
    tokenizer, tokenizer_2 = word_tokenizer(12), word_tokenizer(16)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, max_position_embeddings=12, projection_dim=32,
                       pad_token_id=0, bos_token_id=1, eos_token_id=2)
    )
    text_encoder_2 = T5EncoderModel(
        T5Config(vocab_size=len(tokenizer_2), d_model=32, d_ff=64, d_kv=16, num_layers=2, num_heads=2)
    )
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32,
        guidance_embeds=guidance_embeds, axes_dims_rope=(4, 6, 6),
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        norm_num_groups=4, shift_factor=0.0, scaling_factor=1.0,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    return FluxPipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2, transformer=transformer,
    )


@pytest.fixture(scope="module")
def gen() -> FluxGenerator:
    return FluxGenerator(tiny_flux_pipeline(), name="tiny-flux-test", max_sequence_length=16)


def test_generate_batch_matches_single_and_seed_matters(gen):
    images = gen.generate(["a red circle", "a blue square left of a green triangle"], seeds=[3, 4], steps=2, guidance=0.0, size=32)
    assert [im.size for im in images] == [(32, 32), (32, 32)]
    alone = gen.generate(["a red circle"], seeds=[3], steps=2, guidance=0.0, size=32)[0]
    # an image depends only on its own prompt and seed (the adapter puts T5's dropout in eval mode)
    assert np.abs(np.asarray(images[0], dtype=int) - np.asarray(alone, dtype=int)).max() <= 1
    other = gen.generate(["a red circle"], seeds=[9], steps=2, guidance=0.0, size=32)[0]
    assert np.abs(np.asarray(other, dtype=int) - np.asarray(alone, dtype=int)).max() > 5


def test_true_cfg_changes_output(gen):
    a = gen.generate(["a red circle"], seeds=[0], steps=2, guidance=0.0, size=32)[0]
    b = gen.generate(["a red circle"], seeds=[0], steps=2, guidance=3.0, size=32)[0]
    assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_guidance_embedding_checkpoint_takes_guidance():
    g = FluxGenerator(tiny_flux_pipeline(guidance_embeds=True), max_sequence_length=16)
    assert g._guidance_kwargs(3.5, 2) == {"guidance_scale": 3.5}
    a = g.generate(["a red circle"], seeds=[0], steps=2, guidance=1.0, size=32)[0]
    b = g.generate(["a red circle"], seeds=[0], steps=2, guidance=8.0, size=32)[0]
    assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_edit_runs_img2img(gen):
    src = Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    out = gen.edit([src, src], ["make it red", "make it blue"], seeds=[0, 1], steps=2, guidance=0.0, size=32)
    assert [im.size for im in out] == [(32, 32), (32, 32)]
    with pytest.raises(ValueError, match="2 images but 1 instructions"):
        gen.edit([src, src], ["x"], seeds=[0], steps=2, guidance=0.0, size=32)


def test_denoiser_and_validation(gen):
    assert isinstance(gen.denoiser, FluxTransformer2DModel)
    assert gen.family == "flux"
    with pytest.raises(TmpbenchError, match="size=20 must be a positive multiple of 8"):
        gen.generate(["a"], seeds=[0], steps=2, guidance=0.0, size=20)


def test_save_and_load_back(gen, tmp_path):
    gen.save(tmp_path / "f")
    loaded = FluxGenerator.from_entry(FLUX_ENTRY, str(tmp_path / "f"))
    loaded.pipe.to(torch.float32)
    loaded.max_sequence_length = 16
    a = gen.generate(["a red circle"], seeds=[1], steps=2, guidance=0.0, size=32)[0]
    b = loaded.generate(["a red circle"], seeds=[1], steps=2, guidance=0.0, size=32)[0]
    assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 2  # bf16 round trip


def test_offline_error_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TMPBENCH_FLUX_PATH", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(OfflineError, match=r"black-forest-labs/FLUX.1-schnell.*--model-path DIR or set TMPBENCH_FLUX_PATH=DIR") as info:
        load_model("flux")
    assert "\n" not in str(info.value)


def test_offload_folder_loads_both_block_lists_on_disk_and_generates_the_same(gen, tmp_path):
    """FLUX.1's double- and single-stream block lists both go to disk; images equal the in-memory load."""
    from tmpbench.models.offload import block_names
    from tmpbench.pruning.calibration import offloaded

    gen.save(tmp_path / "f")
    memory = FluxGenerator.from_entry(FLUX_ENTRY, str(tmp_path / "f"))
    disk = FluxGenerator.from_entry(FLUX_ENTRY, str(tmp_path / "f"), offload_folder=str(tmp_path / "off"))
    assert offloaded(disk.denoiser) and {n.split(".")[0] for n in block_names(disk.denoiser)} == {
        "transformer_blocks", "single_transformer_blocks"}
    assert all(disk.denoiser.hf_device_map[n] == "disk" for n in block_names(disk.denoiser))
    for g in (memory, disk):
        g.max_sequence_length = 16
    a, b = (g.generate(["a red circle"], seeds=[1], steps=2, guidance=0.0, size=32)[0] for g in (memory, disk))
    assert np.array_equal(np.asarray(a), np.asarray(b))
    # the surgery reads the offloaded blocks one at a time into the same pruned model as the in-memory cut
    from tmpbench.pruning.families import apply, apply_offloaded
    from tmpbench.pruning.runner import plan_model

    plan = plan_model(memory.denoiser, "random", "20%", model_name="flux").plan
    x, y = apply(memory.denoiser, plan).state_dict(), apply_offloaded(disk.denoiser, plan).state_dict()
    assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
