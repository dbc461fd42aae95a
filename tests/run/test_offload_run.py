"""``tmpbench run --offload``: diffusers' model and group offloading while generating (the strategies
``tmpbench fit`` prices). On this CPU-only machine the "device" is the CPU too, so what is tested is that
the offloaded pipeline makes the same images, records the strategy, and that bad input is one line; the
memory it saves is the GPU check's to measure."""

import numpy as np
import pytest
from PIL import Image

from tmpbench.errors import TmpbenchError
from tmpbench.models.base import OFFLOADS, check_offload
from tmpbench.run import RunConfig, run_benchmark


@pytest.fixture
def hy3_standin():
    """The HunYuanMoEV1 stand-in of the hunyuanimage3 entry (fused 3-D experts) and a token batch."""
    import torch

    from tmpbench.models.hunyuan import build_hunyuan_moe_standin

    return build_hunyuan_moe_standin(seed=3).eval(), torch.arange(10).reshape(1, 10)


def _cfg(tmp_path, pipe, name, **kw):
    base = dict(suite="shapes-t2i", model="tiny-dit", model_path=str(pipe), limit=3, steps=2, batch_size=2,
                out=tmp_path / name, metrics="geneval", progress=False, argv=["test"])
    base.update(kw)
    return RunConfig(**base)


def _pixels(out):
    return {p.relative_to(out).as_posix(): np.asarray(Image.open(p)) for p in sorted((out / "images").rglob("*.png"))}


@pytest.mark.parametrize("strategy", ["model", "group"])
def test_offloaded_run_makes_the_same_images_and_records_the_strategy(tmp_path, tiny_pipe_dir, strategy):
    plain = run_benchmark(_cfg(tmp_path, tiny_pipe_dir, "none"))
    res = run_benchmark(_cfg(tmp_path, tiny_pipe_dir, strategy, offload=strategy))
    assert plain["efficiency"]["offload"] == "none" and res["efficiency"]["offload"] == strategy
    want, have = _pixels(tmp_path / "none"), _pixels(tmp_path / strategy)
    assert len(want) == 3 and want.keys() == have.keys()
    assert all(np.array_equal(want[k], have[k]) for k in want)
    assert res["metrics"]["geneval"]["value"] == plain["metrics"]["geneval"]["value"]


@pytest.mark.parametrize("strategy", ["model", "group"])
def test_offloaded_pipeline_edits_as_before(strategy):
    from tmpbench.loading import load_model

    src = Image.fromarray(np.full((32, 32, 3), 128, np.uint8))

    def edit(gen):
        return np.asarray(gen.edit([src], ["make it blue"], [0], 2, 1.0, 32)[0])

    want = edit(load_model("tiny-dit", device="cpu"))
    gen = load_model("tiny-dit", device="cpu")
    gen.offload(strategy, "cpu")
    assert np.array_equal(edit(gen), want)


def test_bad_offload_is_one_line_before_loading(tmp_path):
    assert OFFLOADS == ("none", "model", "group", "expert")
    with pytest.raises(TmpbenchError, match=r"^unknown --offload 'grup'; did you mean 'group'\?; use one of none, model, "
                                            r"group, expert") as e:
        run_benchmark(_cfg(tmp_path, "/nonexistent/weights", "grup", offload="grup"))
    assert "\n" not in str(e.value)
    check_offload("none")


def test_expert_offload_on_a_dense_denoiser_is_one_line():
    from tmpbench.loading import load_model

    with pytest.raises(TmpbenchError, match=r"^ZImageTransformer2DModel has no MoE blocks: --offload expert streams routed "
                                            r"experts; use --offload group") as e:
        load_model("tiny-dit", device="cpu").offload("expert", "cpu")
    assert "\n" not in str(e.value)


def _group_hooked(module) -> bool:
    registry = getattr(module, "_diffusers_hook", None)
    return registry is not None and registry.get_hook("group_offloading") is not None


