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


def test_bad_offload_is_one_line_before_loading(tmp_path, tiny_pipe_dir):
    assert OFFLOADS == ("none", "model", "group")
    for strategy, pattern in (("grup", r"^unknown --offload 'grup'; did you mean 'group'\?; use one of none, model, group"),
                              ("expert", r"^--offload expert: tmpbench fit estimates expert offload .* no library here")):
        with pytest.raises(TmpbenchError, match=pattern) as e:
            run_benchmark(_cfg(tmp_path, "/nonexistent/weights", strategy, offload=strategy))
        assert "\n" not in str(e.value)
    check_offload("none")


def test_a_generator_without_offload_refuses_in_one_line():
    from tmpbench.models.hunyuan import HunyuanImage3Generator

    gen = HunyuanImage3Generator(object(), name="hunyuanimage3")
    gen.offload("none", "cpu")  # nothing to do
    with pytest.raises(TmpbenchError, match=r"^model 'hunyuanimage3' \(hunyuanimage3\) cannot run with --offload group: only the "
                                            r"diffusers pipelines") as e:
        gen.offload("group", "cuda")
    assert "\n" not in str(e.value)


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
