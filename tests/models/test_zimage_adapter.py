"""The Z-Image adapter on a tiny random-init ZImagePipeline (32 px, 2 steps, 2-layer DiT)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("diffusers")

from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, ZImagePipeline, ZImageTransformer2DModel  # noqa: E402

from tmpbench.errors import OfflineError, TmpbenchError  # noqa: E402
from tmpbench.loading import load_model  # noqa: E402
from tmpbench.models.zimage import ZIMAGE_ENTRY, ZImageGenerator  # noqa: E402

WORDS = "a red green blue circle square triangle left of right above below make it".split()


def tiny_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<pad>", "<unk>", "<user>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>")
    fast.chat_template = "{% for m in messages %}<user> {{ m['content'] }}{% endfor %}"
    return fast


def tiny_zimage_pipeline(seed: int = 0) -> ZImagePipeline:
    from transformers import Qwen3Config, Qwen3Model

    torch.manual_seed(seed)
    tokenizer = tiny_tokenizer()
    text_encoder = Qwen3Model(
        Qwen3Config(
            vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=64,
        )
    )
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=4, dim=32, n_layers=2, n_refiner_layers=1,
        n_heads=2, n_kv_heads=2, cap_feat_dim=32, axes_dims=[4, 6, 6], axes_lens=[256, 32, 32],
    )
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8, 8), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
        norm_num_groups=4, shift_factor=0.0, scaling_factor=1.0,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    return ZImagePipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, transformer=transformer)


@pytest.fixture(scope="module")
def gen() -> ZImageGenerator:
    return ZImageGenerator(tiny_zimage_pipeline(), name="tiny-zimage-test", max_sequence_length=16)


def test_generate_shapes_and_seed_determinism(gen):
    images = gen.generate(["a red circle", "a blue square left of a green triangle"], seeds=[3, 4], steps=2, guidance=0.0, size=32)
    assert [im.size for im in images] == [(32, 32), (32, 32)]
    assert all(im.mode == "RGB" for im in images)
    again = gen.generate(["a red circle"], seeds=[3], steps=2, guidance=0.0, size=32)
    # an image depends only on its own prompt and seed, not on its batch neighbours
    diff = np.abs(np.asarray(images[0], dtype=int) - np.asarray(again[0], dtype=int)).max()
    assert diff <= 1
    other_seed = gen.generate(["a red circle"], seeds=[5], steps=2, guidance=0.0, size=32)
    assert np.abs(np.asarray(other_seed[0], dtype=int) - np.asarray(again[0], dtype=int)).max() > 5


def test_generate_with_guidance_runs_cfg(gen):
    a = gen.generate(["a red circle"], seeds=[0], steps=2, guidance=0.0, size=32)[0]
    b = gen.generate(["a red circle"], seeds=[0], steps=2, guidance=4.0, size=32)[0]
    assert np.asarray(a).shape == np.asarray(b).shape == (32, 32, 3)
    assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_edit_img2img_keeps_source_at_low_strength(gen):
    rng = np.random.default_rng(0)
    src = Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    out = gen.edit([src], ["make it red"], seeds=[0], steps=2, guidance=0.0, size=32)
    assert out[0].size == (32, 32)
    weak = ZImageGenerator(gen.pipe, name="weak", edit_strength=0.5, max_sequence_length=16)
    strong = ZImageGenerator(gen.pipe, name="strong", edit_strength=1.0, max_sequence_length=16)
    w = np.asarray(weak.edit([src], ["make it red"], [0], steps=4, guidance=0.0, size=32)[0], dtype=float)
    s = np.asarray(strong.edit([src], ["make it red"], [0], steps=4, guidance=0.0, size=32)[0], dtype=float)
    s_ref = np.asarray(src, dtype=float)
    # less noise -> closer to the source (the random-init denoiser cannot restore the source by itself)
    assert np.abs(w - s_ref).mean() < np.abs(s - s_ref).mean()


def test_custom_edit_fn_receives_arrays(gen):
    seen = {}

    def edit_fn(pipe, images, instructions, seeds, steps, guidance):
        seen.update(n=len(images), shape=images[0].shape, dtype=images[0].dtype, instr=instructions, seeds=seeds)
        return np.stack([255 - im for im in images])

    g = ZImageGenerator(gen.pipe, name="x", edit_fn=edit_fn)
    src = Image.new("RGB", (64, 64), (10, 20, 30))
    out = g.edit([src], ["make it red"], seeds=[7], steps=2, guidance=1.0, size=32)
    assert seen == dict(n=1, shape=(32, 32, 3), dtype=np.uint8, instr=["make it red"], seeds=[7])
    assert out[0].getpixel((0, 0)) == (245, 235, 225)


def test_denoiser_is_the_transformer(gen):
    assert isinstance(gen.denoiser, ZImageTransformer2DModel)
    assert gen.family == "zimage" and gen.supports_edit


def test_bad_batches_fail_with_one_line(gen):
    with pytest.raises(TmpbenchError, match="2 prompts but 1 seeds"):
        gen.generate(["a", "b"], seeds=[0], steps=2, guidance=0.0, size=32)
    with pytest.raises(TmpbenchError, match=r"size=30 must be a positive multiple of 8"):
        gen.generate(["a"], seeds=[0], steps=2, guidance=0.0, size=30)
    with pytest.raises(TmpbenchError, match="steps=0 must be at least 1"):
        gen.generate(["a"], seeds=[0], steps=0, guidance=0.0, size=32)


def test_save_and_load_back_through_local_path(gen, tmp_path):
    gen.save(tmp_path / "m")
    assert (tmp_path / "m" / "model_index.json").is_file()
    loaded = ZImageGenerator.from_entry(ZIMAGE_ENTRY, str(tmp_path / "m"))
    loaded.pipe.to(torch.float32)
    loaded.max_sequence_length = 16
    a = gen.generate(["a red circle"], seeds=[1], steps=2, guidance=0.0, size=32)[0]
    b = loaded.generate(["a red circle"], seeds=[1], steps=2, guidance=0.0, size=32)[0]
    assert np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= 2  # bf16 round trip
    # a directory spec resolves to the zimage entry through the marker / model_index.json
    by_spec = load_model(str(tmp_path / "m"))
    assert isinstance(by_spec, ZImageGenerator)


def test_offline_hub_request_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("TMPBENCH_ZIMAGE_PATH", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    with pytest.raises(OfflineError, match=r"Tongyi-MAI/Z-Image-Turbo.*--model-path DIR or set TMPBENCH_ZIMAGE_PATH=DIR") as info:
        load_model("zimage")
    assert "\n" not in str(info.value)


def test_missing_local_dir_names_the_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv("TMPBENCH_ZIMAGE_PATH", str(tmp_path / "nope"))
    with pytest.raises(OfflineError, match=r"zimage weights directory .*nope' does not exist.*TMPBENCH_ZIMAGE_PATH"):
        load_model("zimage")


def test_broken_local_dir_is_not_blamed_on_the_hub(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "broken").mkdir()
    with pytest.raises(OfflineError, match=r"cannot load zimage weights from a local directory \(OSError: .*\); download") as info:
        load_model("zimage", path=tmp_path / "broken")
    assert "\n" not in str(info.value)


def test_defaults_come_from_the_family(gen):
    plain = ZImageGenerator(gen.pipe)
    assert (plain.name, plain.model, plain.max_sequence_length, plain.size_multiple) == ("zimage", "zimage", 512, 8)
    with pytest.raises(ValueError, match=r"edit_strength=0.0 must be in \(0, 1\]"):
        ZImageGenerator(gen.pipe, edit_strength=0.0)


def test_meta_hook_reads_the_entry_config():
    import dataclasses

    small = {"all_patch_size": [2], "all_f_patch_size": [1], "in_channels": 4, "dim": 32, "n_layers": 1,
             "n_refiner_layers": 1, "n_heads": 2, "n_kv_heads": 2, "cap_feat_dim": 32, "axes_dims": [4, 6, 6]}
    entry = dataclasses.replace(ZIMAGE_ENTRY, extra={"transformer_config": small})
    module = ZImageGenerator.meta_denoiser(entry)
    assert isinstance(module, ZImageTransformer2DModel) and module.config.dim == 32
    assert all(p.device.type == "meta" for p in module.parameters())


def test_offload_folder_keeps_the_transformer_blocks_on_disk_and_generates_the_same(gen, tmp_path):
    """``from_entry(..., offload_folder=DIR)``: the transformer loads first with its blocks on disk (the
    pipeline then takes it as given and moves only its other components); images equal the in-memory load."""
    from tmpbench.pruning.calibration import offloaded

    gen.save(tmp_path / "m")
    memory = ZImageGenerator.from_entry(ZIMAGE_ENTRY, str(tmp_path / "m"))
    disk = ZImageGenerator.from_entry(ZIMAGE_ENTRY, str(tmp_path / "m"), offload_folder=str(tmp_path / "off"))
    assert offloaded(disk.denoiser) and not offloaded(memory.denoiser) and any((tmp_path / "off").iterdir())
    for g in (memory, disk):
        g.max_sequence_length = 16
    a, b = (g.generate(["a red circle"], seeds=[1], steps=2, guidance=0.0, size=32)[0] for g in (memory, disk))
    assert np.array_equal(np.asarray(a), np.asarray(b))