@pytest.mark.parametrize("name", ["tiny-moe", "tiny-hy3"])
def test_expert_offload_streams_only_the_routed_experts_and_makes_the_same_images(name):
    """Both MoE layouts (expert modules, fused 3-D experts): the same images; diffusers' group-offloading
    hooks sit on the routed experts' leaves and on no other module of the denoiser; with a cache the size
    of the first block's experts, that block's experts stay resident (fit's static cache)."""
    from tmpbench.loading import load_model
    from tmpbench.models.moe import find_moe_blocks
    from tmpbench.models.offload import expert_offload

    def images(gen):
        return np.stack([np.asarray(im) for im in gen.generate(["a red circle", "two blue squares"], [0, 1], 2, 1.0, 32)])

    want = images(load_model(name, device="cpu"))
    gen = load_model(name, device="cpu")
    gen.offload("expert", "cpu")
    assert np.array_equal(images(gen), want)
    blocks = find_moe_blocks(gen.denoiser)
    experts = {id(m) for b in blocks for m in b.block.experts.modules()}
    hooked = [m for m in gen.denoiser.modules() if _group_hooked(m)]
    assert hooked and all(id(m) in experts for m in hooked)
    assert all(any(_group_hooked(m) for m in b.block.experts.modules()) for b in blocks)
    assert any(_group_hooked(m) for m in gen.pipe.text_encoder.modules())  # the text encoder streams as under "group"

    fresh = load_model(name, device="cpu").denoiser
    first = sum(p.numel() * p.element_size() for p in find_moe_blocks(fresh)[0].block.experts.parameters())
    info = expert_offload(fresh, "cpu", cache_bytes=first)
    assert info == {"moe_blocks": len(blocks), "cached_blocks": 1, "streamed_blocks": len(blocks) - 1, "cached_bytes": first}
    views = find_moe_blocks(fresh)
    assert not any(_group_hooked(m) for m in views[0].block.experts.modules())
    assert all(any(_group_hooked(m) for m in v.block.experts.modules()) for v in views[1:])


def test_hunyuanimage3_takes_expert_offload_only(hy3_standin):
    """HunyuanImage-3.0 is not a diffusers pipeline: its generator refuses model/group in one line and
    takes expert offload, which leaves the stand-in's logits unchanged."""
    import torch

    from tmpbench.models.hunyuan import HunyuanImage3Generator

    model, ids = hy3_standin
    with torch.no_grad():
        want = model(ids).logits
    gen = HunyuanImage3Generator(model, name="hunyuanimage3")
    gen.offload("none", "cpu")  # nothing to do
    with pytest.raises(TmpbenchError, match=r"^model 'hunyuanimage3' \(hunyuanimage3\) cannot run with --offload group: only the "
                                            r"diffusers pipelines .* HunyuanImage-3.0 \(expert\)") as e:
        gen.offload("group", "cuda")
    assert "\n" not in str(e.value)
    gen.offload("expert", "cpu")
    assert any(_group_hooked(m) for m in model.modules())
    with torch.no_grad():
        assert torch.equal(model(ids).logits, want)


def test_pruned_run_offloads_the_model_and_its_teacher(tmp_path, tiny_pipe_dir):
    kw = dict(model="tiny-dit-10%", pruner="magnitude", limit=2, metrics="psnr_teacher", prune_cache=tmp_path / "cache")
    plain = run_benchmark(_cfg(tmp_path, tiny_pipe_dir, "none", **kw))
    res = run_benchmark(_cfg(tmp_path, tiny_pipe_dir, "group", offload="group", **kw))
    assert res["model"]["achieved_params"] == plain["model"]["achieved_params"] < plain["model"]["original_params"]
    assert res["metrics"]["psnr_teacher"]["value"] == plain["metrics"]["psnr_teacher"]["value"]
    for sub in ("images", "teacher"):
        want = {p.relative_to(tmp_path / "none"): np.asarray(Image.open(p)) for p in (tmp_path / "none" / sub).rglob("*.png")}
        have = {p.relative_to(tmp_path / "group"): np.asarray(Image.open(p)) for p in (tmp_path / "group" / sub).rglob("*.png")}
        assert len(want) == 2 and want.keys() == have.keys() and all(np.array_equal(want[k], have[k]) for k in want)
